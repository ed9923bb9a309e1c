//! Wiring: config -> store -> one task per mailbox + the outbox; one
//! shutdown token fanned out to every task (the mini-redis shape).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, MailboxKind};
use crate::ingest::{self, Action, Incoming, Outcome};
use crate::render::Renderer;
use crate::store::Store;

/// What every task shares.
#[derive(Clone)]
pub struct Ctx {
    pub config: Arc<Config>,
    pub store: Store,
    pub renderer: Arc<Renderer>,
    /// Wakes the outbox when something was queued; repeated wake-ups merge.
    pub outbox_wake: Arc<Notify>,
    /// The last SMTP connection error, so it is logged once per change.
    pub smtp_error: Arc<std::sync::Mutex<Option<String>>>,
    /// Wakes the escalation sweeper after an ingestion changed something.
    pub sweep_wake: Arc<Notify>,
    pub shutdown: CancellationToken,
    /// Mailboxes that finished their first attempt (ok or not): readiness.
    first_pass: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    first_pass_wake: Arc<Notify>,
    /// When this process started: the baseline of the fetch alert for a
    /// mailbox that has not had a good pass yet.
    pub started: chrono::DateTime<Utc>,
}

impl Ctx {
    pub fn new(config: Config) -> Result<Ctx> {
        std::fs::create_dir_all(&config.desk.state_dir).with_context(|| {
            format!(
                "Creating the state directory {}",
                config.desk.state_dir.display()
            )
        })?;
        let db = config.desk.state_dir.join("supportdesk.db");
        let store = Store::open(&db)?;
        // Customer mail lives here: the owner only, whatever the umask.
        private(&config.desk.state_dir, 0o700)?;
        for f in ["supportdesk.db", "supportdesk.db-wal", "supportdesk.db-shm"] {
            let p = config.desk.state_dir.join(f);
            if p.exists() {
                private(&p, 0o600)?;
            }
        }
        store.call_blocking(|conn| crate::mail::outbox::recover_interrupted(conn))?;
        let renderer =
            Renderer::load(&config.desk.templates_dir, config.triage.default_language())?;
        Ok(Ctx {
            config: Arc::new(config),
            store,
            renderer: Arc::new(renderer),
            outbox_wake: Arc::new(Notify::new()),
            sweep_wake: Arc::new(Notify::new()),
            smtp_error: Arc::default(),
            shutdown: CancellationToken::new(),
            first_pass: Arc::default(),
            first_pass_wake: Arc::new(Notify::new()),
            started: Utc::now(),
        })
    }

    /// Records how a pass over `mailbox` went (for `status` and the fetch alert).
    pub async fn record_health(&self, mailbox: &str, error: Option<String>) {
        let name = mailbox.to_string();
        let r = self
            .store
            .call(move |conn| crate::health::record(conn, &name, error.as_deref(), Utc::now()))
            .await;
        if let Err(e) = r {
            tracing::warn!(mailbox, "recording mailbox health: {e:#}");
        }
    }

    /// Called by a mailbox task after its first connection attempt and pass.
    pub fn first_pass_done(&self, mailbox: &str) {
        let mut done = self.first_pass.lock().unwrap_or_else(|e| e.into_inner());
        if done.insert(mailbox.to_string()) {
            self.first_pass_wake.notify_one();
        }
    }

    fn first_pass_count(&self) -> usize {
        self.first_pass
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Prepares (CPU, in the caller's task) and commits (store thread) one message.
    pub async fn ingest(&self, incoming: Incoming) -> Result<Outcome> {
        let mut v = self.ingest_batch(vec![incoming]).await?;
        v.pop().context("An ingested batch of one gave no outcome")
    }

    /// Prepares a batch (CPU, in the caller's task) and commits it in one
    /// transaction on the store thread, one savepoint per message. A
    /// message whose storing fails is set aside as poison (raw bytes and
    /// error kept) and the rest go on. If even that fails (disk full,
    /// database locked), nothing of the batch is committed, the error is
    /// returned, and the source fetches the batch again later.
    pub async fn ingest_batch(&self, batch: Vec<Incoming>) -> Result<Vec<Outcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let now = Utc::now();
        let prepared: Arc<Vec<ingest::Prepared>> = Arc::new(
            batch
                .into_iter()
                .map(|i| ingest::prepare_guarded(&self.config, i, now))
                .collect(),
        );
        let (config, renderer) = (self.config.clone(), self.renderer.clone());
        let p = prepared.clone();
        let results = self
            .store
            .call(move |conn| ingest::commit_batch(conn, &config, &renderer, &p, now))
            .await
            .context("Committing a batch of messages")?;
        let mut outcomes = Vec::with_capacity(results.len());
        for (i, outcome) in results.into_iter().enumerate() {
            let inc = &prepared[i].incoming;
            if outcome.action != Action::AlreadyDone {
                tracing::info!(
                    mailbox = %inc.mailbox,
                    key = %inc.source_key,
                    ticket = outcome.ticket.as_deref().unwrap_or("-"),
                    action = outcome.action.as_str(),
                    ack = outcome.queued_ack,
                    "ingested"
                );
            }
            outcomes.push(outcome);
        }
        if outcomes.iter().any(|o| o.queued_ack) {
            self.outbox_wake.notify_one();
        }
        if outcomes.iter().any(|o| o.action != Action::AlreadyDone) {
            self.sweep_wake.notify_one();
        }
        fault_point("after_commit");
        Ok(outcomes)
    }
}

/// Restricts a path to its owner (`mode` 0700 for directories, 0600 for files).
pub fn private(path: &std::path::Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("Restricting {} to its owner", path.display()))
}

