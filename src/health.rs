//! Admin alerts about the desk's health: one mail when a mailbox has not
//! been fetched for `desk.fetch_alert_after`, when the SMTP login has been
//! failing that long, or when acknowledgements are held because their
//! template fails; one more on recovery. The records themselves are the
//! store's (`store::health`, `store::outbox`).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use rusqlite::Connection;

use crate::compose::{self, Reply};
use crate::config::Config;
use crate::store::{health, messages, outbox, tickets, ts};

/// Queues the alerts owed at `now`: a mailbox without a good pass since
/// `fetch_alert_after` (counted from `started` when it never had one in
/// this run) gets one alert; a later good pass gets one recovery notice.
/// Returns the number of mails queued.
pub fn check(
    conn: &mut Connection,
    cfg: &Config,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let Some(admin) = cfg.desk.admin_address.clone() else {
        return Ok(0);
    };
    let tx = crate::store::begin(conn).context("Starting the health check")?;
    let mut queued = 0;
    for mb in &cfg.mailboxes {
        let health::Health {
            last_ok,
            last_error,
            alerted,
        } = health::read(&tx, &mb.name)?;
        match alerted {
            None => {
                let since = last_ok.map_or(started, |t| t.max(started));
                if now - since < cfg.desk.fetch_alert_after {
                    continue;
                }
                let body = format!(
                    "Mailbox \"{}\" has not been fetched since {} ({}).\n\nLast error: {}\n\nNew mail there is not turned into tickets until this is fixed;\nnothing is lost: it is fetched when the mailbox is reachable again.\n\n-- \n{}\n",
                    mb.name,
                    ts(since),
                    if last_ok.is_some() {
                        "last good pass"
                    } else {
                        "daemon start, no good pass since"
                    },
                    last_error.as_deref().unwrap_or("none recorded"),
                    cfg.desk.name
                );
                queue(
                    &tx,
                    cfg,
                    &admin,
                    &format!("[{}] mailbox {} cannot be fetched", cfg.desk.name, mb.name),
                    &body,
                    now,
                )?;
                health::set_alerted(&tx, &mb.name, Some(now))?;
                tracing::warn!(mailbox = %mb.name, "fetch alert sent to the admin");
                queued += 1;
            }
            Some(at) if last_ok.is_some_and(|ok| ok > at) => {
                let body = format!(
                    "Mailbox \"{}\" is fetched again (good pass at {}).\n\n-- \n{}\n",
                    mb.name,
                    ts(last_ok.unwrap_or(now)),
                    cfg.desk.name
                );
                queue(
                    &tx,
                    cfg,
                    &admin,
                    &format!("[{}] mailbox {} recovered", cfg.desk.name, mb.name),
                    &body,
                    now,
                )?;
                health::set_alerted(&tx, &mb.name, None)?;
                tracing::info!(mailbox = %mb.name, "recovery notice sent to the admin");
                queued += 1;
            }
            Some(_) => {}
        }
    }
    queued += held_acks_alert(&tx, cfg, &admin, now)?;
    queued += unauthenticated_agent_alert(&tx, cfg, &admin, now)?;
    queued += check_smtp_login(&tx, cfg, &admin, now)?;
    tx.commit().context("Committing the health check")?;
    Ok(queued)
}

/// One alert when acknowledgements start being held (their template
/// fails to render), one notice when none is held any more.
fn held_acks_alert(
    tx: &rusqlite::Transaction<'_>,
    cfg: &Config,
    admin: &Mailbox,
    now: DateTime<Utc>,
) -> Result<usize> {
    const NAME: &str = "acks-held";
    let held = tickets::held_ack_count(tx)?;
    let alerted = health::desk_alert(tx, NAME)?;
    match (held > 0, alerted) {
        (true, None) => {
            let error = tickets::held_acks(tx, 1)?
                .first()
                .and_then(|(_, j)| serde_json::from_str::<crate::ingest::AckJob>(j).ok())
                .and_then(|job| job.error)
                .unwrap_or_else(|| "unknown".into());
            let body = format!(
                "{held} acknowledgement(s) are held: their template fails to render for the\nticket's data.\n\nError: {error}\n\nThe tickets are open and their SLA clocks run; the customers have not\nbeen told. Fix the template and reload (systemctl reload supportdesk):\nthe held acknowledgements are then sent, each once. `supportdesk status`\ncounts them.\n\n-- \n{}\n",
                cfg.desk.name
            );
            queue(
                tx,
                cfg,
                admin,
                &format!(
                    "[{}] acknowledgements held: template failing",
                    cfg.desk.name
                ),
                &body,
                now,
            )?;
            health::set_desk_alert(tx, NAME, Some(now), Some(&error))?;
            tracing::warn!(held, "held-acknowledgement alert sent to the admin");
            Ok(1)
        }
        (false, Some(_)) => {
            let body = format!(
                "Every held acknowledgement has been sent: the template renders again.\n\n-- \n{}\n",
                cfg.desk.name
            );
            queue(
                tx,
                cfg,
                admin,
                &format!("[{}] held acknowledgements sent", cfg.desk.name),
                &body,
                now,
            )?;
            health::set_desk_alert(tx, NAME, None, None)?;
            Ok(1)
        }
        _ => Ok(0),
    }
}

