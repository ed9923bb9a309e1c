//! The configuration file: raw TOML in, a checked `Config` out.
//!
//! Two phases, as in ripgrep and vector: serde reads the raw shape with
//! `deny_unknown_fields` (syntax and schema errors carry their span), then
//! `check` turns raw values into typed ones, one function per section, and
//! reports every problem at once. Every problem names the file, line,
//! column and key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::core::auth::{PUBLIC_PROVIDERS, ReplyTo, Require};
use crate::core::duration;
use crate::core::escalation::Level;
use crate::core::problem::{Problem, Problems};
use crate::core::sla::{RawSla, SlaModel};
use crate::core::triage::{RawTriage, TriageModel};

pub mod oauth;
pub use oauth::{Login, OAuthAccount, Sasl};

pub const DEFAULT_PATH: &str = "/etc/supportdesk/supportdesk.toml";

// ---------------------------------------------------------------- raw shape

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub priorities: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    pub desk: RawDesk,
    #[serde(default)]
    pub mailboxes: Vec<RawMailbox>,
    pub outbox: RawOutbox,
    pub sla: RawSla,
    pub triage: RawTriage,
    #[serde(default)]
    pub agents: RawAgents,
    #[serde(default)]
    pub escalation: RawEscalation,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub trust: RawTrust,
    #[serde(default)]
    pub digest: Vec<RawDigest>,
    /// `[oauth.NAME]`: OAuth 2.0 accounts mailboxes and the outbox log in with.
    #[serde(default)]
    pub oauth: std::collections::BTreeMap<String, oauth::RawOAuth>,
}

/// `[[digest]]`: an SLA digest mailed to managers (README "Reports").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDigest {
    /// What the sendings are recorded under (unique).
    pub name: String,
    /// "Name <address>" or bare addresses.
    pub to: Vec<String>,
    /// Template language (default: the triage default language).
    pub language: Option<String>,
    /// The zone its periods and hour are read in (default: the desk's, else UTC).
    pub timezone: Option<String>,
    /// "day" or "week".
    pub every: String,
    /// The sending day of a weekly digest (default "monday").
    pub weekday: Option<String>,
    /// The hour it goes out, 0-23 (default 8).
    pub hour: Option<u32>,
}

/// `[trust]`: what vouches for a sender, and what needs it (see
/// core/auth.rs and README "Trust").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrust {
    /// Authentication-Results headers of these servers count (RFC 8601
    /// authserv-id: the company's own MX, or its mailbox provider).
    #[serde(default)]
    pub authserv_id: Vec<String>,
    /// Check DKIM signatures ourselves when no trusted header gives a
    /// verdict (DNS lookups). Default off.
    pub verify_dkim: Option<bool>,
    /// The DNS server for our own checks, "IP:port"; default the system's.
    pub dns: Option<String>,
    /// What makes a mail from an agent's address an agent's:
    /// "authenticated" (default) or "from" (the From header alone).
    pub agents: Option<String>,
    /// What a plan (by the sender's domain) or a priority claim in the
    /// subject needs: "authenticated" (default) or "from".
    pub claims: Option<String>,
    /// "same-domain" (default), "always" or "never".
    pub reply_to: Option<String>,
    /// Acknowledgements per hour, all addresses together (the per-address
    /// limit is `[desk] ack_limit_per_hour`).
    pub ack_limit_all_per_hour: Option<u32>,
    /// Acknowledgements per hour to the addresses of one domain.
    pub ack_limit_domain_per_hour: Option<u32>,
    /// Domains shared by strangers (webmail): never "the same
    /// organisation" for tag threading. Replaces the shipped list.
    pub public_providers: Option<Vec<String>>,
}

/// Off unless `listen` is set, e.g. "127.0.0.1:9187".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<String>,
}