/// Test hook: `SUPPORTDESK_FAULT=after_commit` aborts the process right
/// after a commit and before the source is marked, as a kill would.
pub fn fault_point(name: &str) {
    if let Ok(f) = std::env::var("SUPPORTDESK_FAULT")
        && f == name
    {
        eprintln!("supportdesk: fault injection: aborting at {name}");
        std::process::abort();
    }
}

#[derive(Debug, Default)]
pub struct PassSummary {
    pub new_tickets: usize,
    pub other: usize,
    pub already_done: usize,
    pub sent: usize,
    pub failed: usize,
}

/// One escalation sweep on the store thread; wakes the outbox when it
/// queued notices.
pub async fn sweep(ctx: &Ctx) -> Result<usize> {
    let (config, renderer) = (ctx.config.clone(), ctx.renderer.clone());
    let n = ctx
        .store
        .call(move |conn| crate::escalate::sweep(conn, &config, &renderer, Utc::now()))
        .await?;
    let (config, started) = (ctx.config.clone(), ctx.started);
    let alerts = ctx
        .store
        .call(move |conn| crate::health::check(conn, &config, started, Utc::now()))
        .await?;
    if n > 0 {
        tracing::info!(notices = n, "escalations queued");
    }
    if n + alerts > 0 {
        ctx.outbox_wake.notify_one();
    }
    Ok(n)
}

/// `run --once`: one pass over every mailbox, then deliver the outbox.
pub async fn run_once(ctx: &Ctx) -> Result<PassSummary> {
    let mut summary = PassSummary::default();
    let mut tasks = tokio::task::JoinSet::new();
    for mb in ctx.config.mailboxes.clone() {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let r = match &mb.kind {
                MailboxKind::Imap(s) => crate::mail::imap::pass_once(&ctx, &mb.name, s).await,
                MailboxKind::Maildir { path, mark } => {
                    crate::mail::maildir::pass(&ctx, &mb.name, path, *mark).await
                }
            };
            (mb.name, r)
        });
    }
    let mut first_err = None;
    while let Some(joined) = tasks.join_next().await {
        let (name, r) = joined.context("A mailbox task panicked")?;
        match r {
            Ok(outcomes) => {
                for o in outcomes {
                    match o.action {
                        Action::NewTicket => summary.new_tickets += 1,
                        Action::AlreadyDone => summary.already_done += 1,
                        _ => summary.other += 1,
                    }
                }
            }
            Err(e) => {
                tracing::error!(mailbox = %name, "{e:#}");
                first_err.get_or_insert(e.context(format!("Mailbox {name}")));
            }
        }
    }
    if let Err(e) = sweep(ctx).await {
        tracing::error!("escalation sweep: {e:#}");
        first_err.get_or_insert(e);
    }
    let (sent, failed) = crate::mail::outbox::drain(ctx).await?;
    summary.sent = sent;
    summary.failed = failed;
    match first_err {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Every long-running task of one configuration generation: a task per
/// mailbox, the outbox, the escalation sweeper. They stop when
/// `ctx.shutdown` (a per-generation token) is cancelled.
fn spawn_tasks(ctx: &Ctx) -> tokio::task::JoinSet<Result<()>> {
    let mut tasks = tokio::task::JoinSet::new();
    for mb in ctx.config.mailboxes.clone() {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            match &mb.kind {
                MailboxKind::Imap(s) => crate::mail::imap::run(&ctx, &mb.name, s).await,
                MailboxKind::Maildir { path, mark } => {
                    crate::mail::maildir::run(&ctx, &mb.name, path, *mark).await
                }
            }
        });
    }
    {
        let ctx = ctx.clone();
        tasks.spawn(async move { crate::mail::outbox::run(&ctx).await });
    }
    {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            loop {
                if let Err(e) = sweep(&ctx).await {
                    tracing::error!("escalation sweep: {e:#}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(ctx.config.escalation.tick) => {}
                    _ = ctx.sweep_wake.notified() => {}
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                }
            }
        });
    }
    tasks
}

