//! Database schema: append-only migrations (rusqlite_migration keeps the
//! version in `user_version`, one transaction per step). Never edit a
//! released step; add a new one.

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

const MIGRATIONS: &[M<'static>] = &[
    M::up(
        r#"
CREATE TABLE tickets (
    id                   INTEGER PRIMARY KEY,
    reference            TEXT NOT NULL UNIQUE,
    status               TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'pending', 'resolved', 'closed')),
    subject              TEXT NOT NULL DEFAULT '',
    requester            TEXT NOT NULL,
    requester_name       TEXT,
    customer             TEXT,
    plan                 TEXT NOT NULL,
    language             TEXT NOT NULL,
    category             TEXT,
    priority             TEXT,
    impact               TEXT,
    urgency              TEXT,
    triage_reasons       TEXT NOT NULL DEFAULT '[]',
    received_at          TEXT NOT NULL,
    first_response_due   TEXT,
    resolution_due       TEXT,
    first_responded_at   TEXT,
    resolved_at          TEXT,
    note                 TEXT,
    created_at           TEXT NOT NULL
) STRICT;
CREATE INDEX tickets_open_due ON tickets(status, first_response_due);

CREATE TABLE messages (
    id             INTEGER PRIMARY KEY,
    ticket_id      INTEGER REFERENCES tickets(id),
    direction      TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    -- customer | followup | automated | spam | unparsable | duplicate | oversized | ack
    kind           TEXT NOT NULL,
    mailbox        TEXT,
    source_key     TEXT,
    uidvalidity    INTEGER,
    uid            INTEGER,
    -- 1 once the source was told (IMAP \Seen or MOVE, Maildir rename)
    marked         INTEGER NOT NULL DEFAULT 0,
    message_id     TEXT,
    sender         TEXT,
    subject        TEXT,
    received_at    TEXT NOT NULL,
    body_text      TEXT,
    raw            BLOB NOT NULL,
    error          TEXT,
    created_at     TEXT NOT NULL,
    UNIQUE (mailbox, source_key)
) STRICT;
CREATE INDEX messages_message_id ON messages(message_id);
CREATE INDEX messages_ticket ON messages(ticket_id);
CREATE INDEX messages_unmarked ON messages(mailbox, marked) WHERE marked = 0;

CREATE TABLE attachments (
    id            INTEGER PRIMARY KEY,
    message_id    INTEGER NOT NULL REFERENCES messages(id),
    filename      TEXT,
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    path          TEXT NOT NULL
) STRICT;