/// Mail from an agent's address that nobody vouched for (a forgery, or
/// an agent's domain without DKIM): one alert per hour at most, counting
/// those since the last one.
fn unauthenticated_agent_alert(
    tx: &rusqlite::Transaction<'_>,
    cfg: &Config,
    admin: &Mailbox,
    now: DateTime<Utc>,
) -> Result<usize> {
    const NAME: &str = "unauthenticated-agent-mail";
    let alerted = health::desk_alert(tx, NAME)?;
    if alerted.is_some_and(|at| now - at < chrono::TimeDelta::hours(1)) {
        return Ok(0);
    }
    let found = messages::unauthenticated_agent_since(tx, alerted)?;
    let n = found.count;
    let Some((sender, verdict)) = found.last else {
        return Ok(0);
    };
    let verdict = verdict
        .and_then(|j| serde_json::from_str::<crate::core::auth::Verdict>(&j).ok())
        .map(|v| v.summary())
        .unwrap_or_else(|| "no verdict".into());
    let body = format!(
        "{n} mail(s) from agent addresses were not authenticated{since}: they ran no
command and counted as no response. The last one claimed to be from
{sender}: {verdict}.

Either someone is forging an agent's address, or an agent's mail is not
signed (DKIM) the way the [trust] section of the config expects. The mails
are kept on their tickets as notes; `supportdesk tickets show` has the
verdict of each, and `supportdesk status` counts them.

-- \n{}\n",
        cfg.desk.name,
        since = alerted
            .map(|a| format!(" since {}", ts(a)))
            .unwrap_or_default(),
    );
    queue(
        tx,
        cfg,
        admin,
        &format!("[{}] unauthenticated agent mail", cfg.desk.name),
        &body,
        now,
    )?;
    health::set_desk_alert(tx, NAME, Some(now), None)?;
    tracing::warn!(n, "unauthenticated agent mail alert sent to the admin");
    Ok(1)
}

/// The SMTP login refused for `fetch_alert_after`: one alert, and one
/// recovery notice once a session works. Both wait in the outbox until
/// the login works, like every mail; an unreachable server is shown by
/// `status` but not alerted (it is not the config's problem).
fn check_smtp_login(
    tx: &rusqlite::Transaction<'_>,
    cfg: &Config,
    admin: &Mailbox,
    now: DateTime<Utc>,
) -> Result<usize> {
    let h = outbox::session_health(tx)?;
    match (&h.failing, h.alerted) {
        (Some(f), None) if f.failure == outbox::Failure::Login => {
            if now - f.since < cfg.desk.fetch_alert_after {
                return Ok(0);
            }
            let body = format!(
                "SMTP login failing since {}.\n\nLast error: {}\n\nNo mail leaves the desk until it is fixed (acknowledgements,\nescalation notices, alerts); nothing is lost or failed for it: the mail\nwaits in the outbox and goes out once the login works. Fix the outbox's\nusername or password, then reload (systemctl reload supportdesk);\nwith auth = \"oauth2\", sign in again with `supportdesk auth login NAME`\n(no reload needed).\n\n-- \n{}\n",
                ts(f.since),
                f.last_error,
                cfg.desk.name
            );
            queue(
                tx,
                cfg,
                admin,
                &format!("[{}] SMTP login failing", cfg.desk.name),
                &body,
                now,
            )?;
            outbox::set_session_alerted(tx, Some(now))?;
            tracing::warn!("SMTP login alert queued for the admin");
            Ok(1)
        }
        (None, Some(_)) => {
            let body = format!(
                "The SMTP login works again (checked at {}); the mail that waited is\nbeing delivered.\n\n-- \n{}\n",
                ts(now),
                cfg.desk.name
            );
            queue(
                tx,
                cfg,
                admin,
                &format!("[{}] SMTP login works again", cfg.desk.name),
                &body,
                now,
            )?;
            outbox::set_session_alerted(tx, None)?;
            tracing::info!("SMTP recovery notice queued for the admin");
            Ok(1)
        }
        _ => Ok(0),
    }
}

fn queue(
    tx: &rusqlite::Transaction<'_>,
    cfg: &Config,
    to: &Mailbox,
    subject: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let out = compose::compose(&Reply {
        from: &cfg.desk.address,
        to: to.clone(),
        subject,
        body,
        html: None,
        in_reply_to: None,
        references: &[],
        reference: "desk",
        kind: "alert",
        auto_submitted: Some("auto-generated"),
    })?;
    outbox::enqueue_mail(tx, None, "alert", &out, now)?;
    Ok(())
}
