//! Storage faults: a full disk and a database locked by another process
//! pause ingestion, which resumes with nothing lost or half-written.

use std::time::Duration;

use crate::common::*;

/// Base64 text of `len` characters (a multiple of 4), different for every `seed`.
fn base64_noise(seed: u64, len: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut s = String::with_capacity(len + len / 76 * 2);
    for i in 0..len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s.push(A[(x >> 58) as usize] as char);
        if i % 76 == 75 {
            s.push('\n');
        }
    }
    s
}

/// A customer mail with a 150 KB attachment (odd `n`) or a 300 KB body
/// (even `n`): the first needs a new file, the second new database pages.
fn heavy_mail(n: usize) -> String {
    let from = format!("heavy{n}@example.com");
    if n % 2 == 1 {
        format!(
            "From: Customer {n} <{from}>\nTo: support@desk.test\nSubject: Logs {n}\nMessage-ID: <heavy-{n}@example.com>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nThe backup job fails, log attached.\n--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"job{n}.log\"\nContent-Transfer-Encoding: base64\n\n{}\n--b--\n",
            base64_noise(n as u64, 200_000)
        )
    } else {
        let body = base64_noise(n as u64, 300_000);
        customer_mail(
            n,
            &from,
            &format!("Dump {n}"),
            &format!("The backup job fails:\n{body}"),
        )
    }
}

/// The state directory on a 24 MB filesystem that fills up: ingestion
/// pauses (batch rolled back, nothing set aside, nothing half-written),
/// logs it once, and resumes when space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_pauses_ingestion_and_resumes_when_space_is_freed() {
    let stack = start_stack();
    let config = write_config(&stack, false);
    let state = stack.dir.path().join("state");
    let disk = Tmpfs::mount(&state, "24m");
    let log = stack.dir.path().join("daemon.log");
    let child = spawn_daemon(&config, &log);

    let mut s = imap_login(&stack, "support", "supportpw").await;
    for n in 1..=2 {
        append(
            &mut s,
            &customer_mail(
                n,
                &format!("c{n}@example.com"),
                "Restore",
                "The restore fails.",
            ),
        )
        .await;
    }
    wait_until_logged("the first two tickets", &log, || {
        count_at(&config, "SELECT count(*) FROM tickets") == 2
    });
    wait_until_logged("their acks sent", &log, || {
        count_at(&config, "SELECT count(*) FROM outbox WHERE status = 'sent'") == 2
    });

    let filled = fill_disk(&state.join("filler"));
    assert!(filled > 0);
    for n in 11..=16 {
        append(&mut s, &heavy_mail(n)).await;
    }
    wait_until("the pause in the log", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("ingestion paused, storage unavailable")
    });
    // Paused a while: nothing of the six is committed, nothing set aside.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let conn = db(&config);
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), 2);
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 2);
    assert_eq!(count(&conn, "SELECT count(*) FROM outbox"), 2);
    drop(conn);

    std::fs::remove_file(state.join("filler")).unwrap();
    wait_for(
        "the six after space was freed",
        Duration::from_secs(90),
        || count_at(&config, "SELECT count(*) FROM tickets") == 8,
    );
    wait_for("all eight acks sent", Duration::from_secs(60), || {
        count_at(&config, "SELECT count(*) FROM outbox WHERE status = 'sent'") == 8
    });
    let _ = s.logout().await;
    stop_daemon(child);

    let conn = db(&config);
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), 8);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages WHERE kind IN ('poison', 'unparsable')"
        ),
        0
    );
    // One message and one ack per ticket: nothing half-written.
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM tickets t WHERE (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id) != 1"
        ),
        0
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM tickets t WHERE (SELECT count(*) FROM outbox o WHERE o.ticket_id = t.id AND o.kind = 'ack') != 1"
        ),
        0
    );
    // The three attachments are whole on disk.
    let files: Vec<(String, i64)> = conn
        .prepare("SELECT path, size FROM attachments")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(files.len(), 3);
    for (path, size) in files {
        assert_eq!(
            std::fs::metadata(state.join(&path)).unwrap().len() as i64,
            size,
            "{path}"
        );
    }
    let acks = sink_messages(&stack, 8).await;
    assert_eq!(acks.len(), 8);
    let text = std::fs::read_to_string(&log).unwrap();
    let pauses = text.matches("ingestion paused").count();
    assert!((1..=3).contains(&pauses), "{pauses} pause lines:\n{text}");
    assert!(text.contains("ingestion resumed"), "{text}");
    assert!(!text.contains("setting the message aside"), "{text}");
    drop(conn);
    drop(disk);
}

/// Another process holds the database's write lock past the busy timeout
/// (30 s): ingestion waits, then pauses (nothing committed, nothing set
/// aside) and resumes once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_locked_by_another_process_pauses_ingestion_and_resumes() {
    let stack = start_stack();
    let config = write_config(&stack, false);
    let log = stack.dir.path().join("daemon.log");
    let child = spawn_daemon(&config, &log);
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append(
        &mut s,
        &customer_mail(1, "first@example.com", "Restore", "The restore fails."),
    )
    .await;
    wait_until("the first ticket", || {
        count_at(&config, "SELECT count(*) FROM tickets") == 1
    });

    let locker = db(&config);
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    for n in 2..=4 {
        append(
            &mut s,
            &customer_mail(
                n,
                &format!("c{n}@example.com"),
                "Restore",
                "The restore fails.",
            ),
        )
        .await;
    }
    // Every writer on the store thread waits out the 30 s busy timeout in
    // turn (an ack's "sent" mark, a health write, then the ingest), so the
    // pause can take a few of them under load.
    wait_for("the pause in the log", Duration::from_secs(150), || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("ingestion paused, storage unavailable")
    });
    // WAL: a reader still sees the committed state.
    assert_eq!(count_at(&config, "SELECT count(*) FROM messages"), 1);
    locker.execute_batch("COMMIT").unwrap();
    drop(locker);

    wait_for("the three after the lock", Duration::from_secs(90), || {
        count_at(&config, "SELECT count(*) FROM tickets") == 4
    });
    let _ = s.logout().await;
    // At least once: an ack whose "sent" mark hit the lock is sent again,
    // with the same Message-ID.
    // Rows claimed by a drain that then hit the lock are due again after
    // their claim backoff (about 30 s), behind writers that each waited
    // out the busy timeout: give the sink two of those.
    // Four distinct Message-IDs, not four mails: the resend of an ack
    // sent before the lock arrives beside its original.
    let ids = sink_message_ids_within(&stack, 4, Duration::from_secs(120)).await;
    assert_eq!(
        ids.len(),
        4,
        "{ids:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    stop_daemon(child);
    let conn = db(&config);
    // The Message-IDs at the server are the outbox's, not just four.
    let bare = |s: &str| s.trim_matches(['<', '>']).to_string();
    let queued: std::collections::BTreeSet<Option<String>> = conn
        .prepare("SELECT message_id FROM outbox WHERE kind = 'ack'")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|m| Some(bare(&m.unwrap())))
        .collect();
    let arrived: std::collections::BTreeSet<Option<String>> =
        ids.iter().map(|m| m.as_deref().map(bare)).collect();
    assert_eq!(arrived, queued);
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), 4);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages WHERE kind IN ('poison', 'unparsable')"
        ),
        0
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        4
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("database is locked"), "{text}");
    assert!(text.contains("ingestion resumed"), "{text}");
}