/// What ends a generation.
enum Next {
    Stop,
    Reload(Box<(Config, Renderer)>),
}

/// The daemon, until SIGTERM/SIGINT. SIGHUP reloads the config file and
/// the templates: a new config that fails its checks is refused with a log
/// line and the running one goes on; a good one replaces it after the
/// running tasks finish the message in hand (mail not yet fetched is
/// fetched by the new generation, so nothing is lost).
pub async fn run(mut ctx: Ctx) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("Listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("Listening for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("Listening for SIGHUP")?;
    let process_shutdown = ctx.shutdown.clone();
    if let Some(addr) = ctx.config.metrics_listen {
        // Bound once per process: a changed address needs a restart.
        crate::metrics::spawn(addr, ctx.store.clone())?;
    }
    start_watchdog(&ctx);
    let mut first = true;
    loop {
        let mut gen_ctx = ctx.clone();
        gen_ctx.shutdown = process_shutdown.child_token();
        let mut tasks = spawn_tasks(&gen_ctx);
        if first {
            first = false;
            // READY=1 once every mailbox made its first attempt (bounded
            // wait), so `systemctl start` returns when the desk works.
            let wait_ready = async {
                while ctx.first_pass_count() < ctx.config.mailboxes.len() {
                    ctx.first_pass_wake.notified().await;
                }
            };
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(60), wait_ready) => {}
                _ = term.recv() => process_shutdown.cancel(),
                _ = int.recv() => process_shutdown.cancel(),
            }
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        tracing::info!(
            mailboxes = ctx.config.mailboxes.len(),
            "supportdesk running"
        );

        let next = loop {
            if process_shutdown.is_cancelled() {
                break Next::Stop;
            }
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    None => break Next::Stop,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => tracing::error!("task ended: {e:#}"),
                    Some(Err(e)) => tracing::error!("task panicked: {e}"),
                },
                _ = term.recv() => break Next::Stop,
                _ = int.recv() => break Next::Stop,
                _ = hup.recv() => match reload(&ctx) {
                    Ok(new) => break Next::Reload(Box::new(new)),
                    Err(e) => tracing::error!(
                        "reload refused, the running config stays: {e:#}"
                    ),
                },
            }
        };
        match &next {
            Next::Stop => {
                tracing::info!("shutting down");
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
                process_shutdown.cancel();
            }
            Next::Reload(_) => {
                tracing::info!("reloading: finishing the work in hand");
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
                gen_ctx.shutdown.cancel();
            }
        }
        // Tasks finish the message in hand; give them a bounded time.
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(20), drain)
            .await
            .is_err()
        {
            tracing::warn!("tasks did not stop within 20s; aborting them");
        }
        match next {
            Next::Stop => return Ok(()),
            Next::Reload(new) => {
                let (config, renderer) = *new;
                if config.desk.state_dir != ctx.config.desk.state_dir {
                    tracing::warn!(
                        "desk.state_dir changed: the database stays where it is until a restart"
                    );
                }
                ctx.config = Arc::new(config);
                ctx.renderer = Arc::new(renderer);
                tracing::info!(mailboxes = ctx.config.mailboxes.len(), "config reloaded");
            }
        }
    }
}

/// Reads and checks the config file again, with its templates.
fn reload(ctx: &Ctx) -> Result<(Config, Renderer)> {
    let path = ctx.config.file.clone();
    let config = crate::config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let renderer = Renderer::load(&config.desk.templates_dir, config.triage.default_language())?;
    Ok((config, renderer))
}

/// WATCHDOG=1 every half period while the store thread answers: a stuck
/// database owner gets the daemon restarted by systemd.
fn start_watchdog(ctx: &Ctx) {
    // As libsystemd's sd_watchdog_enabled: WATCHDOG_USEC enables it unless
    // WATCHDOG_PID names another process (sd-notify also insists on the
    // PID being present, which systemd always sets but a test harness cannot).
    let usec = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let pid_ok = std::env::var("WATCHDOG_PID")
        .ok()
        .is_none_or(|p| p.parse::<u32>().ok() == Some(std::process::id()));
    let Some(watchdog_usec) = usec.filter(|u| *u > 0 && pid_ok) else {
        return;
    };
    let ctx = ctx.clone();
    let period = Duration::from_micros(watchdog_usec / 2);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = ctx.shutdown.cancelled() => return,
            }
            let alive = tokio::time::timeout(period, ctx.store.call(|_| Ok(()))).await;
            if matches!(alive, Ok(Ok(()))) {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            } else {
                tracing::error!(
                    "store did not answer within {period:?}; withholding the watchdog ping"
                );
            }
        }
    });
}
