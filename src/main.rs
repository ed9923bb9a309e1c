//! The `supportdesk` command: CLI parsing, logging set-up and exit codes.
//! Everything else lives in the library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, Subcommand};

use supportdesk::app::{self, Ctx};
use supportdesk::config::{self, Config};
use supportdesk::core::{inbound, sla, triage};

#[derive(Parser)]
#[command(
    name = "supportdesk",
    version,
    about = "Support mailboxes in, tickets with service levels out."
)]
struct Cli {
    /// Config file.
    #[arg(long, global = true, env = "SUPPORTDESK_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (or one pass with --once).
    Run {
        /// One pass over every mailbox, deliver the outbox, exit.
        #[arg(long)]
        once: bool,
    },
    /// Validate the config: exit 0, or print every problem and exit 1.
    CheckConfig {
        /// Also log in to every IMAP and SMTP server and report each result.
        #[arg(long)]
        connect: bool,
    },
    /// Health: mailboxes, outbox, open and breaching tickets.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// SLA computations.
    Sla {
        #[command(subcommand)]
        command: SlaCommand,
    },
    /// Triage messages: one JSON line per message.
    Classify {
        /// .eml files, or - for stdin.
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Inspect tickets.
    Tickets {
        #[command(subcommand)]
        command: TicketsCommand,
    },
}

#[derive(Subcommand)]
enum SlaCommand {
    /// Due instants for a plan, priority and category.
    Due {
        #[arg(long)]
        plan: String,
        #[arg(long)]
        priority: Option<String>,
        #[arg(long)]
        category: Option<String>,
        /// The customer's time zone, where the plan's calendar follows the customer.
        #[arg(long)]
        timezone: Option<String>,
        /// Reception instant(s), RFC 3339.
        #[arg(long, required = true)]
        received: Vec<String>,
    },
}

#[derive(Subcommand)]
enum TicketsCommand {
    /// List tickets.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("supportdesk: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    load_config_with(path, config::Secrets::Read)
}

/// For commands that never connect: passwords are not read.
fn load_offline(path: &std::path::Path) -> Result<Config, ExitCode> {
    load_config_with(path, config::Secrets::Skip)
}

fn load_config_with(path: &std::path::Path, secrets: config::Secrets) -> Result<Config, ExitCode> {
    config::load_with(path, secrets).map_err(|e| {
        eprint!("{e}");
        ExitCode::from(1)
    })
}

fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level.unwrap_or("info")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Under systemd the journal stamps each line itself.
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if under_journal {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.init();
    }
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { connect } => {
            let cfg = match load_config(&cli.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            if connect {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("Starting the tokio runtime")?;
                let failures = rt.block_on(check_connections(&cfg));
                if failures > 0 {
                    return Ok(ExitCode::from(1));
                }
            }
            println!(
                "{}: ok ({} mailbox{}, {} priorities, {} categories, default language {})",
                cli.config.display(),
                cfg.mailboxes.len(),
                if cfg.mailboxes.len() == 1 { "" } else { "es" },
                cfg.priorities.len(),
                cfg.categories.len(),
                cfg.triage.default_language()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { once } => {
            let cfg = match load_config(&cli.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            init_logging(cfg.desk.log_level.as_deref());
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("Starting the tokio runtime")?;
            rt.block_on(async move {
                let ctx = Ctx::new(cfg)?;
                if once {
                    let s = app::run_once(&ctx).await?;
                    println!(
                        "{} new ticket{}, {} other message{} recorded, {} already processed; {} mail{} sent, {} not sent",
                        s.new_tickets,
                        if s.new_tickets == 1 { "" } else { "s" },
                        s.other,
                        if s.other == 1 { "" } else { "s" },
                        s.already_done,
                        s.sent,
                        if s.sent == 1 { "" } else { "s" },
                        s.failed
                    );
                    if s.new_tickets + s.other == 0 && s.already_done > 0 {
                        println!("nothing new arrived since the last run");
                    }
                } else {
                    app::run(ctx).await?;
                }
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sla {
            command:
                SlaCommand::Due {
                    plan,
                    priority,
                    category,
                    timezone,
                    received,
                },
        } => {
            let cfg = match load_offline(&cli.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let usage = |msg: String| {
                eprintln!("supportdesk: {msg}");
                Ok(ExitCode::from(2))
            };
            let tz = match timezone.as_deref().map(str::parse::<chrono_tz::Tz>) {
                None => None,
                Some(Ok(tz)) => Some(tz),
                Some(Err(_)) => {
                    return usage(format!(
                        "unknown time zone {:?}",
                        timezone.unwrap_or_default()
                    ));
                }
            };
            let mut instants = Vec::new();
            for r in &received {
                match DateTime::parse_from_rfc3339(r) {
                    Ok(t) => instants.push(t.with_timezone(&Utc)),
                    Err(e) => return usage(format!("--received {r:?} is not RFC 3339: {e}")),
                }
            }
            let mut out = String::new();
            for (raw, t) in received.iter().zip(instants) {
                let due = match cfg.sla.due(&sla::DueQuery {
                    plan: &plan,
                    priority: priority.as_deref(),
                    category: category.as_deref(),
                    timezone: tz,
                    received: t,
                }) {
                    Ok(d) => d,
                    Err(e) => return usage(e.to_string()),
                };
                let fmt = |d: Option<DateTime<Utc>>| {
                    d.map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
                };
                out.push_str(&serde_json::to_string(&serde_json::json!({
                    "received": raw,
                    "plan": plan,
                    "priority": priority,
                    "category": category,
                    "first_response_due": fmt(due.first_response),
                    "resolution_due": fmt(due.resolution),
                }))?);
                out.push('\n');
            }
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Classify { files } => {
            let cfg = match load_offline(&cli.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            use std::io::Write;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for f in files {
                let raw = if f == "-" {
                    let mut buf = Vec::new();
                    std::io::stdin().read_to_end(&mut buf).map(|_| buf)
                } else {
                    std::fs::read(&f)
                };
                let line = match raw {
                    Err(e) => serde_json::json!({"file": f, "error": format!("cannot read: {e}")}),
                    Ok(raw) => match inbound::parse(&raw) {
                        Err(e) => serde_json::json!({"file": f, "error": e.to_string()}),
                        Ok(mail) => {
                            let v = triage::classify(&mail, &cfg.triage);
                            serde_json::json!({
                                "file": f,
                                "message_id": mail.message_id,
                                "language": v.language,
                                "category": v.category,
                                "impact": v.impact,
                                "urgency": v.urgency,
                                "priority": v.priority,
                                "auto_reply": v.automated.is_some(),
                                "reasons": v.reasons,
                            })
                        }
                    },
                };
                writeln!(out, "{line}")?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => {
            let cfg = match load_offline(&cli.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let store =
                supportdesk::store::Store::open(&cfg.desk.state_dir.join("supportdesk.db"))?;
            let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
            let st =
                store.call_blocking(move |conn| supportdesk::store::tickets::status(conn, &now))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                for m in &st.mailboxes {
                    println!(
                        "mailbox {:<16} last poll {:<26} {}",
                        m.mailbox,
                        m.last_poll_at.as_deref().unwrap_or("never"),
                        m.last_error
                            .as_deref()
                            .map(|e| format!("error: {e}"))
                            .unwrap_or_else(|| "ok".into())
                    );
                }
                println!(
                    "outbox: {} pending (oldest {}), {} failed",
                    st.outbox_pending,
                    st.outbox_oldest_pending.as_deref().unwrap_or("-"),
                    st.outbox_failed
                );
                println!(
                    "tickets: {} open, {} breaching; {} messages without a ticket",
                    st.open_tickets, st.breaching, st.unticketed_messages
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tickets {
            command: TicketsCommand::List { status, json },
        } => {
            let cfg = match load_offline(&cli.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let store =
                supportdesk::store::Store::open(&cfg.desk.state_dir.join("supportdesk.db"))?;
            let rows = store.call_blocking(move |conn| {
                supportdesk::store::tickets::list(conn, status.as_deref())
            })?;
            for t in rows {
                if json {
                    println!("{}", serde_json::to_string(&t)?);
                } else {
                    println!(
                        "{}  {:<8} {:<10} {:<8} {:<25} {}",
                        t.reference,
                        t.status,
                        t.priority.as_deref().unwrap_or("-"),
                        t.language,
                        t.requester,
                        t.subject
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `check-config --connect`: log in to every server, report each result.
async fn check_connections(cfg: &Config) -> usize {
    let mut failures = 0;
    for mb in &cfg.mailboxes {
        if let config::MailboxKind::Imap(s) = &mb.kind {
            match supportdesk::mail::imap::connect(s).await {
                Ok(mut session) => {
                    let _ = session.logout().await;
                    println!(
                        "mailbox {}: IMAP login to {}:{} ok",
                        mb.name, s.host, s.port
                    );
                }
                Err(e) => {
                    failures += 1;
                    println!("mailbox {}: {e:#}", mb.name);
                }
            }
        }
    }
    if let config::OutboxKind::Smtp(s) = &cfg.outbox.kind {
        match supportdesk::mail::outbox::smtp_connect(s).await {
            Ok(mut conn) => {
                let _ = conn.quit().await;
                println!("outbox: SMTP {}:{} ok", s.host, s.port);
            }
            Err(e) => {
                failures += 1;
                println!("outbox: {e:#}");
            }
        }
    }
    failures
}
