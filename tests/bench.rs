//! Benchmarks on the real servers, run by `scripts/bench` in a release
//! build (`cargo test --release --test bench -- --ignored --nocapture
//! --test-threads=1`). Ignored by a plain `cargo test`; they print figures
//! and never assert on time.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures::TryStreamExt;
use rusqlite::{Connection, params};

/// A field of /proc/PID/status in kB (VmRSS, VmHWM).
fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the binary to completion, sampling its peak RSS; returns (secs, peak MB).
/// The binary under test: this build's, or another one named by
/// SUPPORTDESK_BENCH_BIN (an A/B of two commits with one bench binary).
fn bin() -> String {
    std::env::var("SUPPORTDESK_BENCH_BIN").unwrap_or_else(|_| BIN.to_string())
}

fn timed_run(config: &Path, args: &[&str]) -> (f64, f64) {
    let started = Instant::now();
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0;
    loop {
        if let Some(kb) = proc_kb(child.id(), "VmHWM:") {
            peak = peak.max(kb);
        }
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (started.elapsed().as_secs_f64(), peak as f64 / 1024.0)
}

/// Points the outbox at a closed port: acknowledgements are queued (the
/// ingest work) but their delivery fails at once and waits, so the figure
/// is ingestion alone. Bench 3 measures delivery.
fn unreachable_outbox(config: &Path) {
    let text = std::fs::read_to_string(config).unwrap();
    let at = text.find("[outbox]").unwrap();
    let outbox = "[outbox]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = 1\ntls = \"none\"\n";
    std::fs::write(config, format!("{}{outbox}", &text[..at])).unwrap();
}

/// A desk in `dir` with one Maildir mailbox "a" and an outbox out of
/// reach (acknowledgements stay queued): the Maildir and the config.
fn maildir_desk(dir: &Path) -> (PathBuf, PathBuf) {
    let md = maildir(dir, "a");
    let config = dir.join("supportdesk.toml");
    std::fs::write(&config, maildir_config(dir, &["a"])).unwrap();
    unreachable_outbox(&config);
    (md, config)
}

/// The corpus delivered into the Maildir's new/.
fn copy_corpus(md: &Path, files: &[PathBuf]) {
    for (i, f) in files.iter().enumerate() {
        std::fs::copy(f, md.join("new").join(format!("{i}.corpus"))).unwrap();
    }
}

fn corpus_or_skip() -> Option<Vec<PathBuf>> {
    let (files, _) = corpus_files();
    if files.is_empty() {
        println!("skipped: no corpus (scripts/bench fetches it)");
        return None;
    }
    Some(files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_1_ingest_from_dovecot() {
    let Some(files) = corpus_or_skip() else {
        return;
    };
    let stack = start_stack();
    let config = write_config(&stack, true);
    unreachable_outbox(&config);
    let mut s = imap_login(&stack, "support", "supportpw").await;
    s.select("INBOX").await.unwrap();
    deliver_to_dovecot(&stack, "support", &files);
    // A minimal client: UID FETCH BODY.PEEK[] of the whole mailbox, batches of 100.
    let t = Instant::now();
    s.select("INBOX").await.unwrap();
    let mut uids: Vec<u32> = s.uid_search("ALL").await.unwrap().into_iter().collect();
    uids.sort_unstable();
    let mut bytes = 0usize;
    for chunk in uids.chunks(100) {
        let set = format!("{}:{}", chunk[0], chunk[chunk.len() - 1]);
        let fetched: Vec<_> = s
            .uid_fetch(&set, "BODY.PEEK[]")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        bytes += fetched
            .iter()
            .filter_map(|f| f.body())
            .map(<[u8]>::len)
            .sum::<usize>();
    }
    let fetch_secs = t.elapsed().as_secs_f64();
    let _ = s.logout().await;
    let n = files.len() as f64;
    let (secs, peak) = timed_run(&config, &["run", "--once"]);
    let conn = db(&config);
    let tickets = count(&conn, "SELECT count(*) FROM tickets");
    println!(
        "BENCH 1 ingest from Dovecot (IMAPS): {n} messages ({:.1} MB): pipeline {:.0} msg/s ({secs:.2} s, {tickets} tickets, acks queued, not sent), \
         UID FETCH alone {:.0} msg/s ({fetch_secs:.2} s), ratio {:.0}%, peak RSS {peak:.1} MB",
        bytes as f64 / 1e6,
        n / secs,
        n / fetch_secs,
        100.0 * fetch_secs / secs
    );
}

#[test]
#[ignore]
fn bench_2_ingest_from_maildir() {
    let Some(files) = corpus_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (md, config) = maildir_desk(dir.path());
    copy_corpus(&md, &files);
    let (secs, peak) = timed_run(&config, &["run", "--once"]);
    let n = files.len() as f64;
    println!(
        "BENCH 2 ingest from Maildir: {n} messages: {:.0} msg/s ({secs:.2} s), peak RSS {peak:.1} MB",
        n / secs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_3_outbox_rate() {
    const N: usize = 1000;
    let stack = start_stack();
    let config = write_config(&stack, false);
    // Queue N acknowledgements with the SMTP server out of reach...
    let good = std::fs::read_to_string(&config).unwrap();
    let port_line = format!("port = {}\ntls = \"starttls\"\nusername", stack.submission);
    std::fs::write(
        &config,
        good.replace(&port_line, "port = 1\ntls = \"starttls\"\nusername"),
    )
    .unwrap();
    let mut s = imap_login(&stack, "support", "supportpw").await;
    for n in 0..N {
        append(
            &mut s,
            &customer_mail(
                n,
                &format!("user{n}@example.com"),
                "Question",
                "How do I configure retention?",
            ),
        )
        .await;
    }
    let _ = s.logout().await;
    let _ = run(&config, &["run", "--once"], &[]);
    let conn = db(&config);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM outbox WHERE status = 'pending'"
        ),
        N as i64
    );
    conn.execute(
        "UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00Z'",
        [],
    )
    .unwrap();
    // ... then deliver them all at once (SUPPORTDESK_BENCH_CONNECTIONS:
    // another number of SMTP sessions than the default).
    let good = match std::env::var("SUPPORTDESK_BENCH_CONNECTIONS") {
        Ok(n) => good.replace("[outbox]\n", &format!("[outbox]\nconnections = {n}\n")),
        Err(_) => good,
    };
    std::fs::write(&config, good).unwrap();
    let (secs, _) = timed_run(&config, &["run", "--once"]);
    let sent = count(&conn, "SELECT count(*) FROM outbox WHERE status = 'sent'");
    // The same Postfix, in the same run, fed by its own load generator
    // (smtp-source: plain SMTP, no TLS, no AUTH, no database) with as many
    // sessions and messages of the same size: what this machine's Postfix
    // takes at most while it also delivers to Dovecot.
    // Once our acknowledgements have left its queue.
    let postfix = stack.dir.path().join("stack/postfix");
    let drained = || {
        Command::new("postqueue")
            .arg("-c")
            .arg(&postfix)
            .arg("-j")
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.is_empty())
    };
    let until = Instant::now() + Duration::from_secs(60);
    while !drained() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let sessions = std::env::var("SUPPORTDESK_BENCH_CONNECTIONS").unwrap_or_else(|_| "4".into());
    let size = count(
        &conn,
        "SELECT CAST(avg(length(raw)) AS INTEGER) FROM outbox",
    );
    let started = Instant::now();
    let out = Command::new("smtp-source")
        .args([
            "-s",
            &sessions,
            "-m",
            &N.to_string(),
            "-l",
            &size.to_string(),
        ])
        .args(["-f", "bench@example.org", "-t", "reference@example.com"])
        .arg(format!("127.0.0.1:{}", stack.smtp))
        .output()
        .expect("smtp-source (from the postfix package)");
    let ref_secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "smtp-source: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rate, ref_rate) = (sent as f64 / secs, N as f64 / ref_secs);
    println!(
        "BENCH 3 outbox to Postfix (submission, STARTTLS + AUTH, {sessions} sessions): {sent} acknowledgements in {secs:.2} s: {rate:.0} /s; \
         smtp-source alone (plain SMTP, {sessions} sessions, {N} messages of {size} bytes) {ref_rate:.0} /s ({ref_secs:.2} s), ratio {:.0}%",
        100.0 * rate / ref_rate
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_4_ack_latency_with_idle() {
    const N: usize = 200;
    let stack = start_stack();
    let config = write_config(&stack, false);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "poll_interval = \"1s\"",
        "poll_interval = \"1h\"\nidle = true",
    );
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let db_path = config.parent().unwrap().join("state/supportdesk.db");
    let conn = Connection::open(&db_path).unwrap();
    let mut s = imap_login(&stack, "support", "supportpw").await;
    let mut lat = Vec::with_capacity(N);
    for n in 0..N {
        append(
            &mut s,
            &customer_mail(
                n,
                &format!("user{n}@example.com"),
                "Question",
                "How do I configure retention?",
            ),
        )
        .await;
        let t = Instant::now();
        let mid = format!("cust-{n}@example.com");
        loop {
            let sent: i64 = conn
                .query_row(
                    "SELECT count(*) FROM outbox o JOIN messages m ON m.ticket_id = o.ticket_id
                     WHERE m.message_id = ?1 AND o.status = 'sent'",
                    params![mid],
                    |r| r.get(0),
                )
                .unwrap_or(0);
            if sent > 0 {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "no ack for {mid}");
            std::thread::sleep(Duration::from_millis(5));
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = s.logout().await;
    let rss = proc_kb(child.id(), "VmRSS:").unwrap_or(0) as f64 / 1024.0;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    println!(
        "BENCH 4 ack latency with IDLE (APPEND done -> SMTP 250 recorded): {N} messages one by one: median {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms; daemon RSS after {rss:.1} MB",
        q(0.5),
        q(0.9),
        q(0.99),
        lat[lat.len() - 1]
    );
}

#[test]
#[ignore]
fn bench_5_sweep_cost() {
    use supportdesk::config;
    use supportdesk::render::Renderer;
    for total in [10_000i64, 100_000, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let md = maildir(dir.path(), "a");
        let _ = md;
        let cfg_path = dir.path().join("supportdesk.toml");
        let text = maildir_config(dir.path(), &["a"])
            + "\n[escalation]\n[[escalation.recipients]]\naddress = \"manager@desk.test\"\n";
        std::fs::write(&cfg_path, text).unwrap();
        let cfg = config::load(&cfg_path).unwrap();
        let renderer =
            Renderer::load(&cfg.desk.templates_dir, cfg.triage.default_language()).unwrap();
        std::fs::create_dir_all(&cfg.desk.state_dir).unwrap();
        let db_path = cfg.desk.state_dir.join("supportdesk.db");
        let store = supportdesk::store::Store::open(&db_path).unwrap();
        drop(store);
        let mut conn = Connection::open(&db_path).unwrap();
        let now = chrono::Utc::now();
        let ts =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let (past, future) = (
            ts(now - chrono::TimeDelta::hours(1)),
            ts(now + chrono::TimeDelta::days(1)),
        );
        let t = Instant::now();
        {
            let tx = conn.transaction().unwrap();
            {
                let mut ins = tx
                    .prepare(
                        "INSERT INTO tickets (id, reference, status, subject, requester, plan, language, priority,
                            received_at, first_response_due, fr_next_at, created_at)
                         VALUES (?1, 'SUP-' || ?1, ?2, 'subject', 'c@example.com', 'premium', 'en', 'P1', ?3, ?4, ?5, ?3)",
                    )
                    .unwrap();
                for id in 1..=total {
                    // 10% open and not yet due; 100 due now; the rest resolved.
                    let (status, next) = if id <= 100 {
                        ("open", Some(past.as_str()))
                    } else if id % 10 == 0 {
                        ("open", Some(future.as_str()))
                    } else {
                        ("resolved", None)
                    };
                    let due = if id <= 100 { &past } else { &future };
                    ins.execute(params![id, status, past, due, next]).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let fill = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let due = supportdesk::escalate::sweep(&mut conn, &cfg, &renderer, now).unwrap();
        let first = t.elapsed().as_secs_f64() * 1000.0;
        let mut steady = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let n = supportdesk::escalate::sweep(&mut conn, &cfg, &renderer, now).unwrap();
            assert_eq!(n, 0);
            steady.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        steady.sort_by(f64::total_cmp);
        let t = Instant::now();
        let raw: i64 = conn
            .query_row(
                "SELECT count(*) FROM (SELECT id FROM tickets WHERE fr_next_at <= ?1
                 UNION SELECT id FROM tickets WHERE res_next_at <= ?1)",
                // (without INDEXED BY, as written first)
                [ts(now)],
                |r| r.get(0),
            )
            .unwrap();
        println!(
            "  (the due-ticket query alone: {raw} rows in {:.3} ms)",
            t.elapsed().as_secs_f64() * 1000.0
        );
        println!(
            "BENCH 5 sweep with {total} tickets ({} open): sweep with 100 due {first:.2} ms ({due} notices queued), steady sweep median {:.3} ms (fill {fill:.1} s)",
            total / 10,
            steady[steady.len() / 2]
        );
    }
}

#[test]
#[ignore]
fn bench_7_memory_idle_and_startup_with_10_mailboxes() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    for n in &names {
        maildir(dir.path(), n);
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let config = dir.path().join("supportdesk.toml");
    std::fs::write(&config, maildir_config(dir.path(), &refs)).unwrap();
    let t = Instant::now();
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let db_path = dir.path().join("state/supportdesk.db");
    wait_until("ten first polls", || {
        Connection::open(&db_path).ok().and_then(|c| {
            c.query_row("SELECT count(*) FROM mailbox_health", [], |r| {
                r.get::<_, i64>(0)
            })
            .ok()
        }) == Some(10)
    });
    let startup = t.elapsed().as_secs_f64() * 1000.0;
    std::thread::sleep(Duration::from_secs(5));
    let rss = proc_kb(child.id(), "VmRSS:").unwrap_or(0) as f64 / 1024.0;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    println!(
        "BENCH 7 memory: RSS idle with 10 Maildir mailboxes {rss:.1} MB; start-up to the 10th first poll {startup:.0} ms"
    );
}

/// Fills a migrated, empty database with `n` closed tickets of the past,
/// each with its customer message and its sent acknowledgement, older
/// than the acknowledgement window: the history a desk has after years.
fn fill_history(db_path: &Path, n: i64) {
    let mut conn = Connection::open(db_path).unwrap();
    let past = (chrono::Utc::now() - chrono::TimeDelta::days(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let raw = vec![b'x'; 400];
    let tx = conn.transaction().unwrap();
    {
        let mut ticket = tx
            .prepare(
                "INSERT INTO tickets (id, reference, status, subject, requester, plan, language, priority,
                    received_at, created_at)
                 VALUES (?1, 'OLD-' || ?1, 'closed', 'an old question', ?2, 'premium', 'en', 'P3', ?3, ?3)",
            )
            .unwrap();
        let mut message = tx
            .prepare(
                "INSERT INTO messages (ticket_id, direction, kind, mailbox, source_key, marked, message_id,
                    sender, subject, received_at, body_text, raw, created_at)
                 VALUES (?1, 'in', 'customer', 'old', ?1, 1, '<' || ?1 || '@old.example>', ?2,
                    'an old question', ?3, 'the text of an old question', ?4, ?3)",
            )
            .unwrap();
        let mut ack = tx
            .prepare(
                "INSERT INTO outbox (ticket_id, kind, message_id, sender, recipients, raw, status,
                    attempts, next_attempt_at, created_at, sent_at, recipient_domain)
                 VALUES (?1, 'ack', '<ack-' || ?1 || '@desk.test>', 'support@desk.test', ?2, ?3,
                    'sent', 1, ?4, ?4, ?4, 'old.example')",
            )
            .unwrap();
        for id in 1..=n {
            let who = format!("c{}@old.example", id % 50_000);
            ticket.execute(params![id, who, past]).unwrap();
            message.execute(params![id, who, past, raw]).unwrap();
            ack.execute(params![id, who, raw, past]).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// The corpus into a database that already holds 1,000,000 tickets (with
/// their messages and acknowledgements), against the same corpus into an
/// empty one, in the same run.
#[test]
#[ignore]
fn bench_8_ingest_into_a_million_tickets() {
    let Some(files) = corpus_or_skip() else {
        return;
    };
    let n = files.len() as f64;
    let mut rates = Vec::new();
    for history in [0i64, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let (md, config) = maildir_desk(dir.path());
        copy_corpus(&md, &files);
        let mut fill = 0.0;
        if history > 0 {
            let state = dir.path().join("state");
            std::fs::create_dir_all(&state).unwrap();
            supportdesk::store::private(&state, 0o700).unwrap();
            let db_path = state.join("supportdesk.db");
            drop(supportdesk::store::Store::open(&db_path).unwrap());
            let t = Instant::now();
            fill_history(&db_path, history);
            fill = t.elapsed().as_secs_f64();
        }
        let (secs, peak) = timed_run(&config, &["run", "--once"]);
        let conn = db(&config);
        let tickets = count(&conn, "SELECT count(*) FROM tickets") - history;
        println!(
            "  (into {history} tickets: {:.0} msg/s, {secs:.2} s, {tickets} new tickets, peak RSS {peak:.1} MB, fill {fill:.1} s)",
            n / secs
        );
        rates.push(n / secs);
    }
    println!(
        "BENCH 8 ingest from Maildir into a database of 1,000,000 tickets: {:.0} msg/s, into an empty one {:.0} msg/s: {:.0}%",
        rates[1],
        rates[0],
        100.0 * rates[1] / rates[0]
    );
}

/// A copy of a message whose Message-ID is made new for `round` (a
/// message without one is left as it is).
fn fresh_message_id(raw: &[u8], round: usize) -> Vec<u8> {
    if round == 0 {
        return raw.to_vec();
    }
    let lower = raw.to_ascii_lowercase();
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let head_end = find(&lower, b"\n\n").unwrap_or(lower.len());
    let at = if lower.starts_with(b"message-id:") {
        Some(0)
    } else {
        find(&lower[..head_end], b"\nmessage-id:").map(|i| i + 1)
    };
    let lt = at.and_then(|at| {
        raw[at..head_end]
            .iter()
            .position(|&b| b == b'<')
            .map(|p| at + p + 1)
    });
    match lt {
        Some(lt) => {
            let mut out = raw[..lt].to_vec();
            out.extend_from_slice(format!("r{round}.").as_bytes());
            out.extend_from_slice(&raw[lt..]);
            out
        }
        None => raw.to_vec(),
    }
}

/// A Maildir ten times the corpus (the corpus replayed with fresh
/// Message-IDs): the rate of each tenth, from the row counts the bench
/// reads while the daemon ingests.
#[test]
#[ignore]
fn bench_9_a_mailbox_ten_times_the_corpus() {
    let Some(files) = corpus_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (md, config) = maildir_desk(dir.path());
    let base = std::time::SystemTime::now() - Duration::from_secs(86_400);
    let mut total = 0usize;
    for round in 0..10 {
        for (i, f) in files.iter().enumerate() {
            let raw = fresh_message_id(&std::fs::read(f).unwrap(), round);
            let path = md.join("new").join(format!("{round}.{i}.corpus"));
            std::fs::write(&path, raw).unwrap();
            // Delivered in order: round 0 first (the Maildir source takes
            // the oldest delivery first).
            let when = base + Duration::from_millis(total as u64);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
            total += 1;
        }
    }
    let tenth = total / 10;
    let started = Instant::now();
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(&config)
        .args(["run", "--once"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let db_path = dir.path().join("state/supportdesk.db");
    // (elapsed, messages committed), sampled every 20 ms.
    let mut samples: Vec<(f64, i64)> = Vec::new();
    let mut conn: Option<Connection> = None;
    loop {
        if conn.is_none() && db_path.exists() {
            conn =
                Connection::open_with_flags(&db_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .ok();
        }
        if let Some(c) = &conn
            && let Ok(n) = c.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        {
            samples.push((started.elapsed().as_secs_f64(), n));
        }
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "run --once failed");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let conn = db(&config);
    let done = count(&conn, "SELECT count(*) FROM messages");
    samples.push((started.elapsed().as_secs_f64(), done));
    assert_eq!(
        done as usize, total,
        "every message of the mailbox committed"
    );
    // When each tenth was reached; the start is the first commit.
    let at = |n: i64| {
        samples
            .iter()
            .find(|(_, c)| *c >= n)
            .map(|(t, _)| *t)
            .unwrap()
    };
    let start = at(1);
    let marks: Vec<f64> = (1..=10).map(|k| at((k * tenth) as i64)).collect();
    let mut rates = Vec::new();
    let mut prev = start;
    for m in &marks {
        rates.push(tenth as f64 / (m - prev).max(1e-3));
        prev = *m;
    }
    let list: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    println!(
        "BENCH 9 ingest from a Maildir of {total} messages (the corpus 10 times, fresh Message-IDs): first {tenth} {:.0} msg/s, last {tenth} {:.0} msg/s ({:.0}%); each tenth: {}",
        rates[0],
        rates[9],
        100.0 * rates[9] / rates[0],
        list.join(" / ")
    );
}
