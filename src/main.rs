//! The `supportdesk` command: CLI parsing, logging set-up and exit codes.
//! Everything else lives in the library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use clap::{Parser, Subcommand};

use supportdesk::app::{self, App};
use supportdesk::config::{self, Config};
use supportdesk::core::{inbound, sla, triage};
use supportdesk::validate::validate;

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
    /// Inspect and update tickets.
    Tickets {
        #[command(subcommand)]
        command: TicketsCommand,
    },
    /// SLA compliance per plan and priority (and period): each clock's
    /// met, breached and open tickets, compliance, and median and p90 in
    /// business time and in wall time.
    Stats {
        /// Only tickets received on or after this date (YYYY-MM-DD,
        /// midnight in the report's zone) or RFC 3339 instant.
        #[arg(long)]
        since: Option<String>,
        /// Only tickets received up to this date, included, or before
        /// this RFC 3339 instant.
        #[arg(long)]
        until: Option<String>,
        /// One row per day, week (Monday to Sunday) or month of arrival too.
        #[arg(long, value_parser = |s: &str| s.parse::<supportdesk::core::stats::Period>())]
        by: Option<supportdesk::core::stats::Period>,
        #[arg(long, value_enum, default_value_t = supportdesk::reporting::Format::Table)]
        format: supportdesk::reporting::Format,
        /// The zone of dates and periods: [desk] timezone, else UTC.
        #[arg(long)]
        timezone: Option<String>,
        /// The same as --format json.
        #[arg(long)]
        json: bool,
    },
    /// The SLA report for a period as one self-contained HTML file:
    /// compliance per plan and priority against the period before, a
    /// chart of first responses on time per day, the tickets at risk now
    /// and the slowest first responses.
    Report {
        /// The period's first day (YYYY-MM-DD, midnight in the report's
        /// zone) or RFC 3339 instant.
        #[arg(long)]
        since: String,
        /// Its last day, included, or the instant it ends; now by default.
        #[arg(long)]
        until: Option<String>,
        /// The zone of dates and days: [desk] timezone, else UTC.
        #[arg(long)]
        timezone: Option<String>,
        /// Where to write the HTML.
        #[arg(long)]
        out: PathBuf,
    },
    /// The outgoing mail: what waits, what failed; queue it again.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// OAuth 2.0 sign-in of the [oauth.NAME] accounts (Microsoft 365,
    /// Google, any provider with the device grant).
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Sign in with the device authorization grant (RFC 8628): prints a
    /// URL and a code to enter in any browser, on any machine, waits for
    /// the sign-in, stores the tokens. Run it as the service's user (or
    /// root: the file is given to the state directory's owner).
    Login {
        name: String,
        /// Sign in with the authorization code grant and PKCE instead: a
        /// URL to open in a browser, whose final address is pasted back
        /// (for Google, whose device grant offers no mail scope).
        #[arg(long)]
        browser: bool,
    },
    /// Each account's owner, scopes, token expiry and last refresh.
    Status,
    /// Forget an account's tokens (sign out on this machine; the
    /// provider's consent stays until it is revoked there).
    Logout { name: String },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Mail not delivered: pending and failed, oldest first.
    List {
        /// Only the mail given up on.
        #[arg(long)]
        failed: bool,
        #[arg(long)]
        json: bool,
    },
    /// One outgoing message: state, attempts, last error, headers.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Queue a message again (due now, attempts and queue lifetime reset).
    Retry {
        /// The message (see `outbox list`).
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        id: Option<i64>,
        /// Every failed message.
        #[arg(long)]
        failed: bool,
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
        /// The arithmetic step by step (calendar and zone, open intervals
        /// counted, holidays and closed days skipped) instead of JSON.
        #[arg(long)]
        explain: bool,
    },
}