/// Who answers for the desk: their mail is an agent response, never a
/// customer message, and is never acknowledged.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgents {
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Every address of these domains (and their subdomains).
    #[serde(default)]
    pub domains: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEscalation {
    /// How often the sweeper looks (default "1m"); it also runs after
    /// every ingestion pass.
    pub tick: Option<String>,
    /// Warn when this share of a target has elapsed (default 80; 0: no warnings).
    pub warn_at_percent: Option<u8>,
    /// A second-level notice this long after the breach (default: none).
    pub second_level_after: Option<String>,
    #[serde(default)]
    pub recipients: Vec<RawRecipient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecipient {
    /// "Name <address>" or a bare address.
    pub address: String,
    /// Template language (default: the triage default language).
    pub language: Option<String>,
    /// Zone the notice shows instants in (default UTC).
    pub timezone: Option<String>,
    /// Only tickets of these plans / priorities (default: all). A recipient
    /// with neither is a default: it gets a notice only when no recipient
    /// naming the ticket's plan or priority does.
    #[serde(default)]
    pub plans: Vec<String>,
    #[serde(default)]
    pub priorities: Vec<String>,
    /// "warning", "breach", "second" (default: warning and breach).
    #[serde(default)]
    pub levels: Vec<String>,
    /// A calendar of `[sla.calendars]`: notices that fall due while it is
    /// closed wait for its next opening (in the recipient's zone when the
    /// calendar follows the customer's).
    pub calendar: Option<String>,
    /// The levels held by `calendar` (default: all the recipient takes);
    /// the others go out at once, night or day.
    pub hold: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDesk {
    pub name: String,
    /// From: of every mail the desk sends, e.g. "Acme Support <support@acme.test>".
    pub address: String,
    #[serde(default = "default_prefix")]
    pub reference_prefix: String,
    /// Database and attachments; relative paths are relative to the config file.
    pub state_dir: String,
    #[serde(default = "default_templates")]
    pub templates_dir: String,
    /// Messages larger than this are kept raw but not parsed.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    /// Log filter, e.g. "info" or "supportdesk=debug"; RUST_LOG wins.
    #[serde(default)]
    pub log_level: Option<String>,
    /// "text" (default) or "json"; SUPPORTDESK_LOG_FORMAT wins.
    pub log_format: Option<String>,
    /// Who hears about a mailbox that cannot be fetched (and its recovery).
    pub admin_address: Option<String>,
    /// How long without a successful poll before that alert (default "15m").
    pub fetch_alert_after: Option<String>,
    /// At most this many acknowledgements per address and hour (default 5):
    /// the last guard against a loop with an autoresponder.
    pub ack_limit_per_hour: Option<u32>,
    /// Extra strings for the templates, as `vars.NAME` (e.g. commercial_address).
    #[serde(default)]
    pub template_vars: std::collections::BTreeMap<String, String>,
    /// A customer's reply to a resolved ticket reopens it within this
    /// time after resolution (default "7d"); later it opens a new ticket
    /// that links the old one.
    pub reopen_window: Option<String>,
    /// IANA zone the customer's mail shows times in when neither the
    /// customer nor the plan's calendar has one (default UTC).
    pub timezone: Option<String>,
}

fn default_prefix() -> String {
    "SUP".into()
}
fn default_templates() -> String {
    "templates".into()
}
fn default_max_message_bytes() -> u64 {
    25 * 1024 * 1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMailbox {
    pub name: String,
    pub kind: String,
    // imap
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<String>,
    pub username: Option<String>,
    /// "password" (default) or "oauth2".
    pub auth: Option<String>,
    /// With auth = "oauth2": the `[oauth.NAME]` account.
    pub oauth: Option<String>,
    #[serde(flatten)]
    pub secret: RawSecret,
    pub ca_file: Option<String>,
    pub folder: Option<String>,
    pub poll_interval: Option<String>,
    pub idle: Option<bool>,
    /// Longest wait for one answer from the server (default 2m): a server
    /// that stops answering is treated as down, not waited for forever.
    pub timeout: Option<String>,
    /// How long one IDLE lasts before it is re-issued (default 25m, at
    /// most 29m: RFC 2177).
    pub idle_timeout: Option<String>,
    /// Folder to move processed messages into; default: flag them \Seen.
    pub move_to: Option<String>,
    /// The largest message fetched (by its RFC822.SIZE, default 1 GiB):
    /// memory, not the desk, is the limit; a bigger one stops the pass
    /// below it with an error instead of exhausting memory.
    pub max_fetch_bytes: Option<u64>,
    // maildir
    pub path: Option<String>,
    /// Maildir: move handled files to cur/ with the Seen flag (default true).
    pub mark: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub password: Option<String>,
    pub password_file: Option<String>,
    /// Name of a systemd credential (LoadCredential=), read from $CREDENTIALS_DIRECTORY.
    pub password_credential: Option<String>,
}

impl RawSecret {
    /// Whether any password source is given (read or not).
    fn is_declared(&self) -> bool {
        self.password.is_some()
            || self.password_file.is_some()
            || self.password_credential.is_some()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutbox {
    pub kind: String,
    // smtp
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<String>,
    pub username: Option<String>,
    /// "password" (default) or "oauth2".
    pub auth: Option<String>,
    /// With auth = "oauth2": the `[oauth.NAME]` account.
    pub oauth: Option<String>,
    #[serde(flatten)]
    pub secret: RawSecret,
    pub ca_file: Option<String>,
    pub max_attempts: Option<u32>,
    pub max_queue_lifetime: Option<String>,
    pub timeout: Option<String>,
    /// SMTP sessions used at once when there is a queue.
    pub connections: Option<u32>,
    // directory
    pub path: Option<String>,
}

// ---------------------------------------------------------------- checked

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub priorities: Vec<String>,
    pub categories: Vec<String>,
    pub desk: Desk,
    pub mailboxes: Vec<Mailbox>,
    pub outbox: Outbox,
    pub sla: SlaModel,
    pub triage: TriageModel,
    pub agents: Agents,
    pub escalation: Escalation,
    /// Where the Prometheus endpoint listens; None: off.
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub trust: Trust,
    pub digests: Vec<Digest>,
    /// `[oauth.NAME]`, by name.
    pub oauth: Accounts,
}

/// One `[[digest]]`, checked.
#[derive(Debug, Clone)]
pub struct Digest {
    pub name: String,
    pub to: Vec<lettre::message::Mailbox>,
    pub language: String,
    pub schedule: crate::core::digest::Schedule,
}

/// `[trust]`, checked.
#[derive(Debug, Clone)]
pub struct Trust {
    /// Lowercased.
    pub authserv_id: Vec<String>,
    pub verify_dkim: bool,
    pub dns: Option<std::net::SocketAddr>,
    pub agents: Require,
    pub claims: Require,
    pub reply_to: ReplyTo,
    pub ack_limit_all_per_hour: u32,
    pub ack_limit_domain_per_hour: u32,
    pub public_providers: std::collections::HashSet<String>,
}

/// The `authserv_id` entry that trusts Exchange Online's header, which
/// carries no authserv-id (Exchange renames the ones a message came with
/// to Authentication-Results-Original).
pub const EXCHANGE_ONLINE: &str = "exchange-online";

/// `[trust] ack_limit_all_per_hour` by default: an outage brings hundreds of
/// distinct customers within the hour, and all of them are acknowledged.
pub const DEFAULT_ACK_LIMIT_PER_HOUR: u32 = 5000;
/// `[trust] ack_limit_domain_per_hour` by default: many of them from one company.
pub const DEFAULT_ACK_LIMIT_PER_DOMAIN: u32 = 1000;

impl Trust {
    /// Whether a domain is a public mail provider's.
    pub fn is_public_provider(&self, domain: &str) -> bool {
        self.public_providers.contains(&domain.to_ascii_lowercase())
    }

    fn servers(&self) -> String {
        self.authserv_id
            .iter()
            .map(|id| if id.is_empty() { EXCHANGE_ONLINE } else { id })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What check-config prints of it.
    pub fn describe(&self) -> Vec<String> {
        let req = |r: Require| match r {
            Require::Authenticated => "DMARC pass or aligned DKIM pass",
            Require::From => "the From header alone (anyone can forge it)",
        };
        let sources = match (self.authserv_id.is_empty(), self.verify_dkim) {
            (true, false) => {
                "none (no authserv_id, verify_dkim off): nobody is authenticated".to_string()
            }
            (false, false) => format!("Authentication-Results of {}", self.servers()),
            (true, true) => "our own DKIM check".to_string(),
            (false, true) => format!(
                "Authentication-Results of {}, else our own DKIM check",
                self.servers()
            ),
        };
        vec![
            format!("authentication: {sources}"),
            format!("agent commands need: {}", req(self.agents)),
            format!("plan and priority claims need: {}", req(self.claims)),
            format!(
                "acknowledgement to Reply-To: {}",
                match self.reply_to {
                    ReplyTo::SameDomain => "only for an authenticated sender, in its From domain",
                    ReplyTo::Always => "always (a forged Reply-To gets the acknowledgement)",
                    ReplyTo::Never => "never (always the From)",
                }
            ),
            format!(
                "acknowledgement limits per hour: {} in all, {} per domain",
                self.ack_limit_all_per_hour, self.ack_limit_domain_per_hour
            ),
            format!(
                "public mail providers: {} domains",
                self.public_providers.len()
            ),
        ]
    }
}

#[derive(Debug, Clone, Default)]
pub struct Agents {
    addresses: std::collections::HashSet<String>,
    domains: Vec<String>,
}

impl Agents {
    pub fn is_agent(&self, email: &str) -> bool {
        let email = email.trim().to_lowercase();
        if self.addresses.contains(&email) {
            return true;
        }
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        self.domains
            .iter()
            .any(|d| domain == d || domain.ends_with(&format!(".{d}")))
    }
}

#[derive(Debug, Clone)]
pub struct Escalation {
    pub tick: Duration,
    /// None: no warnings.
    pub warn_share: Option<f64>,
    pub second_after: Option<chrono::TimeDelta>,
    pub recipients: Vec<Recipient>,
}

#[derive(Debug, Clone)]
pub struct Recipient {
    pub address: lettre::message::Mailbox,
    pub language: String,
    pub timezone: chrono_tz::Tz,
    pub plans: Vec<String>,
    pub priorities: Vec<String>,
    pub levels: Vec<Level>,
    /// Office hours of this recipient, and the levels that wait for them.
    pub hours: Option<RecipientHours>,
}

/// A recipient's `calendar` and `hold`.
#[derive(Debug, Clone)]
pub struct RecipientHours {
    pub name: String,
    pub calendar: crate::core::calendar::Calendar,
    pub hold: Vec<Level>,
}

impl Recipient {
    /// When a notice of `level` falling due at `now` may go out: `now`,
    /// or the next opening of the recipient's calendar for a held level
    /// while it is closed.
    pub fn deliver_at(&self, level: Level, now: DateTime<Utc>) -> DateTime<Utc> {
        let Some(h) = &self.hours else {
            return now;
        };
        if !h.hold.contains(&level) {
            return now;
        }
        let zone = h.calendar.zone_for(Some(self.timezone));
        if h.calendar.is_open(now, zone) {
            return now;
        }
        h.calendar.next_opening(now, zone).unwrap_or(now)
    }
}

impl Escalation {
    /// Who gets a notice of `level` for a ticket of `plan` and `priority`:
    /// the recipients naming the plan or priority, else the defaults.
    pub fn recipients_for(
        &self,
        plan: &str,
        priority: Option<&str>,
        level: Level,
    ) -> Vec<&Recipient> {
        let wants = |r: &&Recipient| r.levels.contains(&level);
        let specific: Vec<&Recipient> = self
            .recipients
            .iter()
            .filter(wants)
            .filter(|r| !r.plans.is_empty() || !r.priorities.is_empty())
            .filter(|r| r.plans.is_empty() || r.plans.iter().any(|p| p == plan))
            .filter(|r| {
                r.priorities.is_empty()
                    || priority.is_some_and(|p| r.priorities.iter().any(|x| x == p))
            })
            .collect();
        if !specific.is_empty() {
            return specific;
        }
        self.recipients
            .iter()
            .filter(wants)
            .filter(|r| r.plans.is_empty() && r.priorities.is_empty())
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Desk {
    pub name: String,
    pub address: lettre::message::Mailbox,
    pub reference_prefix: String,
    pub state_dir: PathBuf,
    pub templates_dir: PathBuf,
    pub max_message_bytes: u64,
    pub log_level: Option<String>,
    pub log_format: LogFormat,
    pub template_vars: std::collections::BTreeMap<String, String>,
    pub reopen_window: chrono::TimeDelta,
    pub timezone: Option<chrono_tz::Tz>,
    pub admin_address: Option<lettre::message::Mailbox>,
    pub fetch_alert_after: chrono::TimeDelta,
    pub ack_limit_per_hour: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    Implicit,
    StartTls,
    /// Plain text; only accepted for loopback hosts.
    None,
}

#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: String,
    pub login: Login,
    pub ca_file: Option<PathBuf>,
    pub folder: String,
    pub poll_interval: Duration,
    pub idle: bool,
    pub timeout: Duration,
    pub idle_timeout: Duration,
    pub move_to: Option<String>,
    pub max_fetch_bytes: u64,
}

#[derive(Debug, Clone)]
pub enum MailboxKind {
    Imap(ImapSettings),
    Maildir { path: PathBuf, mark: bool },
}

#[derive(Debug, Clone)]
pub struct Mailbox {
    pub name: String,
    pub kind: MailboxKind,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: Option<String>,
    /// With `username`: how it logs in. None: no AUTH.
    pub login: Option<Login>,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum OutboxKind {
    Smtp(SmtpSettings),
    /// Writes each message as an .eml file (demo, tests without SMTP).
    Directory(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Outbox {
    pub kind: OutboxKind,
    /// Deliveries the server answered with a 4xx before a message fails.
    pub max_attempts: u32,
    /// How long a message may wait in the queue before it fails.
    pub max_queue_lifetime: Duration,
    /// SMTP sessions used at once when there is a queue (default 4).
    pub connections: usize,
}

// ---------------------------------------------------------------- errors

/// One problem, located in the file.
#[derive(Debug, Clone)]
pub struct Located {
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Located>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {} problem{}",
            self.file.display(),
            n,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            if p.line > 0 {
                write!(f, "{}:{}:{}: ", self.file.display(), p.line, p.column)?;
            } else {
                write!(f, "{}: ", self.file.display())?;
            }
            if !p.key.is_empty() {
                write!(f, "key `{}`: ", p.key)?;
            }
            writeln!(f, "{}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------- loading

/// Whether loading reads the passwords and checks the mailboxes exist.
/// Commands that never connect (`sla due`, `classify`, `tickets`,
/// `status`) skip both, so an admin can run them outside the service,
/// where the credentials are not readable, and while a mailbox is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    Read,
    /// Declared sources are accepted unread; the Config's passwords are
    /// empty and it must not be used to connect.
    Skip,
}

/// Reads and checks a config file. Credential files are read here, so a
/// checked Config holds everything needed to run.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, Secrets::Read)
}

pub fn load_with(path: &Path, secrets: Secrets) -> Result<Config, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        problems: vec![Located {
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        }],
    })?;
    parse_with(path, &src, secrets)
}

pub fn parse(path: &Path, src: &str) -> Result<Config, ConfigError> {
    parse_with(path, src, Secrets::Read)
}

pub fn parse_with(path: &Path, src: &str, secrets: Secrets) -> Result<Config, ConfigError> {
    let fail = |problems| ConfigError {
        file: path.to_path_buf(),
        problems,
    };
    let raw: RawConfig = match toml::from_str(src) {
        Ok(raw) => raw,
        Err(e) => {
            let (line, column) = e.span().map(|s| line_col(src, s.start)).unwrap_or((0, 0));
            let key = e.span().map(|s| key_at(src, s.start)).unwrap_or_default();
            return Err(fail(vec![Located {
                line,
                column,
                key,
                message: e.message().trim().to_string(),
            }]));
        }
    };
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    check(path, &base, &raw, secrets).map_err(|problems| {
        let mut located: Vec<_> = problems.into_iter().map(|p| locate(src, p)).collect();
        // In file order, as an editor would walk them.
        located.sort_by_key(|l| (l.line, l.column));
        fail(located)
    })
}

/// Checks every section, reporting every problem at once. Each section is
/// checked on its own (under its key, so paths are relative to it); the
/// SLA and triage models check themselves. A section that cannot be built
/// gives None, and the whole check fails with its problems.
fn check(
    file: &Path,
    base: &Path,
    raw: &RawConfig,
    secrets: Secrets,
) -> Result<Config, Vec<Problem>> {
    let mut pr = Problems::new();
    check_ids(&raw.priorities, "priorities", &mut pr);
    check_ids(&raw.categories, "categories", &mut pr);
    // Escalation templates and the acknowledgement template are looked up
    // there too.
    let templates_dir = base.join(&raw.desk.templates_dir);
    let desk = pr.within(&["desk"], |pr| {
        check_desk(&raw.desk, base, &templates_dir, pr)
    });
    let state_dir = base.join(&raw.desk.state_dir);
    let accounts = pr.within(&["oauth"], |pr| {
        oauth::check_accounts(&raw.oauth, base, &state_dir, secrets, pr)
    });
    let mailboxes = pr.within(&["mailboxes"], |pr| {
        check_mailboxes(&raw.mailboxes, base, secrets, &accounts, pr)
    });
    let outbox = pr.within(&["outbox"], |pr| {
        check_outbox(&raw.outbox, base, secrets, &accounts, pr)
    });
    // The core reads no files: the calendars' .ics files are read here.
    let mut raw_sla = raw.sla.clone();
    for cal in raw_sla.calendars.values_mut() {
        if let Some(p) = &cal.holidays_ics {
            let path = base.join(p);
            let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read it: {e}"));
            cal.holidays_ics_text = Some((path.display().to_string(), text));
        }
    }
    let sla = SlaModel::from_raw(&raw_sla, &raw.priorities, &raw.categories)
        .map_err(|ps| pr.extend(ps))
        .ok();
    let triage = TriageModel::from_raw(&raw.triage, &raw.priorities, &raw.categories)
        .map_err(|ps| pr.extend(ps))
        .ok();
    for (name, c) in &raw.sla.customers {
        if let Some(l) = &c.language
            && !raw.triage.languages.contains(l)
        {
            pr.push(
                &["sla", "customers", name.as_str(), "language"],
                format!(
                    "{l:?} is not one of `triage.languages` ({})",
                    raw.triage.languages.join(", ")
                ),
            );
        }
    }
    let agents = pr.within(&["agents"], |pr| check_agents(&raw.agents, pr));
    let known = Known {
        priorities: &raw.priorities,
        sla: sla.as_ref(),
        default_language: triage.as_ref().map_or("en", |t| t.default_language()),
        templates_dir: &templates_dir,
    };
    let escalation = pr.within(&["escalation"], |pr| {
        check_escalation(&raw.escalation, &known, pr)
    });
    let metrics_listen = pr.within(&["metrics"], |pr| check_metrics(&raw.metrics, pr));
    let trust = pr.within(&["trust"], |pr| check_trust(&raw.trust, pr));
    let desk_zone = desk.as_ref().and_then(|d| d.timezone);
    let digests = check_digests(&raw.digest, &known, desk_zone, &mut pr);
    if let Some(triage) = &triage {
        pr.within(&["desk"], |pr| {
            check_ack_template(&templates_dir, triage, pr)
        });
    }

    match (desk, outbox, sla, triage) {
        (Some(desk), Some(outbox), Some(sla), Some(triage)) if pr.is_empty() => Ok(Config {
            file: file.to_path_buf(),
            priorities: raw.priorities.clone(),
            categories: raw.categories.clone(),
            desk,
            mailboxes,
            outbox,
            sla,
            triage,
            agents,
            escalation,
            metrics_listen,
            trust,
            digests,
            oauth: accounts,
        }),
        _ => Err(pr.into_vec()),
    }
}

/// `[desk]`; None when its address is not one.
fn check_desk(d: &RawDesk, base: &Path, templates_dir: &Path, pr: &mut Problems) -> Option<Desk> {
    let address = match d.address.parse::<lettre::message::Mailbox>() {
        Ok(a) => Some(a),
        Err(e) => {
            pr.push(
                &["address"],
                format!(
                    "not an email address ({e}); expected e.g. \"Support <support@example.com>\""
                ),
            );
            None
        }
    };
    if d.reference_prefix.is_empty()
        || !d
            .reference_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
    {
        pr.push(
            &["reference_prefix"],
            "expected letters and digits only, e.g. \"SUP\"",
        );
    }
    if !templates_dir.is_dir() {
        pr.push(
            &["templates_dir"],
            format!("{} is not a directory", templates_dir.display()),
        );
    }
    if let Some(level) = &d.log_level
        && level.parse::<tracing_subscriber::EnvFilter>().is_err()
    {
        pr.push(
            &["log_level"],
            format!(
                "{level:?} is not a log filter; expected e.g. \"info\" or \"supportdesk=debug\""
            ),
        );
    }
    let reopen_window = match parse_duration(d.reopen_window.as_deref().unwrap_or("7d"))
        .and_then(|d| chrono::TimeDelta::from_std(d).ok())
    {
        Some(w) => w,
        None => {
            pr.push(
                &["reopen_window"],
                "expected a duration such as \"7d\" or \"48h\"",
            );
            chrono::TimeDelta::zero()
        }
    };
    let timezone = match d
        .timezone
        .as_deref()
        .map(|z| z.trim().parse::<chrono_tz::Tz>())
    {
        None => None,
        Some(Ok(z)) => Some(z),
        Some(Err(_)) => {
            pr.push(
                &["timezone"],
                format!(
                    "unknown time zone {:?}; use an IANA name such as \"Europe/Paris\"",
                    d.timezone.as_deref().unwrap_or_default()
                ),
            );
            None
        }
    };
    let log_format = match d.log_format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            pr.push(
                &["log_format"],
                format!("unknown log format {other:?}; expected \"text\" or \"json\""),
            );
            LogFormat::Text
        }
    };
    let admin_address = match &d.admin_address {
        None => None,
        Some(a) => match a.parse::<lettre::message::Mailbox>() {
            Ok(m) => Some(m),
            Err(e) => {
                pr.push(
                    &["admin_address"],
                    format!("{a:?} is not a mail address: {e}"),
                );
                None
            }
        },
    };
    let fetch_alert_after = match parse_duration(d.fetch_alert_after.as_deref().unwrap_or("15m"))
        .and_then(|d| chrono::TimeDelta::from_std(d).ok())
    {
        Some(w) if w > chrono::TimeDelta::zero() => w,
        _ => {
            pr.push(
                &["fetch_alert_after"],
                "expected a duration such as \"15m\"",
            );
            chrono::TimeDelta::minutes(15)
        }
    };
    Some(Desk {
        name: d.name.clone(),
        address: address?,
        reference_prefix: d.reference_prefix.clone(),
        state_dir: base.join(&d.state_dir),
        templates_dir: templates_dir.to_path_buf(),
        max_message_bytes: d.max_message_bytes,
        log_level: d.log_level.clone(),
        log_format,
        template_vars: d.template_vars.clone(),
        reopen_window,
        timezone,
        admin_address,
        fetch_alert_after,
        ack_limit_per_hour: d.ack_limit_per_hour.unwrap_or(5),
    })
}

/// The acknowledgement template of the triage default language, a
/// `[desk] templates_dir` problem.
fn check_ack_template(templates_dir: &Path, triage: &TriageModel, pr: &mut Problems) {
    let lang = triage.default_language();
    let t = templates_dir.join(format!("ack.{lang}.txt"));
    if templates_dir.is_dir() && !t.is_file() {
        pr.push(
            &["templates_dir"],
            format!(
                "no acknowledgement template for the default language {lang:?}: {} is missing",
                t.display()
            ),
        );
    }
}

/// `[[mailboxes]]`: the mailboxes that could be built; names are unique.
fn check_mailboxes(
    raw: &[RawMailbox],
    base: &Path,
    secrets: Secrets,
    accounts: &Accounts,
    pr: &mut Problems,
) -> Vec<Mailbox> {
    let mut mailboxes = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, m) in raw.iter().enumerate() {
        let mailbox = pr.within(&[&i.to_string()], |pr| {
            if m.name.is_empty() || m.name.len() > 64 {
                pr.push(&["name"], "expected a short non-empty name");
            }
            if !names.insert(m.name.clone()) {
                pr.push(
                    &["name"],
                    format!("mailbox name {:?} is used twice", m.name),
                );
            }
            let kind = match m.kind.as_str() {
                "imap" => check_imap(m, base, secrets, accounts, pr).map(MailboxKind::Imap),
                "maildir" => check_maildir(m, base, secrets, pr),
                other => {
                    pr.push(
                        &["kind"],
                        format!("unknown mailbox kind {other:?}; expected \"imap\" or \"maildir\""),
                    );
                    None
                }
            };
            Some(Mailbox {
                name: m.name.clone(),
                kind: kind?,
            })
        });
        mailboxes.extend(mailbox);
    }
    mailboxes
}

/// One `kind = "imap"` mailbox; None when it has no way to log in.
fn check_imap(
    m: &RawMailbox,
    base: &Path,
    secrets: Secrets,
    accounts: &Accounts,
    pr: &mut Problems,
) -> Option<ImapSettings> {
    let host = m.host.clone().unwrap_or_default();
    if host.is_empty() {
        pr.push(&["host"], "an imap mailbox needs a host");
    }
    let tls = match m.tls.as_deref().unwrap_or("implicit") {
        "implicit" => Tls::Implicit,
        "starttls" => Tls::StartTls,
        other => {
            pr.push(
                &["tls"],
                format!("unknown tls mode {other:?}; expected \"implicit\" or \"starttls\""),
            );
            Tls::Implicit
        }
    };
    let port = m
        .port
        .unwrap_or(if tls == Tls::Implicit { 993 } else { 143 });
    let username = m.username.clone().unwrap_or_default();
    if username.is_empty() {
        pr.push(&["username"], "an imap mailbox needs a username");
    }
    let password = match read_secret(base, &m.secret, secrets) {
        Ok(s) => s,
        Err((key, msg)) => {
            pr.push(&[key], msg);
            Some(Secret(String::new()))
        }
    };
    let oauth2 = m.auth.as_deref() == Some("oauth2");
    if !oauth2 && password.is_none() {
        pr.push(
            &["password_file"],
            "an imap mailbox needs password_file, password_credential or password (or auth = \"oauth2\")",
        );
    }
    let login = oauth::check_login(
        m.auth.as_deref(),
        m.oauth.as_deref(),
        password,
        m.secret.is_declared(),
        accounts,
        pr,
    );
    let ca_file = m.ca_file.as_ref().map(|f| base.join(f));
    if let Some(ca) = &ca_file
        && !ca.is_file()
    {
        pr.push(
            &["ca_file"],
            format!("{} is not a readable file", ca.display()),
        );
    }
    let poll_interval = bounded_duration(m.poll_interval.as_deref(), 60, ONE_SECOND, Duration::MAX)
        .unwrap_or_else(|d| {
            pr.push(
                &["poll_interval"],
                "expected a duration of at least 1s, e.g. \"30s\", \"5m\"",
            );
            d
        });
    let timeout = bounded_duration(m.timeout.as_deref(), 120, ONE_SECOND, Duration::MAX)
        .unwrap_or_else(|d| {
            pr.push(
                &["timeout"],
                "expected a duration of at least 1s, e.g. \"2m\"",
            );
            d
        });
    let idle_timeout = bounded_duration(
        m.idle_timeout.as_deref(),
        25 * 60,
        ONE_SECOND,
        Duration::from_secs(29 * 60),
    )
    .unwrap_or_else(|d| {
        pr.push(
            &["idle_timeout"],
            "expected a duration from 1s to 29m (RFC 2177), e.g. \"25m\"",
        );
        d
    });
    let max_fetch_bytes = m.max_fetch_bytes.unwrap_or(DEFAULT_MAX_FETCH_BYTES);
    if max_fetch_bytes < 1 << 20 {
        pr.push(
            &["max_fetch_bytes"],
            "expected at least 1048576 (1 MiB), e.g. 1073741824 (1 GiB)",
        );
    }
    if m.path.is_some() {
        pr.push(&["path"], "`path` is for maildir mailboxes");
    }
    Some(ImapSettings {
        host,
        port,
        tls,
        username,
        login: login?,
        ca_file,
        folder: m.folder.clone().unwrap_or_else(|| "INBOX".into()),
        poll_interval,
        idle: m.idle.unwrap_or(true),
        timeout,
        idle_timeout,
        move_to: m.move_to.clone(),
        max_fetch_bytes,
    })
}

/// `mailboxes[].max_fetch_bytes` by default. A message above the desk's
/// `max_message_bytes` is spooled to disk as it is fetched (store/spool.rs),
/// so this bounds disk, not memory: 1 GiB is more than any provider lets
/// through (Microsoft 365 at most 150 MB, Gmail 25 MB).
pub const DEFAULT_MAX_FETCH_BYTES: u64 = 1 << 30;

/// One `kind = "maildir"` mailbox; None without a path.
fn check_maildir(
    m: &RawMailbox,
    base: &Path,
    secrets: Secrets,
    pr: &mut Problems,
) -> Option<MailboxKind> {
    let Some(path) = &m.path else {
        pr.push(&["path"], "a maildir mailbox needs a path");
        return None;
    };
    let path = base.join(path);
    // Offline commands (status, tickets) must work precisely when a
    // mailbox has gone missing.
    if secrets == Secrets::Read && (!path.join("new").is_dir() || !path.join("cur").is_dir()) {
        pr.push(
            &["path"],
            format!("{} is not a Maildir (no new/ and cur/)", path.display()),
        );
    }
    for (key, set) in [
        ("host", m.host.is_some()),
        ("username", m.username.is_some()),
        ("auth", m.auth.is_some()),
        ("oauth", m.oauth.is_some()),
        ("move_to", m.move_to.is_some()),
        ("timeout", m.timeout.is_some()),
        ("idle_timeout", m.idle_timeout.is_some()),
        ("max_fetch_bytes", m.max_fetch_bytes.is_some()),
    ] {
        if set {
            pr.push(&[key], "not used by a maildir mailbox");
        }
    }
    Some(MailboxKind::Maildir {
        path,
        mark: m.mark.unwrap_or(true),
    })
}

/// `[outbox]`; None when its kind cannot be built.
fn check_outbox(
    o: &RawOutbox,
    base: &Path,
    secrets: Secrets,
    accounts: &Accounts,
    pr: &mut Problems,
) -> Option<Outbox> {
    let max_attempts = o.max_attempts.unwrap_or(10);
    if max_attempts == 0 {
        pr.push(&["max_attempts"], "expected at least 1");
    }
    let connections = o.connections.unwrap_or(4);
    if !(1..=32).contains(&connections) {
        pr.push(&["connections"], "expected 1 to 32 SMTP sessions");
    }
    let max_queue_lifetime = bounded_duration(
        o.max_queue_lifetime.as_deref(),
        5 * 86_400,
        Duration::from_secs(60),
        Duration::MAX,
    )
    .unwrap_or_else(|d| {
        pr.push(
            &["max_queue_lifetime"],
            "expected a duration of at least 1m, e.g. \"5d\"",
        );
        d
    });
    let kind = match o.kind.as_str() {
        "smtp" => Some(OutboxKind::Smtp(check_smtp(o, base, secrets, accounts, pr))),
        "directory" => match &o.path {
            Some(p) => Some(OutboxKind::Directory(base.join(p))),
            None => {
                pr.push(&["path"], "a directory outbox needs a path");
                None
            }
        },
        other => {
            pr.push(
                &["kind"],
                format!("unknown outbox kind {other:?}; expected \"smtp\" or \"directory\""),
            );
            None
        }
    };
    Some(Outbox {
        kind: kind?,
        max_attempts,
        max_queue_lifetime,
        connections: connections.clamp(1, 32) as usize,
    })
}

/// A `kind = "smtp"` outbox.
fn check_smtp(
    o: &RawOutbox,
    base: &Path,
    secrets: Secrets,
    accounts: &Accounts,
    pr: &mut Problems,
) -> SmtpSettings {
    let host = o.host.clone().unwrap_or_default();
    if host.is_empty() {
        pr.push(&["host"], "an smtp outbox needs a host");
    }
    let tls = match o.tls.as_deref().unwrap_or("starttls") {
        "implicit" => Tls::Implicit,
        "starttls" => Tls::StartTls,
        "none" => {
            if !is_loopback(&host) {
                pr.push(
                    &["tls"],
                    "tls = \"none\" is only allowed for a loopback host",
                );
            }
            Tls::None
        }
        other => {
            pr.push(
                &["tls"],
                format!(
                    "unknown tls mode {other:?}; expected \"starttls\", \"implicit\" or \"none\""
                ),
            );
            Tls::StartTls
        }
    };
    let port = o.port.unwrap_or(match tls {
        Tls::Implicit => 465,
        Tls::StartTls => 587,
        Tls::None => 25,
    });
    let declared = o.secret.is_declared();
    let password = match read_secret(base, &o.secret, secrets) {
        Ok(s) => s,
        Err((key, msg)) => {
            pr.push(&[key], msg);
            None
        }
    };
    let oauth2 = o.auth.as_deref() == Some("oauth2");
    if !oauth2 && o.username.is_some() != declared {
        pr.push(&["username"], "username and a password go together");
    }
    if oauth2 && o.username.is_none() {
        pr.push(
            &["username"],
            "auth = \"oauth2\" needs the username (the mailbox the desk sends as)",
        );
    }
    let login = oauth::check_login(
        o.auth.as_deref(),
        o.oauth.as_deref(),
        password,
        declared,
        accounts,
        pr,
    );
    let ca_file = o.ca_file.as_ref().map(|f| base.join(f));
    if let Some(ca) = &ca_file
        && !ca.is_file()
    {
        pr.push(
            &["ca_file"],
            format!("{} is not a readable file", ca.display()),
        );
    }
    let timeout = bounded_duration(o.timeout.as_deref(), 30, ONE_SECOND, Duration::MAX)
        .unwrap_or_else(|d| {
            pr.push(&["timeout"], "expected a duration of at least 1s");
            d
        });
    SmtpSettings {
        host,
        port,
        tls,
        username: o.username.clone(),
        login,
        ca_file,
        timeout,
    }
}

/// `[agents]`.
fn check_agents(a: &RawAgents, pr: &mut Problems) -> Agents {
    let mut agents = Agents::default();
    for (i, addr) in a.addresses.iter().enumerate() {
        if addr.parse::<lettre::Address>().is_err() {
            pr.push(
                &["addresses", &i.to_string()],
                format!("{addr:?} is not an email address"),
            );
        }
        agents.addresses.insert(addr.trim().to_lowercase());
    }
    for (i, dom) in a.domains.iter().enumerate() {
        let dom = dom.trim().trim_start_matches('@').to_lowercase();
        if dom.is_empty() || dom.contains('@') || !dom.contains('.') {
            pr.push(
                &["domains", &i.to_string()],
                format!("{dom:?} is not a domain name"),
            );
        }
        agents.domains.push(dom);
    }
    agents
}

/// What escalation recipients are checked against, from other sections.
struct Known<'a> {
    priorities: &'a [String],
    /// None when `[sla]` has problems of its own: plans are not checked.
    sla: Option<&'a SlaModel>,
    /// The triage default language ("en" when `[triage]` has problems).
    default_language: &'a str,
    templates_dir: &'a Path,
}

/// `[escalation]`.
fn check_escalation(e: &RawEscalation, known: &Known, pr: &mut Problems) -> Escalation {
    let tick =
        bounded_duration(e.tick.as_deref(), 60, ONE_SECOND, Duration::MAX).unwrap_or_else(|d| {
            pr.push(&["tick"], "expected a duration of at least 1s, e.g. \"1m\"");
            d
        });
    let warn_share = match e.warn_at_percent.unwrap_or(80) {
        0 => None,
        p if p < 100 => Some(f64::from(p) / 100.0),
        p => {
            pr.push(
                &["warn_at_percent"],
                format!("{p} is not below 100 (0 turns warnings off)"),
            );
            None
        }
    };
    let second_after = match &e.second_level_after {
        None => None,
        Some(text) => {
            match parse_duration(text).and_then(|d| chrono::TimeDelta::from_std(d).ok()) {
                Some(d) => Some(d),
                None => {
                    pr.push(
                        &["second_level_after"],
                        "expected a duration such as \"4h\"",
                    );
                    None
                }
            }
        }
    };
    let mut recipients = Vec::new();
    for (i, r) in e.recipients.iter().enumerate() {
        let recipient = pr.within(&["recipients", &i.to_string()], |pr| {
            check_recipient(r, second_after.is_some(), known, pr)
        });
        recipients.extend(recipient);
    }
    Escalation {
        tick,
        warn_share,
        second_after,
        recipients,
    }
}

/// One `[[escalation.recipients]]`; None when its address is not one.
fn check_recipient(
    r: &RawRecipient,
    has_second_level: bool,
    known: &Known,
    pr: &mut Problems,
) -> Option<Recipient> {
    let address = match r.address.parse::<lettre::message::Mailbox>() {
        Ok(a) => Some(a),
        Err(err) => {
            pr.push(
                &["address"],
                format!("{:?} is not a mail address: {err}", r.address),
            );
            None
        }
    };
    let timezone = match r
        .timezone
        .as_deref()
        .unwrap_or("UTC")
        .parse::<chrono_tz::Tz>()
    {
        Ok(z) => z,
        Err(_) => {
            pr.push(
                &["timezone"],
                format!(
                    "unknown time zone {:?}",
                    r.timezone.as_deref().unwrap_or("")
                ),
            );
            chrono_tz::Tz::UTC
        }
    };
    for (j, plan) in r.plans.iter().enumerate() {
        if known.sla.is_some_and(|m| !m.has_plan(plan)) {
            pr.push(&["plans", &j.to_string()], format!("unknown plan {plan:?}"));
        }
    }
    for (j, prio) in r.priorities.iter().enumerate() {
        if !known.priorities.contains(prio) {
            pr.push(
                &["priorities", &j.to_string()],
                format!(
                    "unknown priority {prio:?}; known: {}",
                    known.priorities.join(", ")
                ),
            );
        }
    }
    let mut levels = Vec::new();
    for (j, l) in r.levels.iter().enumerate() {
        match Level::parse(l) {
            Some(l) => levels.push(l),
            None => pr.push(
                &["levels", &j.to_string()],
                format!("unknown level {l:?}; expected \"warning\", \"breach\" or \"second\""),
            ),
        }
    }
    if r.levels.is_empty() {
        levels = vec![Level::Warning, Level::Breach];
    }
    let hours = match &r.calendar {
        None => {
            if r.hold.is_some() {
                pr.push(
                    &["hold"],
                    "`hold` needs a `calendar` whose hours it waits for",
                );
            }
            None
        }
        Some(name) => match known.sla.map(|m| m.calendar(name)) {
            Some(Some(cal)) => {
                let mut hold = Vec::new();
                for (j, l) in r.hold.iter().flatten().enumerate() {
                    match Level::parse(l) {
                        Some(l) if levels.contains(&l) => hold.push(l),
                        Some(_) => pr.push(
                            &["hold", &j.to_string()],
                            format!("{l:?} is not one of this recipient's levels"),
                        ),
                        None => pr.push(
                            &["hold", &j.to_string()],
                            format!(
                                "unknown level {l:?}; expected \"warning\", \"breach\" or \"second\""
                            ),
                        ),
                    }
                }
                if r.hold.is_none() {
                    hold = levels.clone();
                }
                Some(RecipientHours {
                    name: name.clone(),
                    calendar: cal.clone(),
                    hold,
                })
            }
            Some(None) => {
                pr.push(
                    &["calendar"],
                    format!(
                        "unknown calendar {name:?}; known: {}",
                        known
                            .sla
                            .map(|m| m.calendar_names().collect::<Vec<_>>().join(", "))
                            .unwrap_or_default()
                    ),
                );
                None
            }
            // [sla] failed its own check: reported there.
            None => None,
        },
    };
    if levels.contains(&Level::Second) && !has_second_level {
        pr.push(
            &["levels"],
            "a \"second\" level needs escalation.second_level_after",
        );
    }
    let default_language = known.default_language;
    let language = r
        .language
        .clone()
        .unwrap_or_else(|| default_language.to_owned());
    let templates_dir = known.templates_dir;
    if templates_dir.is_dir() {
        let t = templates_dir.join(format!("escalation.{language}.txt"));
        let fallback = templates_dir.join(format!("escalation.{default_language}.txt"));
        if !t.is_file() && !fallback.is_file() {
            pr.push(
                &["language"],
                format!("no escalation template: {} is missing", fallback.display()),
            );
        }
    }
    Some(Recipient {
        address: address?,
        language,
        timezone,
        plans: r.plans.clone(),
        priorities: r.priorities.clone(),
        levels,
        hours,
    })
}

/// `[metrics]`: where the endpoint listens, None when off.
fn check_trust(t: &RawTrust, pr: &mut Problems) -> Trust {
    let require = |key: &str, v: &Option<String>, pr: &mut Problems| match v.as_deref() {
        None | Some("authenticated") => Require::Authenticated,
        Some("from") => Require::From,
        Some(other) => {
            pr.push(
                &[key],
                format!("{other:?} is not one of \"authenticated\", \"from\""),
            );
            Require::Authenticated
        }
    };
    let agents = require("agents", &t.agents, pr);
    let claims = require("claims", &t.claims, pr);
    let reply_to = match t.reply_to.as_deref() {
        None | Some("same-domain") => ReplyTo::SameDomain,
        Some("always") => ReplyTo::Always,
        Some("never") => ReplyTo::Never,
        Some(other) => {
            pr.push(
                &["reply_to"],
                format!("{other:?} is not one of \"same-domain\", \"always\", \"never\""),
            );
            ReplyTo::SameDomain
        }
    };
    let mut authserv_id = Vec::new();
    for (i, id) in t.authserv_id.iter().enumerate() {
        let id = id.trim().to_ascii_lowercase();
        if id == EXCHANGE_ONLINE {
            // Exchange Online writes its header without an authserv-id.
            authserv_id.push(String::new());
            continue;
        }
        if id.is_empty() || id.contains(char::is_whitespace) || id.contains(';') {
            pr.push(
                &["authserv_id", &i.to_string()],
                format!("{id:?} is not an authserv-id (a host name such as \"mx.example.com\")"),
            );
        }
        authserv_id.push(id);
    }
    let dns = t
        .dns
        .as_ref()
        .and_then(|d| match d.parse::<std::net::SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                pr.push(
                    &["dns"],
                    format!("{d:?} is not an address:port such as \"127.0.0.1:53\""),
                );
                None
            }
        });
    let positive = |key: &str, v: Option<u32>, default: u32, pr: &mut Problems| match v {
        Some(0) => {
            pr.push(&[key], "expected at least 1 (acknowledgements per hour)");
            default
        }
        Some(n) => n,
        None => default,
    };
    let ack_limit_all_per_hour = positive(
        "ack_limit_all_per_hour",
        t.ack_limit_all_per_hour,
        DEFAULT_ACK_LIMIT_PER_HOUR,
        pr,
    );
    let ack_limit_domain_per_hour = positive(
        "ack_limit_domain_per_hour",
        t.ack_limit_domain_per_hour,
        DEFAULT_ACK_LIMIT_PER_DOMAIN,
        pr,
    );
    let public_providers = match &t.public_providers {
        Some(list) => {
            let mut set = std::collections::HashSet::new();
            for (i, d) in list.iter().enumerate() {
                let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
                if d.is_empty() || d.contains('@') || !d.contains('.') {
                    pr.push(
                        &["public_providers", &i.to_string()],
                        format!("{d:?} is not a domain name"),
                    );
                }
                set.insert(d);
            }
            set
        }
        None => PUBLIC_PROVIDERS.iter().map(|d| d.to_string()).collect(),
    };
    Trust {
        authserv_id,
        verify_dkim: t.verify_dkim.unwrap_or(false),
        dns,
        agents,
        claims,
        reply_to,
        ack_limit_all_per_hour,
        ack_limit_domain_per_hour,
        public_providers,
    }
}