CREATE TABLE mailbox_state (
    mailbox      TEXT PRIMARY KEY,
    uidvalidity  INTEGER NOT NULL,
    last_uid     INTEGER NOT NULL,
    last_poll_at TEXT,
    last_error   TEXT
) STRICT;

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    ticket_id        INTEGER REFERENCES tickets(id),
    kind             TEXT NOT NULL,
    message_id       TEXT NOT NULL UNIQUE,
    sender           TEXT NOT NULL,
    recipients       TEXT NOT NULL,
    raw              BLOB NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT
) STRICT;
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
"#,
    ),
    M::up(
        r#"
-- Ticket lifecycle and escalation. Per clock (fr = first response, res =
-- resolution): the warning instant, the highest escalation level handled
-- (0 none, 1 warning, 2 breach, 3 second) and when the sweeper must look
-- again (NULL: nothing left, e.g. responded or closed). The sweep reads
-- only rows with a next instant in the past, through partial indexes, so
-- its cost does not grow with closed or answered tickets.
ALTER TABLE tickets ADD COLUMN customer_timezone TEXT;
ALTER TABLE tickets ADD COLUMN assignee TEXT;
ALTER TABLE tickets ADD COLUMN previous_ticket INTEGER REFERENCES tickets(id);
ALTER TABLE tickets ADD COLUMN pending_since TEXT;
ALTER TABLE tickets ADD COLUMN first_response_warn TEXT;
ALTER TABLE tickets ADD COLUMN resolution_warn TEXT;
ALTER TABLE tickets ADD COLUMN fr_level INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN res_level INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN fr_next_at TEXT;
ALTER TABLE tickets ADD COLUMN res_next_at TEXT;
CREATE INDEX tickets_fr_next ON tickets(fr_next_at) WHERE fr_next_at IS NOT NULL;
CREATE INDEX tickets_res_next ON tickets(res_next_at) WHERE res_next_at IS NOT NULL;

-- One row per ticket, clock, level and recipient: the notice queued (or
-- a late sweep sends only the highest level reached).
CREATE TABLE escalations (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets(id),
    clock       TEXT NOT NULL CHECK (clock IN ('first_response', 'resolution')),
    level       TEXT NOT NULL CHECK (level IN ('warning', 'breach', 'second')),
    recipient   TEXT NOT NULL,
    outbox_id   INTEGER REFERENCES outbox(id),
    created_at  TEXT NOT NULL,
    UNIQUE (ticket_id, clock, level, recipient)
) STRICT;

-- What happened to a ticket and who did it (agent commands, CLI, reopen).
CREATE TABLE ticket_events (
    id         INTEGER PRIMARY KEY,
    ticket_id  INTEGER NOT NULL REFERENCES tickets(id),
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    detail     TEXT
) STRICT;
CREATE INDEX ticket_events_ticket ON ticket_events(ticket_id);
"#,
    ),
    M::up(
        r#"
-- Per mailbox: the last successful pass, the last error, and whether the
-- admin was alerted (cleared, with a recovery mail, once a pass succeeds).
CREATE TABLE mailbox_health (
    mailbox        TEXT PRIMARY KEY,
    last_ok_at     TEXT,
    last_error     TEXT,
    last_error_at  TEXT,
    alerted_at     TEXT
) STRICT;
"#,
    ),
    M::up(
        r#"
-- Set while a process is sending the row; a row still claimed when a
-- process starts was interrupted by a crash and is due again at once.
ALTER TABLE outbox ADD COLUMN claimed_at TEXT;
"#,
    ),
    M::up(
        r#"
-- The per-address acknowledgement limit looks up recent acks by address:
-- without this index every new ticket scanned the whole outbox.
CREATE INDEX outbox_ack_recipient ON outbox(lower(recipients), created_at) WHERE kind = 'ack';
"#,
    ),
    M::up(
        r#"
-- An acknowledgement whose template failed to render for this ticket's
-- data: what it needs to be rendered again (JSON), until it is sent.
ALTER TABLE tickets ADD COLUMN held_ack TEXT;
CREATE INDEX tickets_held_ack ON tickets(id) WHERE held_ack IS NOT NULL;
-- Admin alerts about the desk itself (not one mailbox): since when the
-- condition holds and when the admin was told.
CREATE TABLE desk_alerts (
    name        TEXT PRIMARY KEY,
    alerted_at  TEXT NOT NULL,
    detail      TEXT
) STRICT;
"#,
    ),
    M::up(
        r#"
-- The outbox's SMTP session, one row: the failure going on (login: the
-- server refused our login; connect: no session at all), since when, the
-- last error, and whether the admin was alerted (cleared, with a recovery
-- mail, once a session works). Its own table: a row in mailbox_health
-- could collide with a mailbox's name and would show as a mailbox.
CREATE TABLE outbox_health (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    failure        TEXT CHECK (failure IN ('login', 'connect')),
    failing_since  TEXT,
    last_error     TEXT,
    last_error_at  TEXT,
    alerted_at     TEXT
) STRICT;
-- Set by `outbox retry`: the queue lifetime counts from it rather than
-- from created_at (which the acknowledgement cap counts from).
ALTER TABLE outbox ADD COLUMN retried_at TEXT;
"#,
    ),
    M::up(
        r#"
-- A message above max_message_bytes is kept in a file of the state
-- directory (raw/<2 hex>/<sha256>.eml), named here, with `raw` empty.
ALTER TABLE messages ADD COLUMN raw_path TEXT;
"#,
    ),
    M::up(
        r#"
-- Who vouched for the sender (core/auth.rs Verdict, JSON).
ALTER TABLE messages ADD COLUMN auth TEXT;
-- The acknowledgement limits for all addresses and per domain count the
-- last hour's acknowledgements.
CREATE INDEX outbox_ack_created ON outbox(created_at) WHERE kind = 'ack';
-- Mail from an agent's address that was not authenticated: status counts
-- it, the admin alert reads the latest.
CREATE INDEX messages_unauthenticated ON messages(created_at) WHERE kind = 'unauthenticated-agent';
"#,
    ),
    M::up(
        r#"
-- Where the SLA clocks count from: NULL for received_at; a reopen with
-- `reopen = "restart"` sets it to the reopening message's arrival.
ALTER TABLE tickets ADD COLUMN sla_started_at TEXT;
-- Seconds the resolution clock stood still (pending, or resolved before
-- a reopen with `reopen = "resume"`), so a priority change keeps them.
ALTER TABLE tickets ADD COLUMN paused_secs INTEGER NOT NULL DEFAULT 0;
-- A pending ticket's next reminder or auto-close instant, and what was
-- done (0 nothing, 1 reminded); read by the sweeper through the index.
ALTER TABLE tickets ADD COLUMN pending_next_at TEXT;
ALTER TABLE tickets ADD COLUMN pending_stage INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tickets_pending_next ON tickets(pending_next_at) WHERE pending_next_at IS NOT NULL;
"#,
    ),
    M::up(
        r#"
-- The manager digests sent: one row per digest, period (its first local
-- day) and recipient, written in the transaction that queues the mail,
-- so each goes out once across restarts.
CREATE TABLE digests (
    name        TEXT NOT NULL,
    first_day   TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    outbox_id   INTEGER REFERENCES outbox(id),
    queued_at   TEXT NOT NULL,
    PRIMARY KEY (name, first_day, recipient)
) STRICT;
"#,
    ),
    M::up(
        r#"
-- The per-domain acknowledgement limit reads its domain's recent
-- acknowledgements by index (a LIKE over the whole last hour cost every
-- new ticket a scan of everyone's). The domain is the part after the
-- recipient's last '@', lowercase; rtrim strips what follows that '@'.
ALTER TABLE outbox ADD COLUMN recipient_domain TEXT;
UPDATE outbox SET recipient_domain = lower(substr(recipients, length(rtrim(recipients, replace(recipients, '@', ''))) + 1))
 WHERE kind = 'ack' AND instr(recipients, '@') > 0 AND instr(recipients, ',') = 0;
CREATE INDEX outbox_ack_domain ON outbox(recipient_domain, created_at) WHERE kind = 'ack';
"#,
    ),
    M::up(
        r#"
-- Small attachments are kept in their row (content), large ones in a
-- file (path): exactly one of the two.
CREATE TABLE attachments_v2 (
    id            INTEGER PRIMARY KEY,
    message_id    INTEGER NOT NULL REFERENCES messages(id),
    filename      TEXT,
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    path          TEXT,
    content       BLOB,
    CHECK ((path IS NULL) <> (content IS NULL))
) STRICT;
INSERT INTO attachments_v2 (id, message_id, filename, content_type, size, sha256, path)
    SELECT id, message_id, filename, content_type, size, sha256, path FROM attachments;
DROP TABLE attachments;
ALTER TABLE attachments_v2 RENAME TO attachments;
"#,
    ),
];