#[derive(Subcommand)]
enum TicketsCommand {
    /// List tickets.
    List {
        #[arg(long)]
        status: Option<String>,
        /// Only tickets past a due instant with the clock still running.
        #[arg(long)]
        breaching: bool,
        #[arg(long)]
        json: bool,
    },
    /// One ticket: fields, messages, outgoing mail, events.
    Show {
        /// Reference (SUP-000123) or number.
        ticket: String,
        #[arg(long)]
        json: bool,
    },
    /// Resolve a ticket (work done by phone, say).
    Close { ticket: String },
    /// Record an agent response now (stops the first-response clock).
    Respond { ticket: String },
    /// Change the priority; due instants are computed again.
    Priority { ticket: String, priority: String },
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

fn init_logging(level: Option<&str>, format: config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level.unwrap_or("info")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Under systemd the journal stamps each line itself.
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    // Colour only for a person at a terminal: escape codes in the journal
    // or a log file are noise, and NO_COLOR (https://no-color.org) wins.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    let json = match std::env::var("SUPPORTDESK_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => format == config::LogFormat::Json,
    };
    if json {
        builder.json().with_current_span(false).init();
    } else if under_journal {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { connect } => check_config(&cli.config, connect),
        Command::Run { once } => run(&cli.config, once),
        Command::Sla {
            command:
                SlaCommand::Due {
                    plan,
                    priority,
                    category,
                    timezone,
                    received,
                    explain,
                },
        } => sla_due(
            &cli.config,
            plan,
            priority,
            category,
            timezone,
            received,
            explain,
        ),
        Command::Classify { files } => classify(&cli.config, files),
        Command::Status { json } => status(&cli.config, json),
        Command::Tickets {
            command:
                TicketsCommand::List {
                    status,
                    breaching,
                    json,
                },
        } => tickets_list(&cli.config, status, breaching, json),
        Command::Tickets { command } => {
            let cfg = match load_offline(&cli.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            tickets_command(cfg, command)
        }
        Command::Stats {
            since,
            until,
            by,
            format,
            timezone,
            json,
        } => {
            let format = if json {
                supportdesk::reporting::Format::Json
            } else {
                format
            };
            stats(
                &cli.config,
                StatsArgs {
                    since,
                    until,
                    by,
                    format,
                    timezone,
                },
            )
        }
        Command::Report {
            since,
            until,
            timezone,
            out,
        } => report(
            &cli.config,
            &since,
            until.as_deref(),
            timezone.as_deref(),
            &out,
        ),
        Command::Outbox { command } => outbox_command(&cli.config, command),
        Command::Auth { command } => auth_command(&cli.config, command),
    }
}

/// `auth login | status | logout`.
fn auth_command(path: &std::path::Path, command: AuthCommand) -> Result<ExitCode> {
    // Signing in needs the client secret; the others read no secret.
    let secrets = match command {
        AuthCommand::Login { .. } => config::Secrets::Read,
        _ => config::Secrets::Skip,
    };
    let cfg = match load_config_with(path, secrets) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let account = |name: &str| {
        let found = cfg.oauth.get(name).cloned();
        if found.is_none() {
            let known: Vec<&str> = cfg.oauth.keys().map(String::as_str).collect();
            eprintln!(
                "supportdesk: no [oauth.{name}] in {} (accounts: {})",
                path.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
        found
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("Starting the tokio runtime")?;
    match command {
        AuthCommand::Login { name, browser } => {
            let Some(a) = account(&name) else {
                return Ok(ExitCode::from(2));
            };
            let mut out = std::io::stdout();
            let t = if browser {
                rt.block_on(supportdesk::oauth::login_browser(
                    &a,
                    &mut out,
                    &mut std::io::stdin().lock(),
                ))?
            } else {
                rt.block_on(supportdesk::oauth::login(&a, &mut out))?
            };
            println!(
                "signed in: account {name}{}; the daemon uses the new tokens at its next login (no restart needed)",
                t.owner
                    .map(|o| format!(", token owner {o}"))
                    .unwrap_or_default()
            );
        }
        AuthCommand::Status => {
            if cfg.oauth.is_empty() {
                println!("no [oauth.NAME] accounts in {}", path.display());
            }
            let now = chrono::Utc::now();
            let mut bad = false;
            for a in cfg.oauth.values() {
                let (line, ok) = supportdesk::oauth::describe(a, now);
                bad |= !ok;
                println!("{line}");
                let users = oauth_users(&cfg, &a.name);
                println!(
                    "  used by: {}",
                    if users.is_empty() {
                        "nothing".to_string()
                    } else {
                        users.join(", ")
                    }
                );
            }
            if bad {
                return Ok(ExitCode::from(1));
            }
        }
        AuthCommand::Logout { name } => {
            let Some(a) = account(&name) else {
                return Ok(ExitCode::from(2));
            };
            if rt.block_on(supportdesk::oauth::logout(&a))? {
                println!("account {name}: tokens forgotten");
            } else {
                println!("account {name}: was not signed in");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The mailboxes (and the outbox) that log in with an OAuth account.
fn oauth_users(cfg: &Config, account: &str) -> Vec<String> {
    let uses = |l: &config::Login| matches!(l, config::Login::OAuth2(a) if a.name == account);
    let mut users: Vec<String> = cfg
        .mailboxes
        .iter()
        .filter_map(|mb| match &mb.kind {
            config::MailboxKind::Imap(s) if uses(&s.login) => {
                Some(format!("mailbox {} (IMAP as {})", mb.name, s.username))
            }
            _ => None,
        })
        .collect();
    if let config::OutboxKind::Smtp(s) = &cfg.outbox.kind
        && s.login.as_ref().is_some_and(uses)
    {
        users.push(format!(
            "outbox (SMTP as {})",
            s.username.as_deref().unwrap_or("-")
        ));
    }
    users
}

/// `check-config [--connect]`: the validation start-up and reload run,
/// then (with --connect) a login to every server.
fn check_config(path: &std::path::Path, connect: bool) -> Result<ExitCode> {
    let v = match validate(path, config::Secrets::Read) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    if connect {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("Starting the tokio runtime")?;
        let failures = rt.block_on(check_connections(&v.config));
        if failures > 0 {
            return Ok(ExitCode::from(1));
        }
    }
    for w in &v.warnings {
        eprintln!("{w}");
    }
    let cfg = &v.config;
    println!(
        "{}: ok ({} mailbox{}, {} priorities, {} categories, default language {})",
        path.display(),
        cfg.mailboxes.len(),
        if cfg.mailboxes.len() == 1 { "" } else { "es" },
        cfg.priorities.len(),
        cfg.categories.len(),
        cfg.triage.default_language()
    );
    for line in cfg.trust.describe() {
        println!("trust: {line}");
    }
    for a in cfg.oauth.values() {
        let users = oauth_users(cfg, &a.name);
        println!(
            "oauth {} ({}): {} via {}; {}",
            a.name,
            a.provider,
            if users.is_empty() {
                "unused".to_string()
            } else {
                users.join(", ")
            },
            supportdesk::oauth::sasl_name(a.mechanism),
            if a.token_file.exists() {
                "signed in (auth status tells more)".to_string()
            } else {
                format!("not signed in yet: run `supportdesk auth login {}`", a.name)
            }
        );
    }
    let now = supportdesk::clock::now();
    for d in &cfg.digests {
        let to: Vec<String> = d.to.iter().map(|m| m.email.to_string()).collect();
        let next = d
            .schedule
            .next_due(now)
            .map(|n| {
                n.at.with_timezone(&d.schedule.zone)
                    .format("%a %Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "digest {}: to {} in {}, next {next} ({})",
            d.name,
            to.join(", "),
            d.language,
            d.schedule.zone.name()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `run [--once]`: refuses to start on what check-config refuses.
fn run(path: &std::path::Path, once: bool) -> Result<ExitCode> {
    let v = match validate(path, config::Secrets::Read) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    init_logging(v.config.desk.log_level.as_deref(), v.config.desk.log_format);
    for w in &v.warnings {
        tracing::warn!("{w}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("Starting the tokio runtime")?;
    rt.block_on(async move {
        let app = App::open(v)?;
        if once {
            let s = app::run_once(&app).await?;
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
            app::run(app).await?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The database of an offline command, never created by it: a status
/// run before the service would leave root-owned files in its state dir.
/// Reads go through `store::read_only` and writes through
/// `store::open_existing_rw`: neither migrates or sets the journal mode;
/// a read creates no file next to the database, and a write run as root
/// leaves none of its own (SQLite gives a -wal or -shm it creates the
/// database's owner, and removes them at the last close).
fn existing_db(cfg: &Config) -> Option<PathBuf> {
    let path = cfg.desk.state_dir.join("supportdesk.db");
    if !path.exists() {
        eprintln!(
            "supportdesk: no database at {}: the daemon has not run with this config yet",
            path.display()
        );
        return None;
    }
    Some(path)
}

/// Text that came with mail (addresses, an agent's command line), for a
/// terminal: control characters (C0, DEL, C1) and the bidirectional
/// overrides are shown escaped (`\x1b`, `\u{9b}`, `\u{202e}`), so a
/// sender cannot drive the admin's terminal (colours, title, clearing the
/// screen, text written backwards). The JSON output is escaped by serde.
fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(hidden) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if !hidden(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    out.into()
}

fn printable_or<'a>(s: Option<&'a str>, none: &'a str) -> std::borrow::Cow<'a, str> {
    printable(s.unwrap_or(none))
}

/// Why a ticket's clocks are due when they are: the SLA arithmetic as
/// today's config computes it, the pauses and restarts the ticket lived,
/// and a word when the stored instants differ (computed under another
/// config, or by hand).
fn explain_ticket(cfg: &Config, d: &supportdesk::store::report::TicketDetail) -> Vec<String> {
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc());
    let start = d
        .sla_started_at
        .as_deref()
        .or(Some(d.received_at.as_str()))
        .and_then(parse);
    let Some(start) = start else {
        return vec!["why due: the ticket's reception time is unreadable".into()];
    };
    let q = sla::DueQuery {
        plan: &d.plan,
        priority: d.priority.as_deref(),
        category: d.category.as_deref(),
        timezone: d.customer_timezone.as_deref().and_then(|z| z.parse().ok()),
        received: start,
    };
    let e = match cfg.sla.explain(&q) {
        Ok(e) => e,
        Err(err) => return vec![format!("why due: not explained with today's config: {err}")],
    };
    let mut out = vec!["why due:".to_owned()];
    if d.sla_started_at.is_some() {
        out.push(format!(
            "the clocks restarted at the reopen, {} (reopen = \"restart\")",
            start.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    out.extend(e.lines);
    let paused = chrono::TimeDelta::seconds(d.paused_secs);
    let resolution = e.resolution.map(|t| t + paused);
    if d.paused_secs > 0 {
        out.push(format!(
            "resolution pushed back by {} the clock stood still (pending, or resolved before a resume)",
            supportdesk::core::duration::human(paused)
        ));
    }
    let fmt = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
    for (name, computed, stored) in [
        (
            "first response",
            fmt(e.first_response),
            &d.first_response_due,
        ),
        ("resolution", fmt(resolution), &d.resolution_due),
    ] {
        if computed != *stored {
            out.push(format!(
                "note: the stored {name} due instant ({}) differs from today's config ({}): it was computed under an earlier config",
                stored.as_deref().unwrap_or("none"),
                computed.as_deref().unwrap_or("none")
            ));
        }
    }
    out
}

/// `tickets show|close|respond|priority`: the same lifecycle functions the
/// daemon uses for agent mail, with "cli" as the actor.
fn tickets_command(cfg: Config, command: TicketsCommand) -> Result<ExitCode> {
    use supportdesk::core::commands::Command as Cmd;
    use supportdesk::lifecycle;
    use supportdesk::store::report as tickets;
    let Some(path) = existing_db(&cfg) else {
        return Ok(ExitCode::from(1));
    };
    let (ticket, action) = match command {
        TicketsCommand::List { .. } => unreachable!("handled above"),
        TicketsCommand::Show { ticket, json } => {
            let detail = supportdesk::store::read_only(&path, |conn| {
                let Some(id) = tickets::find_id(conn, &ticket)? else {
                    return Ok(None);
                };
                tickets::show(conn, id).map(Some)
            })?;
            let Some(d) = detail else {
                eprintln!("supportdesk: no ticket {ticket}");
                return Ok(ExitCode::from(2));
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                // Every value through `printable`: most come from mail.
                let p = printable;
                let p_or = printable_or;
                println!("{}  {}  [{}]", p(&d.reference), p(&d.subject), p(&d.status));
                println!(
                    "requester  {}{}",
                    p(&d.requester),
                    d.customer
                        .as_deref()
                        .map(|c| format!(" ({})", p(c)))
                        .unwrap_or_default()
                );
                println!(
                    "plan       {}  priority {}  category {}  language {}",
                    p(&d.plan),
                    p_or(d.priority.as_deref(), "-"),
                    p_or(d.category.as_deref(), "-"),
                    p(&d.language)
                );
                println!("received   {}", p(&d.received_at));
                println!(
                    "1st resp.  due {}  done {}",
                    p_or(d.first_response_due.as_deref(), "-"),
                    p_or(d.first_responded_at.as_deref(), "-")
                );
                println!(
                    "resolution due {}  done {}",
                    p_or(d.resolution_due.as_deref(), "-"),
                    p_or(d.resolved_at.as_deref(), "-")
                );
                for line in explain_ticket(&cfg, &d) {
                    println!("  {}", p(&line));
                }
                if let Some(a) = &d.assignee {
                    println!("assignee   {}", p(a));
                }
                if let Some(n) = &d.note {
                    println!("note       {}", p(n));
                }
                for m in d.messages.iter().chain(&d.outgoing) {
                    println!(
                        "  {} {:<3} {:<22} {}  {}",
                        p(&m.received_at),
                        p(&m.direction),
                        p(&m.kind),
                        p_or(m.sender.as_deref(), "-"),
                        p_or(m.subject.as_deref(), "")
                    );
                    if let Some(a) = &m.auth {
                        println!("    auth {}", p(a));
                    }
                    if let Some(f) = &m.raw_path {
                        println!("    raw message in {}", p(f));
                    }
                }
                for e in &d.events {
                    println!(
                        "  {} event {} by {}{}",
                        p(&e.at),
                        p(&e.action),
                        p(&e.actor),
                        e.detail
                            .as_deref()
                            .map(|x| format!(": {}", p(x)))
                            .unwrap_or_default()
                    );
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        TicketsCommand::Close { ticket } => (ticket, Some(Cmd::Close)),
        TicketsCommand::Respond { ticket } => (ticket, None),
        TicketsCommand::Priority { ticket, priority } => {
            if !cfg.priorities.contains(&priority) {
                eprintln!(
                    "supportdesk: unknown priority {priority:?}; known: {}",
                    cfg.priorities.join(", ")
                );
                return Ok(ExitCode::from(2));
            }
            (ticket, Some(Cmd::Priority(priority)))
        }
    };
    let mut conn = supportdesk::store::open_existing_rw(&path)?;
    let found = lifecycle::by_hand(
        &mut conn,
        &cfg,
        &ticket,
        "cli",
        action.as_ref(),
        supportdesk::clock::now(),
    )?;
    if !found {
        eprintln!("supportdesk: no ticket {ticket}");
        return Ok(ExitCode::from(2));
    }
    println!("{ticket}: done");
    Ok(ExitCode::SUCCESS)
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
                supportdesk::mail::outbox::quit(&mut conn, s.timeout).await;
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

/// `sla due`: one JSON line per --received.
fn sla_due(
    path: &std::path::Path,
    plan: String,
    priority: Option<String>,
    category: Option<String>,
    timezone: Option<String>,
    received: Vec<String>,
    explain: bool,
) -> Result<ExitCode> {
    let cfg = match load_offline(path) {
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
        let q = sla::DueQuery {
            plan: &plan,
            priority: priority.as_deref(),
            category: category.as_deref(),
            timezone: tz,
            received: t,
        };
        if explain {
            match cfg.sla.explain(&q) {
                Ok(e) => {
                    if !out.is_empty() {
                        out.push('\n');
                    }
                    for l in e.lines {
                        out.push_str(&l);
                        out.push('\n');
                    }
                }
                Err(e) => return usage(e.to_string()),
            }
            continue;
        }
        let due = match cfg.sla.due(&q) {
            Ok(d) => d,
            Err(e) => return usage(e.to_string()),
        };
        let fmt =
            |d: Option<DateTime<Utc>>| d.map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true));
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

/// `classify FILE...`: one JSON line per message.
fn classify(path: &std::path::Path, files: Vec<String>) -> Result<ExitCode> {
    let cfg = match load_offline(path) {
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
                    use supportdesk::core::auth;
                    let from = mail.from.as_ref().and_then(|a| auth::domain_of(&a.email));
                    // Headers only: classify runs over whole corpora, and
                    // our own DKIM check would make DNS lookups for each.
                    let verdict =
                        auth::from_headers(&mail.headers, &cfg.trust.authserv_id, from.as_deref())
                            .unwrap_or_else(|| {
                                auth::Verdict::none(
                                    from.as_deref(),
                                    "no Authentication-Results header of a trusted server (classify does not run our own DKIM check)",
                                )
                            });
                    let claims = cfg.trust.claims.met(&verdict);
                    let sender = mail.from.as_ref().map_or("", |a| a.email.as_str());
                    let customer = cfg.sla.customer_for(sender, supportdesk::clock::now());
                    let v = triage::classify_hinted(
                        &mail,
                        &cfg.triage,
                        claims,
                        triage::Hints {
                            customer_language: customer.language.as_deref(),
                            ..Default::default()
                        },
                    );
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
                        "authenticated": verdict.authenticated(),
                        "auth_source": verdict.source,
                        "auth": verdict.summary(),
                    })
                }
            },
        };
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `status [--json]`: health of mailboxes, outbox and tickets.
fn status(path: &std::path::Path, json: bool) -> Result<ExitCode> {
    let cfg = match load_offline(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(path) = existing_db(&cfg) else {
        return Ok(ExitCode::from(1));
    };
    let now = supportdesk::store::ts(supportdesk::clock::now());
    let st = supportdesk::store::read_only(&path, |conn| {
        supportdesk::store::report::status(conn, &now)
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&st)?);
    } else {
        // Every configured mailbox, polled yet or not.
        for mb in &cfg.mailboxes {
            let m = st.mailboxes.iter().find(|m| m.mailbox == mb.name);
            println!(
                "mailbox {:<16} last good poll {:<26} {}",
                mb.name,
                m.and_then(|m| m.last_poll_at.as_deref()).unwrap_or("never"),
                m.and_then(|m| m.last_error.as_deref())
                    .map(|e| format!("error: {e}"))
                    .unwrap_or_else(|| if m.is_some() {
                        "ok".into()
                    } else {
                        "not polled yet".into()
                    })
            );
        }
        println!(
            "outbox: {} pending (oldest {}), {} failed",
            st.outbox_pending,
            st.outbox_oldest_pending.as_deref().unwrap_or("-"),
            st.outbox_failed
        );
        if let (Some(f), Some(since)) = (st.smtp_failure, &st.smtp_failing_since) {
            use supportdesk::store::outbox::Failure;
            println!(
                "outbox: SMTP {} since {since}: {}",
                match f {
                    Failure::Login => "login failing",
                    Failure::Connect => "unreachable",
                },
                st.smtp_last_error.as_deref().unwrap_or("-")
            );
        }
        let now_utc = chrono::Utc::now();
        for a in cfg.oauth.values() {
            println!("oauth {}", supportdesk::oauth::describe(a, now_utc).0);
        }
        println!(
            "tickets: {} open, {} breaching; {} messages without a ticket",
            st.open_tickets, st.breaching, st.unticketed_messages
        );
        if st.acks_held > 0 {
            println!(
                "acknowledgements held: {} (their template fails to render; fix it and reload)",
                st.acks_held
            );
        }
        if st.unauthenticated_agent_mail > 0 {
            println!(
                "unauthenticated agent mail: {} (from agent addresses, not authenticated: no command run)",
                st.unauthenticated_agent_mail
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tickets list`.
fn tickets_list(
    path: &std::path::Path,
    status: Option<String>,
    breaching: bool,
    json: bool,
) -> Result<ExitCode> {
    const STATUSES: [&str; 4] = ["open", "pending", "resolved", "closed"];
    if let Some(s) = status.as_deref()
        && !STATUSES.contains(&s)
    {
        eprintln!(
            "supportdesk: unknown status {s:?}; known: {}",
            STATUSES.join(", ")
        );
        return Ok(ExitCode::from(2));
    }
    let cfg = match load_offline(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(path) = existing_db(&cfg) else {
        return Ok(ExitCode::from(1));
    };
    let now = breaching.then(|| supportdesk::store::ts(supportdesk::clock::now()));
    let rows = supportdesk::store::read_only(&path, |conn| {
        supportdesk::store::report::list(conn, status.as_deref(), now.as_deref())
    })?;
    for t in rows {
        if json {
            println!("{}", serde_json::to_string(&t)?);
        } else {
            // Requester and subject come from mail: `printable`.
            println!(
                "{}  {:<8} {:<10} {:<8} {:<25} {}",
                printable(&t.reference),
                printable(&t.status),
                printable_or(t.priority.as_deref(), "-"),
                printable(&t.language),
                printable(&t.requester),
                printable(&t.subject)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

struct StatsArgs {
    since: Option<String>,
    until: Option<String>,
    by: Option<supportdesk::core::stats::Period>,
    format: supportdesk::reporting::Format,
    timezone: Option<String>,
}

/// A `--since`/`--until` bound: an RFC 3339 instant, or a date's
/// midnight in `zone` (with `end`, the next day's: the date included).
fn report_bound(flag: &str, s: &str, zone: chrono_tz::Tz, end: bool) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("{flag} {s:?}: expected YYYY-MM-DD or an RFC 3339 instant"))?;
    if d.year() > 9999 {
        anyhow::bail!("{flag} {s:?}: out of range");
    }
    let d = if end { d.succ_opt().unwrap_or(d) } else { d };
    supportdesk::core::calendar::local_to_utc(zone, d.and_time(chrono::NaiveTime::MIN))
        .with_context(|| format!("{flag} {s:?}: out of range"))
}

/// A report's zone and its optional bounds.
type Range = (chrono_tz::Tz, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The report's zone and bounds from the command line; an error names
/// the argument.
fn report_range(
    cfg: &Config,
    since: Option<&str>,
    until: Option<&str>,
    timezone: Option<&str>,
) -> Result<Range> {
    let zone = match timezone {
        Some(z) => z
            .parse::<chrono_tz::Tz>()
            .map_err(|_| anyhow::anyhow!("--timezone {z:?}: unknown time zone"))?,
        None => cfg.desk.timezone.unwrap_or(chrono_tz::Tz::UTC),
    };
    let from = since
        .map(|s| report_bound("--since", s, zone, false))
        .transpose()?;
    let to = until
        .map(|s| report_bound("--until", s, zone, true))
        .transpose()?;
    if let (Some(s), Some(u)) = (from, to)
        && u <= s
    {
        anyhow::bail!(
            "--until {} is before --since {}",
            until.unwrap_or_default(),
            since.unwrap_or_default()
        );
    }
    Ok((zone, from, to))
}

/// `stats`: SLA compliance per plan and priority (and period).
fn stats(path: &std::path::Path, a: StatsArgs) -> Result<ExitCode> {
    let cfg = match load_offline(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let (zone, since, until) = match report_range(
        &cfg,
        a.since.as_deref(),
        a.until.as_deref(),
        a.timezone.as_deref(),
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("supportdesk: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let Some(path) = existing_db(&cfg) else {
        return Ok(ExitCode::from(1));
    };
    let facts = supportdesk::store::read_only(&path, |conn| {
        supportdesk::store::report::stats_facts(conn, since, until)
    })?;
    let rows =
        supportdesk::core::stats::compute(&cfg.sla, &facts, a.by, zone, supportdesk::clock::now());
    let mut out = std::io::stdout().lock();
    supportdesk::reporting::write(&mut out, &rows, a.format, a.by.is_some())?;
    Ok(ExitCode::SUCCESS)
}

/// `report --since DATE [--until DATE] --out FILE.html`.
fn report(
    path: &std::path::Path,
    since: &str,
    until: Option<&str>,
    timezone: Option<&str>,
    out: &std::path::Path,
) -> Result<ExitCode> {
    let cfg = match load_offline(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let now = supportdesk::clock::now();
    let range = report_range(&cfg, Some(since), until, timezone).and_then(|(zone, s, u)| {
        let (s, u) = (s.unwrap_or(now), u.unwrap_or(now));
        if u <= s {
            anyhow::bail!("--since {since} is in the future");
        }
        Ok((zone, s, u))
    });
    let (zone, since, until) = match range {
        Ok(b) => b,
        Err(e) => {
            eprintln!("supportdesk: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let Some(path) = existing_db(&cfg) else {
        return Ok(ExitCode::from(1));
    };
    let before = supportdesk::core::stats::previous_start(zone, since, until);
    let (facts, previous, running) = supportdesk::store::read_only(&path, |conn| {
        use supportdesk::store::report as r;
        Ok((
            r::stats_facts(conn, Some(since), Some(until))?,
            r::stats_facts(conn, Some(before), Some(since))?,
            r::running(conn)?,
        ))
    })?;
    let f = supportdesk::reporting::figures(
        &cfg.sla,
        zone,
        (since, until),
        now,
        &facts,
        &previous,
        &running,
    );
    let html = supportdesk::reporting::html_report(&supportdesk::reporting::Report {
        desk: &cfg.desk.name,
        // The report's template is English.
        language: "en",
        zone,
        since,
        until,
        now,
        figures: &f,
    })?;
    std::fs::write(out, html).with_context(|| format!("Writing {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// `outbox list|show|retry`: the queue as the daemon sees it.
fn outbox_command(path: &std::path::Path, command: OutboxCommand) -> Result<ExitCode> {
    use supportdesk::store::outbox::{self, Retry};
    let cfg = match load_offline(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(path) = existing_db(&cfg) else {
        return Ok(ExitCode::from(1));
    };
    match command {
        OutboxCommand::List { failed, json } => {
            let rows = supportdesk::store::read_only(&path, |conn| outbox::list(conn, failed))?;
            for e in rows {
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    println!(
                        "{:>6} {:<7} {:<10} {:<11} {:>2} {}  {}  {}",
                        e.id,
                        e.status,
                        e.kind,
                        e.ticket.as_deref().unwrap_or("-"),
                        e.attempts,
                        e.created_at,
                        printable(&e.recipients),
                        printable_or(e.last_error.as_deref(), "")
                    );
                }
            }
        }
        OutboxCommand::Show { id, json } => {
            let Some((e, raw)) =
                supportdesk::store::read_only(&path, |conn| outbox::show(conn, id))?
            else {
                eprintln!("supportdesk: no outgoing message {id}");
                return Ok(ExitCode::from(2));
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&e)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("outbox {}  {}  [{}]", e.id, e.kind, e.status);
            let line = |k: &str, v: Option<&str>| {
                if let Some(v) = v {
                    println!("{k:<11} {}", printable(v));
                }
            };
            line("ticket", e.ticket.as_deref());
            line("message-id", Some(&e.message_id));
            line("from", Some(&e.sender));
            line("to", Some(&e.recipients));
            line("subject", e.subject.as_deref());
            line("attempts", Some(&e.attempts.to_string()));
            line("queued", Some(&e.created_at));
            line("retried", e.retried_at.as_deref());
            if e.status == "pending" {
                line("next try", Some(&e.next_attempt_at));
            }
            line("sent", e.sent_at.as_deref());
            line("last error", e.last_error.as_deref());
            line("size", Some(&format!("{} bytes", e.size)));
            println!();
            let text = String::from_utf8_lossy(&raw);
            for l in text.lines().take_while(|l| !l.is_empty()) {
                println!("  {}", printable(l));
            }
        }
        OutboxCommand::Retry { id, failed } => {
            let now = supportdesk::clock::now();
            let hint = "a running daemon sends it at its next outbox pass (at once after a reload)";
            if failed {
                let n = outbox::retry_failed(&supportdesk::store::open_existing_rw(&path)?, now)?;
                println!(
                    "{n} failed message{} queued again; {hint}",
                    if n == 1 { "" } else { "s" }
                );
            } else if let Some(id) = id {
                match outbox::retry(&supportdesk::store::open_existing_rw(&path)?, id, now)? {
                    Retry::Queued => println!("outbox {id}: queued again; {hint}"),
                    Retry::AlreadySent => {
                        eprintln!("supportdesk: outbox {id} was delivered already");
                        return Ok(ExitCode::from(2));
                    }
                    Retry::NotFound => {
                        eprintln!("supportdesk: no outgoing message {id}");
                        return Ok(ExitCode::from(2));
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn printable_escapes_controls_and_bidirectional_overrides_only() {
        let plain = "Problème de sauvegarde <ann@example.com> \\ [SUP-000001]";
        assert!(matches!(printable(plain), std::borrow::Cow::Borrowed(_)));
        assert_eq!(printable(plain), plain);
        assert_eq!(
            printable("a\x1b[2Jb\x07c\td\x7fe\u{9b}f\u{85}"),
            "a\\x1b[2Jb\\x07c\\x09d\\x7fe\\u{9b}f\\u{85}"
        );
        assert_eq!(
            printable("invoice\u{202e}fdp.exe \u{2066}x\u{2069}\u{200f}"),
            "invoice\\u{202e}fdp.exe \\u{2066}x\\u{2069}\\u{200f}"
        );
    }
}