fn check_metrics(m: &RawMetrics, pr: &mut Problems) -> Option<std::net::SocketAddr> {
    let a = m.listen.as_ref()?;
    match a.parse::<std::net::SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            pr.push(
                &["listen"],
                format!("{a:?} is not an address:port such as \"127.0.0.1:9187\""),
            );
            None
        }
    }
}

/// `[[digest]]`: names unique, addresses, a language with a template, a
/// zone, the schedule.
fn check_digests(
    raw: &[RawDigest],
    known: &Known,
    desk_zone: Option<chrono_tz::Tz>,
    pr: &mut Problems,
) -> Vec<Digest> {
    use crate::core::digest::{Every, Schedule};
    let mut out = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, d) in raw.iter().enumerate() {
        let idx = i.to_string();
        let before = pr.len();
        pr.within(&["digest", &idx], |pr| {
            if d.name.is_empty() || d.name.chars().any(char::is_whitespace) {
                pr.push(&["name"], format!("{:?} is not a valid name (non-empty, no spaces)", d.name));
            } else if !names.insert(d.name.as_str()) {
                pr.push(&["name"], format!("{:?} names two digests", d.name));
            }
            if d.to.is_empty() {
                pr.push(&["to"], "no recipient");
            }
            let mut to = Vec::new();
            for (j, a) in d.to.iter().enumerate() {
                match a.parse::<lettre::message::Mailbox>() {
                    Ok(m) => to.push(m),
                    Err(e) => pr.push(
                        &["to", &j.to_string()],
                        format!("{a:?} is not a mail address: {e}"),
                    ),
                }
            }
            let language = d
                .language
                .clone()
                .unwrap_or_else(|| known.default_language.to_owned());
            let template = known.templates_dir.join(format!("digest.{language}.txt"));
            if known.templates_dir.is_dir() && !template.is_file() {
                pr.push(
                    &["language"],
                    format!(
                        "no digest template for the language {language:?}: {} is missing (shipped: en, fr)",
                        template.display()
                    ),
                );
            }
            let zone = match d.timezone.as_deref() {
                None => desk_zone.unwrap_or(chrono_tz::Tz::UTC),
                Some(z) => z.parse().unwrap_or_else(|_| {
                    pr.push(&["timezone"], format!("unknown time zone {z:?}"));
                    chrono_tz::Tz::UTC
                }),
            };
            let weekday = match d.weekday.as_deref() {
                None => chrono::Weekday::Mon,
                Some(w) => w.parse().unwrap_or_else(|_| {
                    pr.push(&["weekday"], format!("{w:?} is not a day of the week"));
                    chrono::Weekday::Mon
                }),
            };
            let every = match d.every.as_str() {
                "day" => {
                    if d.weekday.is_some() {
                        pr.push(&["weekday"], "a daily digest has no weekday");
                    }
                    Every::Day
                }
                "week" => Every::Week(weekday),
                other => {
                    pr.push(&["every"], format!("unknown value {other:?}; expected \"day\" or \"week\""));
                    Every::Day
                }
            };
            let hour = d.hour.unwrap_or(8);
            if hour > 23 {
                pr.push(&["hour"], format!("{hour} is not an hour of the day (0-23)"));
            }
            if pr.len() == before {
                out.push(Digest {
                    name: d.name.clone(),
                    to,
                    language,
                    schedule: Schedule { every, hour, zone },
                });
            }
        });
    }
    out
}