/// The migration that added `outbox.recipient_domain` (its backfill is
/// tested from the version before it).
#[cfg(test)]
const RECIPIENT_DOMAIN: usize = 12;

pub fn migrate(conn: &mut Connection) -> Result<()> {
    Migrations::from_slice(MIGRATIONS)
        .to_latest(conn)
        .context("Applying migrations")
}

/// Offline commands run no migration: the database must be at the
/// version this binary migrates to.
pub fn check_version(conn: &Connection, path: &std::path::Path) -> Result<()> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .context("Reading the schema version")?;
    let expected = MIGRATIONS.len() as i64;
    if found < expected {
        anyhow::bail!(
            "The database {} is at schema version {found}, this supportdesk expects \
             {expected}: start (or restart) the daemon once so it migrates, then run this again",
            path.display()
        );
    }
    if found > expected {
        anyhow::bail!(
            "The database {} is at schema version {found}, written by a newer supportdesk \
             (this one knows {expected}): use the binary the daemon runs",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_domain_backfill_takes_the_part_after_the_last_at() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let m = rusqlite_migration::Migrations::from_slice(super::MIGRATIONS);
        m.to_version(&mut conn, super::RECIPIENT_DOMAIN - 1)
            .unwrap();
        for (i, (kind, to)) in [
            ("ack", "Bob@Example.COM"),
            ("ack", "\"a@b\"@evil.org"),
            ("ack", "x@y.com,z@w.com"),
            ("escalation", "boss@corp.example"),
        ]
        .iter()
        .enumerate()
        {
            conn.execute(
                "INSERT INTO outbox (kind, message_id, sender, recipients, raw, next_attempt_at, created_at)
                 VALUES (?1, ?2, 'desk@x', ?3, x'', 't', 't')",
                rusqlite::params![kind, format!("m{i}"), to],
            )
            .unwrap();
        }
        m.to_latest(&mut conn).unwrap();
        let got: Vec<Option<String>> = conn
            .prepare("SELECT recipient_domain FROM outbox ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let want = [Some("example.com"), Some("evil.org"), None, None];
        assert_eq!(got, want.map(|d| d.map(str::to_string)));
        // What ingest writes for new rows agrees with the backfill.
        assert_eq!(
            crate::core::auth::domain_of("\"a@b\"@Evil.org").as_deref(),
            Some("evil.org")
        );
    }

    #[test]
    fn attachments_in_files_keep_their_path_when_rows_may_hold_content() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let m = rusqlite_migration::Migrations::from_slice(super::MIGRATIONS);
        m.to_version(&mut conn, super::MIGRATIONS.len() - 1)
            .unwrap();
        conn.execute_batch(
            "INSERT INTO messages (id, direction, kind, received_at, raw, created_at)
             VALUES (1, 'in', 'customer', 't', x'', 't');
             INSERT INTO attachments (message_id, filename, content_type, size, sha256, path)
             VALUES (1, 'a.log', 'text/plain', 3, 'abc', 'attachments/ab/abc');",
        )
        .unwrap();
        m.to_latest(&mut conn).unwrap();
        let row: (String, Option<Vec<u8>>) = conn
            .query_row("SELECT path, content FROM attachments", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(row, ("attachments/ab/abc".to_string(), None));
        // Exactly one of the two.
        for (path, content) in [(None, None), (Some("p"), Some(&b"x"[..]))] {
            let r = conn.execute(
                "INSERT INTO attachments (message_id, content_type, size, sha256, path, content)
                 VALUES (1, 'text/plain', 1, 'h', ?1, ?2)",
                rusqlite::params![path, content],
            );
            assert!(r.is_err(), "{path:?} {content:?}");
        }
    }

    #[test]
    fn migrations_are_valid() {
        rusqlite_migration::Migrations::from_slice(super::MIGRATIONS)
            .validate()
            .unwrap();
    }
}
