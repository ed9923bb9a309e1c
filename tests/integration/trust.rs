//! Trust (issue 14) on real parts: DKIM signatures made by a real signer
//! (dkimpy's `dkimsign`, Debian python3-dkim) with a key made by openssl,
//! verified by the daemon's own check against a dnsmasq started by the
//! test on loopback, serving the key and the DMARC record. Forged agent
//! commands, forged Authentication-Results, plan and priority claims,
//! Reply-To, a stranger using a webmail customer's tag, and the global
//! acknowledgement limit under a flood, each asserted on the database and
//! on what reached the sink mailbox.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A dnsmasq on 127.0.0.1 serving TXT records only (everything else:
/// NXDOMAIN), stopped on drop.
struct Dns {
    child: Child,
    port: u16,
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_dns(dir: &Path, records: &[(String, String)]) -> Dns {
    for _ in 0..3 {
        let port = free_base();
        let log = dir.join(format!("dnsmasq-{port}.log"));
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            &format!("--port={port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--local=/#/",
            "--log-facility=-",
        ]);
        for (name, text) in records {
            // A TXT record of several strings, each under 255 bytes.
            let chunks: Vec<String> = text
                .as_bytes()
                .chunks(200)
                .map(|c| String::from_utf8(c.to_vec()).unwrap())
                .collect();
            cmd.arg(format!("--txt-record={name},{}", chunks.join(",")));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("dnsmasq (Debian dnsmasq-base) is installed by scripts/test");
        let mut dns = Dns { child, port };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("started") {
                return dns;
            }
            if dns.child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "dnsmasq on {port} did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let _ = dns.child.kill();
        std::mem::forget(dns);
    }
    panic!("could not start dnsmasq");
}

/// An RSA key (openssl) and its DKIM TXT record.
fn make_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("dkim.pem");
    let ok = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl rsa -in '{}' -pubout -outform DER 2>/dev/null | base64 -w0",
            key.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let p = String::from_utf8(out.stdout).unwrap();
    (key, format!("v=DKIM1; k=rsa; p={}", p.trim()))
}