fn check_ids(ids: &[String], key: &str, pr: &mut Problems) {
    let mut seen = std::collections::HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        let idx = i.to_string();
        if id.is_empty() || id.chars().any(|c| c.is_whitespace()) {
            pr.push(
                &[key, &idx],
                format!("{id:?} is not a valid id (non-empty, no spaces)"),
            );
        }
        if !seen.insert(id) {
            pr.push(&[key, &idx], format!("{id:?} is listed twice"));
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

type Accounts = std::collections::BTreeMap<String, std::sync::Arc<OAuthAccount>>;

/// Reads a secret from, in order: a systemd credential, a file, the inline value.
fn read_secret(
    base: &Path,
    s: &RawSecret,
    secrets: Secrets,
) -> Result<Option<Secret>, (&'static str, String)> {
    if secrets == Secrets::Skip {
        return Ok(s.is_declared().then(|| Secret(String::new())));
    }
    if let Some(name) = &s.password_credential {
        let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
            return Err((
                "password_credential",
                "$CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit, or password_file)".into(),
            ));
        };
        let path = Path::new(&dir).join(name);
        return read_secret_file(&path)
            .map(Some)
            .map_err(|m| ("password_credential", m));
    }
    if let Some(file) = &s.password_file {
        let path = base.join(file);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(&path)
                && meta.permissions().mode() & 0o004 != 0
            {
                return Err((
                    "password_file",
                    format!("{} is world-readable; chmod o-r it", path.display()),
                ));
            }
        }
        return read_secret_file(&path)
            .map(Some)
            .map_err(|m| ("password_file", m));
    }
    Ok(s.password.clone().map(Secret))
}

fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let s = s.trim_end_matches(['\r', '\n']).to_string();
    if s.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret(s))
}

const ONE_SECOND: Duration = Duration::from_secs(1);

/// A duration key: `value` (absent: `default_secs`), from `min` to `max`.
/// Err carries the default, for checking to go on once the caller has
/// recorded the problem.
fn bounded_duration(
    value: Option<&str>,
    default_secs: u64,
    min: Duration,
    max: Duration,
) -> Result<Duration, Duration> {
    let default = Duration::from_secs(default_secs);
    match value.map_or(Some(default), parse_duration) {
        Some(d) if d >= min && d <= max => Ok(d),
        _ => Err(default),
    }
}

/// A duration in the config's one syntax ([`crate::core::duration`]):
/// "30s", "5m", "1h30m", "250ms", "2 hours", "7d". Each key checks its
/// own range.
pub fn parse_duration(s: &str) -> Option<Duration> {
    duration::parse(s).ok()
}

// ---------------------------------------------------------------- locating

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// The key written at or before `offset` on its line, for serde errors.
fn key_at(src: &str, offset: usize) -> String {
    let offset = offset.min(src.len());
    let start = src[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let end = src[offset..]
        .find('\n')
        .map(|i| offset + i)
        .unwrap_or(src.len());
    let line = &src[start..end];
    match line.split_once('=') {
        Some((k, _)) => k.trim().to_string(),
        None => line.trim().trim_matches(['[', ']']).to_string(),
    }
}

/// Finds the span of a checked problem's key path in the document.
fn locate(src: &str, p: Problem) -> Located {
    let key = p.path.join(".");
    let (line, column) = span_of(src, &p.path)
        .map(|off| line_col(src, off))
        .unwrap_or((0, 0));
    Located {
        line,
        column,
        key,
        message: p.message,
    }
}

fn span_of(src: &str, path: &[String]) -> Option<usize> {
    use toml_edit::{ImDocument, Item, TableLike, Value};
    enum Node<'a> {
        Table(&'a dyn TableLike),
        Item(&'a Item),
        Value(&'a Value),
    }
    let doc = ImDocument::parse(src).ok()?;
    let mut best: Option<usize> = None;
    let mut node = Node::Table(doc.as_table());
    for seg in path {
        let table: Option<&dyn TableLike> = match &node {
            Node::Table(t) => Some(*t),
            Node::Item(i) => i.as_table_like(),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
        };
        let next = if let Some(t) = table {
            let Some((k, v)) = t.get_key_value(seg) else {
                break;
            };
            if let Some(s) = k.span() {
                best = Some(s.start);
            }
            Node::Item(v)
        } else {
            let Ok(i) = seg.parse::<usize>() else { break };
            match &node {
                Node::Item(Item::ArrayOfTables(a)) => match a.get(i) {
                    Some(t) => {
                        if let Some(s) = t.span() {
                            best = Some(s.start);
                        }
                        Node::Table(t)
                    }
                    None => break,
                },
                Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)) => {
                    match a.get(i) {
                        Some(v) => {
                            if let Some(s) = v.span() {
                                best = Some(s.start);
                            }
                            Node::Value(v)
                        }
                        None => break,
                    }
                }
                _ => break,
            }
        };
        node = next;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn durations_in_the_sla_syntax_too() {
        // The syntax SLA targets always had now works for every key.
        assert_eq!(parse_duration("2 hours"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("15 Mins"), Some(Duration::from_secs(900)));
        assert_eq!(
            parse_duration("1 hour 5 minutes"),
            Some(Duration::from_secs(3900))
        );
        assert_eq!(parse_duration("30 secs"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2 weeks"), None);
        let tick = bounded_duration(Some("2 minutes"), 60, ONE_SECOND, Duration::MAX);
        assert_eq!(tick, Ok(Duration::from_secs(120)));
    }

    #[test]
    fn bounded_durations() {
        let max = Duration::from_secs(29 * 60);
        let b = |v| bounded_duration(v, 1500, ONE_SECOND, max);
        assert_eq!(b(None), Ok(Duration::from_secs(1500)));
        assert_eq!(b(Some("3s")), Ok(Duration::from_secs(3)));
        assert_eq!(b(Some("29m")), Ok(max));
        assert_eq!(b(Some("30m")), Err(Duration::from_secs(1500)));
        assert_eq!(b(Some("500ms")), Err(Duration::from_secs(1500)));
        assert_eq!(b(Some("soon")), Err(Duration::from_secs(1500)));
    }

    /// The SLA and triage sections of an example, which check cleanly.
    fn policy_parts() -> String {
        let mut t: toml::Table =
            toml::from_str(include_str!("../../config/examples/zmanda.toml")).unwrap();
        t.retain(|k, _| matches!(k, "priorities" | "categories" | "sla" | "triage"));
        toml::to_string(&t).unwrap()
    }

    /// Every problem of `src`, as the CLI prints them but with lines
    /// counted from the `[desk]` line.
    fn located(src: &str) -> Vec<String> {
        let desk = src.lines().position(|l| l == "[desk]").unwrap() + 1;
        let path = Path::new("/nonexistent/desk.toml");
        let err = parse_with(path, src, Secrets::Read).unwrap_err();
        err.problems
            .iter()
            .map(|p| {
                let line = p.line as i64 - desk as i64;
                format!("+{line}:{}: {}: {}", p.column, p.key, p.message)
            })
            .collect()
    }

    /// A calendar's holidays from an .ics file next to the config; a bad
    /// file is named with its line, under the key that names it.
    #[test]
    fn holidays_from_an_ics_file() {
        let dir = tempfile::tempdir().unwrap();
        let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let ics = |body: &str| {
            std::fs::write(
                dir.path().join("holidays.ics"),
                format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{body}END:VCALENDAR\r\n"),
            )
            .unwrap()
        };
        let src = format!(
            r#"{parts}
[sla.calendars.ics]
timezone = "UTC"
hours = {{ mon-fri = "09:00-17:00" }}
holidays_ics = "holidays.ics"

[sla.plans.icsplan]
calendar = "ics"
targets = [{{ first_response = {{ business_days = 1 }} }}]

[desk]
name = "Desk"
address = "support@desk.example"
state_dir = "state"
templates_dir = "{templates}"

[outbox]
kind = "directory"
path = "out"
"#,
            parts = policy_parts(),
        );
        let path = dir.path().join("desk.toml");
        ics("BEGIN:VEVENT\r\nUID:a\r\nDTSTART;VALUE=DATE:20261120\r\nEND:VEVENT\r\n");
        let cfg = parse_with(&path, &src, Secrets::Read).unwrap();
        let due = cfg
            .sla
            .due(&crate::core::sla::DueQuery {
                plan: "icsplan",
                priority: None,
                category: None,
                timezone: None,
                received: "2026-11-19T10:00:00Z".parse().unwrap(),
            })
            .unwrap();
        // Friday 20 November is the file's holiday.
        assert_eq!(
            due.first_response,
            Some("2026-11-23T10:00:00Z".parse().unwrap())
        );

        ics("BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20261120T090000Z\r\nEND:VEVENT\r\n");
        let err = parse_with(&path, &src, Secrets::Read).unwrap_err();
        let p = err
            .problems
            .iter()
            .find(|p| p.key == "sla.calendars.ics.holidays_ics")
            .expect("the key is named");
        let at = src
            .lines()
            .position(|l| l.starts_with("holidays_ics"))
            .unwrap()
            + 1;
        assert_eq!(p.line, at);
        let shown = dir.path().join("holidays.ics").display().to_string();
        assert!(
            p.message
                .starts_with(&format!("{shown} line 5: DTSTART is a date and time")),
            "{}",
            p.message
        );
        std::fs::remove_file(dir.path().join("holidays.ics")).unwrap();
        let err = parse_with(&path, &src, Secrets::Read).unwrap_err();
        assert!(
            err.problems
                .iter()
                .any(|p| p.key == "sla.calendars.ics.holidays_ics"
                    && p.message.contains("cannot read it")),
            "{err}"
        );
    }

    #[test]
    fn every_section_reports_its_problems_in_place() {
        let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let src = format!(
            r#"{parts}
[desk]
name = "Desk"
address = "not an address"
reference_prefix = "S-P"
state_dir = "state"
templates_dir = "{templates}"
log_level = "[["
log_format = "xml"
admin_address = "nope"
fetch_alert_after = "0s"
reopen_window = "soon"

[[mailboxes]]
name = "a"
kind = "imap"
tls = "ssl"
ca_file = "ca.pem"
poll_interval = "0s"
timeout = "soon"
idle_timeout = "30m"
path = "x"

[[mailboxes]]
name = "a"
kind = "maildir"
path = "md"
host = "h"
timeout = "1m"

[[mailboxes]]
name = ""
kind = "pop3"

[outbox]
kind = "smtp"
host = "mail.example"
tls = "none"
username = "u"
ca_file = "ca.pem"
timeout = "0s"
max_attempts = 0

[agents]
addresses = ["not-an-address"]
domains = ["nodot"]

[escalation]
tick = "0s"
warn_at_percent = 100
second_level_after = "later"
[[escalation.recipients]]
address = "bad"
timezone = "Mars/Base"
plans = ["gold"]
priorities = ["P9"]
levels = ["loud", "second"]
[[escalation.recipients]]
address = "b@example.com"
calendar = "nights"
[[escalation.recipients]]
address = "c@example.com"
hold = ["warning"]
[[escalation.recipients]]
address = "d@example.com"
calendar = "office"
hold = ["second"]

[metrics]
listen = "localhost"
"#,
            parts = policy_parts(),
        );
        let want = [
            r#"+2:1: desk.address: not an email address (Invalid input); expected e.g. "Support <support@example.com>""#,
            r#"+3:1: desk.reference_prefix: expected letters and digits only, e.g. "SUP""#,
            r#"+6:1: desk.log_level: "[[" is not a log filter; expected e.g. "info" or "supportdesk=debug""#,
            r#"+7:1: desk.log_format: unknown log format "xml"; expected "text" or "json""#,
            r#"+8:1: desk.admin_address: "nope" is not a mail address: Invalid input"#,
            r#"+9:1: desk.fetch_alert_after: expected a duration such as "15m""#,
            r#"+10:1: desk.reopen_window: expected a duration such as "7d" or "48h""#,
            r#"+12:1: mailboxes.0.host: an imap mailbox needs a host"#,
            r#"+12:1: mailboxes.0.username: an imap mailbox needs a username"#,
            r#"+12:1: mailboxes.0.password_file: an imap mailbox needs password_file, password_credential or password (or auth = "oauth2")"#,
            r#"+15:1: mailboxes.0.tls: unknown tls mode "ssl"; expected "implicit" or "starttls""#,
            r#"+16:1: mailboxes.0.ca_file: /nonexistent/ca.pem is not a readable file"#,
            r#"+17:1: mailboxes.0.poll_interval: expected a duration of at least 1s, e.g. "30s", "5m""#,
            r#"+18:1: mailboxes.0.timeout: expected a duration of at least 1s, e.g. "2m""#,
            r#"+19:1: mailboxes.0.idle_timeout: expected a duration from 1s to 29m (RFC 2177), e.g. "25m""#,
            r#"+20:1: mailboxes.0.path: `path` is for maildir mailboxes"#,
            r#"+23:1: mailboxes.1.name: mailbox name "a" is used twice"#,
            r#"+25:1: mailboxes.1.path: /nonexistent/md is not a Maildir (no new/ and cur/)"#,
            r#"+26:1: mailboxes.1.host: not used by a maildir mailbox"#,
            r#"+27:1: mailboxes.1.timeout: not used by a maildir mailbox"#,
            r#"+30:1: mailboxes.2.name: expected a short non-empty name"#,
            r#"+31:1: mailboxes.2.kind: unknown mailbox kind "pop3"; expected "imap" or "maildir""#,
            r#"+36:1: outbox.tls: tls = "none" is only allowed for a loopback host"#,
            r#"+37:1: outbox.username: username and a password go together"#,
            r#"+38:1: outbox.ca_file: /nonexistent/ca.pem is not a readable file"#,
            r#"+39:1: outbox.timeout: expected a duration of at least 1s"#,
            r#"+40:1: outbox.max_attempts: expected at least 1"#,
            r#"+43:14: agents.addresses.0: "not-an-address" is not an email address"#,
            r#"+44:12: agents.domains.0: "nodot" is not a domain name"#,
            r#"+47:1: escalation.tick: expected a duration of at least 1s, e.g. "1m""#,
            r#"+48:1: escalation.warn_at_percent: 100 is not below 100 (0 turns warnings off)"#,
            r#"+49:1: escalation.second_level_after: expected a duration such as "4h""#,
            r#"+51:1: escalation.recipients.0.address: "bad" is not a mail address: Invalid input"#,
            r#"+52:1: escalation.recipients.0.timezone: unknown time zone "Mars/Base""#,
            r#"+53:10: escalation.recipients.0.plans.0: unknown plan "gold""#,
            r#"+54:15: escalation.recipients.0.priorities.0: unknown priority "P9"; known: P1, P2, P3, P4"#,
            r#"+55:1: escalation.recipients.0.levels: a "second" level needs escalation.second_level_after"#,
            r#"+55:11: escalation.recipients.0.levels.0: unknown level "loud"; expected "warning", "breach" or "second""#,
            r#"+58:1: escalation.recipients.1.calendar: unknown calendar "nights"; known: office"#,
            r#"+61:1: escalation.recipients.2.hold: `hold` needs a `calendar` whose hours it waits for"#,
            r#"+65:9: escalation.recipients.3.hold.0: "second" is not one of this recipient's levels"#,
            r#"+68:1: metrics.listen: "localhost" is not an address:port such as "127.0.0.1:9187""#,
        ];
        assert_eq!(located(&src), want);
    }

    #[test]
    fn a_customer_language_must_be_a_triage_language() {
        let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let src = format!(
            r#"{parts}
[desk]
name = "Desk"
address = "support@desk.example"
state_dir = "state"
templates_dir = "{templates}"

[outbox]
kind = "directory"
path = "out"

[sla.customers.newco]
domains = ["newco.example"]
plan = "{plan}"
language = "sv"

[sla.customers.oldco]
domains = ["oldco.example"]
plan = "{plan}"
language = "de"
"#,
            parts = policy_parts(),
            plan = "standard",
        );
        assert_eq!(
            located(&src),
            [
                r#"+13:1: sla.customers.newco.language: "sv" is not one of `triage.languages` (fr, en, de, es, it, nl, pt)"#
            ]
        );
    }

    #[test]
    fn max_fetch_bytes_is_an_imap_key_of_at_least_one_mib() {
        let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let md = tempfile::tempdir().unwrap();
        for sub in ["new", "cur"] {
            std::fs::create_dir(md.path().join(sub)).unwrap();
        }
        let src = format!(
            r#"{parts}
[desk]
name = "Desk"
address = "support@desk.example"
state_dir = "state"
templates_dir = "{templates}"

[[mailboxes]]
name = "small"
kind = "imap"
host = "imap.example"
username = "u"
password = "p"
max_fetch_bytes = 1048575

[[mailboxes]]
name = "md"
kind = "maildir"
path = "{md}"
max_fetch_bytes = 1048576

[outbox]
kind = "directory"
path = "out"
"#,
            parts = policy_parts(),
            md = md.path().display(),
        );
        assert_eq!(
            located(&src),
            [
                "+12:1: mailboxes.0.max_fetch_bytes: expected at least 1048576 (1 MiB), e.g. 1073741824 (1 GiB)",
                "+18:1: mailboxes.1.max_fetch_bytes: not used by a maildir mailbox",
            ]
        );
        let fine = src.replace("1048575", "1048576").replace(
            "path = \"{md}\"\nmax_fetch_bytes = 1048576\n"
                .replace("{md}", &md.path().display().to_string())
                .as_str(),
            &format!("path = \"{}\"\n", md.path().display()),
        );
        let cfg = parse_with(Path::new("/nonexistent/desk.toml"), &fine, Secrets::Read).unwrap();
        let MailboxKind::Imap(s) = &cfg.mailboxes[0].kind else {
            panic!("imap expected")
        };
        assert_eq!(s.max_fetch_bytes, 1 << 20);
        let dflt = fine.replace("max_fetch_bytes = 1048576\n", "");
        let cfg = parse_with(Path::new("/nonexistent/desk.toml"), &dflt, Secrets::Read).unwrap();
        let MailboxKind::Imap(s) = &cfg.mailboxes[0].kind else {
            panic!("imap expected")
        };
        assert_eq!(s.max_fetch_bytes, DEFAULT_MAX_FETCH_BYTES);
    }

    #[test]
    fn oauth_logins_are_checked_where_they_are_written() {
        let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let src = format!(
            r#"{parts}
[desk]
name = "Desk"
address = "support@desk.example"
state_dir = "state"
templates_dir = "{templates}"

[[mailboxes]]
name = "a"
kind = "imap"
host = "imap.example"
username = "u"
auth = "oauth2"
oauth = "nope"

[[mailboxes]]
name = "b"
kind = "imap"
host = "imap.example"
username = "u"
auth = "oauth2"
password = "p"
oauth = "m365"

[outbox]
kind = "smtp"
host = "smtp.example"
auth = "oauth2"
oauth = "m365"

[oauth.m365]
provider = "microsoft"
client_id = "c"

[oauth.idp]
provider = "generic"
client_id = "c"
token_url = "http://idp.example/token"
mechanism = "plain"
"#,
            parts = policy_parts(),
        );
        let want = [
            r#"+12:1: mailboxes.0.oauth: no [oauth.nope] account (defined: idp, m365)"#,
            r#"+19:1: mailboxes.1.auth: auth = "oauth2" takes no password (the token comes from `supportdesk auth login`)"#,
            r#"+23:2: outbox.username: auth = "oauth2" needs the username (the mailbox the desk sends as)"#,
            r#"+29:8: oauth.m365.tenant: the microsoft provider needs the tenant (directory id or domain, or "organizations")"#,
            r#"+33:8: oauth.idp.device_authorization_url: the generic provider needs device_authorization_url"#,
            r#"+33:8: oauth.idp.scopes: the generic provider needs scopes"#,
            r#"+36:1: oauth.idp.token_url: "http://idp.example/token" is not an https:// URL (tokens never travel in clear)"#,
            r#"+37:1: oauth.idp.mechanism: unknown mechanism "plain"; expected "xoauth2" or "oauthbearer""#,
        ];
        assert_eq!(located(&src), want);
        let fine = src
            .replace(r#"oauth = "nope""#, r#"oauth = "m365""#)
            .replace(
                "auth = \"oauth2\"\npassword = \"p\"\noauth = \"m365\"",
                "password = \"p\"",
            )
            .replace(
                "host = \"smtp.example\"\n",
                "host = \"smtp.example\"\nusername = \"support@desk.example\"\n",
            )
            .replace(
                "provider = \"microsoft\"\n",
                "provider = \"microsoft\"\ntenant = \"desk.example\"\n",
            );
        let fine = &fine[..fine.find("[oauth.idp]").unwrap()];
        let cfg = parse_with(Path::new("/nonexistent/desk.toml"), fine, Secrets::Read).unwrap();
        let MailboxKind::Imap(a) = &cfg.mailboxes[0].kind else {
            panic!("imap expected")
        };
        let Login::OAuth2(account) = &a.login else {
            panic!("oauth2 expected")
        };
        assert_eq!(
            account.token_url,
            "https://login.microsoftonline.com/desk.example/oauth2/v2.0/token"
        );
        assert!(account.scopes.iter().any(|s| s == "offline_access"));
        assert_eq!(
            account.token_file,
            Path::new("/nonexistent/state/oauth/m365.json")
        );
        let MailboxKind::Imap(b) = &cfg.mailboxes[1].kind else {
            panic!("imap expected")
        };
        assert!(matches!(b.login, Login::Password(_)));
        let OutboxKind::Smtp(o) = &cfg.outbox.kind else {
            panic!("smtp expected")
        };
        // One account, one token file, shared by the mailbox and the outbox.
        assert!(matches!(&o.login, Some(Login::OAuth2(x)) if std::sync::Arc::ptr_eq(x, account)));
    }

    #[test]
    fn templates_are_checked_where_they_are_used() {
        let empty = tempfile::tempdir().unwrap();
        let config = |templates: &str| {
            format!(
                r#"{parts}
[desk]
name = "Desk"
address = "desk@example.com"
state_dir = "state"
templates_dir = "{templates}"

[outbox]
kind = "directory"
path = "out"

[[escalation.recipients]]
address = "boss@example.com"
language = "de"
"#,
                parts = policy_parts(),
            )
        };
        let missing = located(&config("/nonexistent/tpl"));
        assert_eq!(
            missing,
            ["+4:1: desk.templates_dir: /nonexistent/tpl is not a directory"]
        );
        let dir = empty.path().display().to_string();
        let empty = located(&config(&dir));
        assert_eq!(
            empty,
            [
                format!(
                    "+4:1: desk.templates_dir: no acknowledgement template for the default language \"fr\": {dir}/ack.fr.txt is missing"
                ),
                format!(
                    "+12:1: escalation.recipients.0.language: no escalation template: {dir}/escalation.fr.txt is missing"
                ),
            ]
        );
    }

    #[test]
    fn max_queue_lifetime_defaults_to_five_days_and_is_checked() {
        let config = |line: &str| {
            format!(
                "{parts}\n[desk]\nname = \"Desk\"\naddress = \"desk@example.com\"\nstate_dir = \"state\"\ntemplates_dir = \"{root}/templates\"\n\n[outbox]\nkind = \"directory\"\npath = \"out\"\n{line}\n",
                parts = policy_parts(),
                root = env!("CARGO_MANIFEST_DIR"),
            )
        };
        let path = Path::new("/nonexistent/desk.toml");
        let lifetime = |line: &str| {
            parse_with(path, &config(line), Secrets::Read)
                .unwrap()
                .outbox
                .max_queue_lifetime
        };
        assert_eq!(lifetime(""), Duration::from_secs(5 * 86_400));
        assert_eq!(
            lifetime("max_queue_lifetime = \"2 hours\""),
            Duration::from_secs(7200)
        );
        for bad in ["\"30s\"", "\"soon\""] {
            assert_eq!(
                located(&config(&format!("max_queue_lifetime = {bad}"))),
                [
                    "+9:1: outbox.max_queue_lifetime: expected a duration of at least 1m, e.g. \"5d\""
                ]
            );
        }
    }

    #[test]
    fn line_and_column() {
        let src = "a = 1\n[desk]\nname = 2\n";
        assert_eq!(line_col(src, src.find("name").unwrap()), (3, 1));
        assert_eq!(key_at(src, src.find('2').unwrap()), "name");
        let off = span_of(src, &["desk".into(), "name".into()]).unwrap();
        assert_eq!(line_col(src, off), (3, 1));
    }
}