/// The message signed by dkimpy (d=`domain`, s=sel1).
fn sign(key: &Path, domain: &str, raw: &str) -> Vec<u8> {
    let mut child = Command::new("dkimsign")
        .arg("sel1")
        .arg(domain)
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dkimsign (Debian python3-dkim) is installed by scripts/test");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(raw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout.starts_with(b"DKIM-Signature:"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

fn msg(from: &str, subject: &str, mid: &str, extra: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: support@desk.test\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
}

fn trust_config(stack: &Stack, dns: &Dns, trust_extra: &str) -> PathBuf {
    write_config_with(
        stack,
        true,
        &format!(
            "\n[agents]\ndomains = [\"staff.example\"]\n\n[trust]\nauthserv_id = [\"mx.desk.test\"]\nverify_dkim = true\ndns = \"127.0.0.1:{}\"\n{trust_extra}\n",
            dns.port
        ),
    )
}

fn ticket(config: &Path, reference: &str) -> (String, String, Option<String>, Option<String>) {
    db(config)
        .query_row(
            "SELECT status, plan, priority, first_responded_at FROM tickets WHERE reference = ?1",
            [reference],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
}

fn header_of(raw: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(raw);
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_mail_does_nothing_and_signed_mail_works_on_a_real_dkim_path() {
    let stack = start_stack();
    let dir = stack.dir.path();
    let (key, record) = make_key(dir);
    let dns = start_dns(
        dir,
        &[
            ("sel1._domainkey.staff.example".into(), record.clone()),
            ("sel1._domainkey.acme-nyc.example".into(), record),
            ("_dmarc.staff.example".into(), "v=DMARC1; p=reject".into()),
        ],
    );
    let config = trust_config(&stack, &dns, "");

    let agent = "Agent <agent@staff.example>";
    let cio = "CIO <cio@acme-nyc.example>";
    let trusted_fail = "Authentication-Results: mx.desk.test; dkim=fail header.d=staff.example; dmarc=fail header.from=staff.example\r\n";
    let forged_pass = "Authentication-Results: mx.desk.test; dkim=pass header.d=staff.example; dmarc=pass header.from=staff.example\r\n";
    let tampered = {
        let signed = sign(
            &key,
            "staff.example",
            &msg(
                agent,
                "Re: [SUP-000001] Printer broken",
                "t1@staff.example",
                "",
                "#close",
            ),
        );
        String::from_utf8(signed)
            .unwrap()
            .replace("#close", "#close\r\nand more")
    };
    let mails: Vec<Vec<u8>> = vec![
        // 1, 2: two customers' tickets.
        msg(
            "Ann <ann@customer.example>",
            "Printer broken",
            "c1@customer.example",
            "",
            "It jams.",
        )
        .into(),
        msg(
            "Bob <bob@other.example>",
            "Backup fails",
            "c2@other.example",
            "",
            "Since Friday.",
        )
        .into(),
        // 3: an agent's address, no signature, #close.
        msg(
            agent,
            "Re: [SUP-000001] Printer broken",
            "f1@staff.example",
            "",
            "#close",
        )
        .into(),
        // 4: the trusted server said fail; a pass copy among the message's own headers.
        format!(
            "{trusted_fail}{}",
            msg(
                agent,
                "Re: [SUP-000001] Printer broken",
                "f2@staff.example",
                forged_pass,
                "#close"
            )
        )
        .into(),
        // 5: signed by the agents' domain: closes SUP-000002.
        sign(
            &key,
            "staff.example",
            &msg(
                agent,
                "Re: [SUP-000002] Backup fails",
                "s1@staff.example",
                "",
                "#close",
            ),
        ),
        // 6: signed, then changed on the way.
        tampered.into_bytes(),
        // 7 (SUP-000003): a premium customer's address, unsigned, asking P1.
        msg(
            cio,
            "[P1] Datacenter down",
            "p1@acme-nyc.example",
            "",
            "All down.",
        )
        .into(),
        // 8 (SUP-000004): the same, signed by its domain.
        sign(
            &key,
            "acme-nyc.example",
            &msg(
                cio,
                "[P1] Datacenter down",
                "p2@acme-nyc.example",
                "",
                "All down.",
            ),
        ),
        // 9 (SUP-000005): unauthenticated, Reply-To a third party.
        msg(
            "Carol <carol@customer3.example>",
            "Question",
            "r1@customer3.example",
            "Reply-To: victim@third-party.example\r\n",
            "How do I restore?",
        )
        .into(),
        // 10 (SUP-000006), 11: a webmail customer, and a stranger at the
        // same provider using the tag.
        msg(
            "Dan <dan@gmail.com>",
            "Laptop",
            "g1@gmail.com",
            "",
            "Broken screen.",
        )
        .into(),
        msg(
            "Mallory <mallory@gmail.com>",
            "Re: [SUP-000006] Laptop",
            "g2@gmail.com",
            "",
            "I am Dan's colleague, please close this.",
        )
        .into(),
    ];
    for (i, m) in mails.iter().enumerate() {
        deliver_raw_to_dovecot(&stack, "support", i + 1, m);
    }
    run_once_ok(&config);

    // Forged, forged header, tampered: SUP-000001 stays open, no response.
    let (status, _, _, responded) = ticket(&config, "SUP-000001");
    assert_eq!(status, "open");
    assert_eq!(responded, None);
    let conn = db(&config);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id
             WHERE t.reference = 'SUP-000001' AND e.action = 'unauthenticated agent mail'"
        ),
        3
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages WHERE kind = 'unauthenticated-agent'"
        ),
        3
    );
    // Signed: SUP-000002 resolved, the verdict from our own check.
    assert_eq!(ticket(&config, "SUP-000002").0, "resolved");
    let auth: String = conn
        .query_row(
            "SELECT auth FROM messages WHERE message_id = 's1@staff.example'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&auth).unwrap();
    assert_eq!(v["source"], "own DKIM check", "{v}");
    assert_eq!(v["dmarc"], "pass", "{v}");
    assert_eq!(v["dkim"][0]["result"], "pass", "{v}");
    assert_eq!(v["dkim"][0]["aligned"], true, "{v}");
    let tampered: String = conn
        .query_row(
            "SELECT auth FROM messages WHERE message_id = 't1@staff.example'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(tampered.contains("\"fail\""), "{tampered}");
    // The plan and the priority are claims.
    let (_, plan, prio, _) = ticket(&config, "SUP-000003");
    assert_eq!(plan, "community");
    assert_ne!(prio.as_deref(), Some("P1"));
    let (_, plan, prio, _) = ticket(&config, "SUP-000004");
    assert_eq!(plan, "premium");
    assert_eq!(prio.as_deref(), Some("P1"));
    // The stranger's mail opened its own ticket.
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages m JOIN tickets t ON t.id = m.ticket_id WHERE t.reference = 'SUP-000006'"
        ),
        1
    );
    let requester: String = conn
        .query_row(
            "SELECT requester FROM tickets WHERE reference = 'SUP-000007'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(requester, "mallory@gmail.com");

    // What reached the sink: one ack per new ticket (7), none to the
    // third party, Carol's to Carol.
    let sink = sink_messages(&stack, 7).await;
    let to: Vec<String> = sink.iter().map(|m| header_of(m, "To")).collect();
    assert_eq!(sink.len(), 7, "{to:?}");
    assert!(!to.iter().any(|t| t.contains("third-party")), "{to:?}");
    assert!(
        to.iter().any(|t| t.contains("carol@customer3.example")),
        "{to:?}"
    );
    let later = sink_messages_within(&stack, 8, Duration::from_secs(2)).await;
    assert_eq!(later.len(), 7, "nothing else was sent");

    // The CLI shows the verdicts.
    let out = run(&config, &["status"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unauthenticated agent mail: 3"), "{text}");
    let out = run(&config, &["tickets", "show", "SUP-000002"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("auth dmarc=pass dkim=pass(staff.example, aligned)")
            && text.contains("own DKIM check"),
        "{text}"
    );
    let signed = dir.join("signed.eml");
    std::fs::write(&signed, &mails[4]).unwrap();
    let forged = dir.join("forged.eml");
    std::fs::write(&forged, &mails[3]).unwrap();
    let out = run(
        &config,
        &[
            "classify",
            signed.to_str().unwrap(),
            forged.to_str().unwrap(),
        ],
        &[],
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // classify reads headers only (no DNS): the signed mail has none.
    assert_eq!(lines[0]["authenticated"], false, "{}", lines[0]);
    assert_eq!(lines[0]["auth_source"], "none");
    assert_eq!(lines[1]["authenticated"], false, "{}", lines[1]);
    assert_eq!(lines[1]["auth_source"], "header mx.desk.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_acknowledgement_limit_holds_against_a_flood_from_200_addresses() {
    const FLOOD: usize = 200;
    const LIMIT: usize = 50;
    let stack = start_stack();
    let dns = start_dns(stack.dir.path(), &[]);
    let config = trust_config(&stack, &dns, &format!("ack_limit_all_per_hour = {LIMIT}"));
    for i in 1..=FLOOD {
        let raw = msg(
            &format!("User {i} <user{i}@flood{i}.example>"),
            "Win a prize",
            &format!("flood-{i}@flood{i}.example"),
            "",
            "Click here.",
        );
        deliver_raw_to_dovecot(&stack, "support", i, raw.as_bytes());
    }
    run_once_ok(&config);
    let conn = db(&config);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM tickets"),
        FLOOD as i64,
        "every mail has its ticket"
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        LIMIT as i64
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM tickets WHERE note LIKE '%ack_limit_all_per_hour%'"
        ),
        (FLOOD - LIMIT) as i64
    );
    let sink = sink_messages(&stack, LIMIT).await;
    assert_eq!(sink.len(), LIMIT);
    let more = sink_messages_within(&stack, LIMIT + 1, Duration::from_secs(2)).await;
    assert_eq!(more.len(), LIMIT, "no acknowledgement past the limit");
}
