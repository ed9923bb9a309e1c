//! Wiring: validated config -> store -> one task per mailbox, the outbox
//! and the sweeper, each given a narrow handle ([`Source`], [`Outbox`],
//! [`Sweeper`]) built here; one shutdown token fanned out to every task
//! (the mini-redis shape); signals, reload and the watchdog. Nothing
//! below this module imports it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, MailboxKind, Secrets};
use crate::escalate::Sweeper;
use crate::ingest::{Action, Intake};
use crate::mail::outbox::Outbox;
use crate::mail::{Readiness, Source};
use crate::render::Renderer;
use crate::store::{Store, private};
use crate::validate::{Validated, validate};

/// What the process holds: the config and templates of the running
/// generation, the store, and the wake-ups that tie the tasks together.
/// Each task gets a narrow handle built from it, never the App itself.
#[derive(Clone)]
pub struct App {
    config: Arc<Config>,
    renderer: Arc<Renderer>,
    store: Store,
    /// Wakes the outbox when something was queued; repeated wake-ups merge.
    outbox_wake: Arc<Notify>,
    /// Wakes the escalation sweeper after an ingestion changed something.
    sweep_wake: Arc<Notify>,
    /// The last SMTP connection error, so it is logged once per change.
    smtp_error: Arc<std::sync::Mutex<Option<String>>>,
    ready: Readiness,
    /// When this process started: the baseline of the fetch alert for a
    /// mailbox that has not had a good pass yet.
    started: DateTime<Utc>,
    shutdown: CancellationToken,
    /// The state directory's lock, held for the life of the process.
    _lock: Arc<std::fs::File>,
}

impl App {
    /// Opens the state directory and the database of a validated config.
    pub fn open(v: Validated) -> Result<App> {
        let Validated {
            config, renderer, ..
        } = v;
        std::fs::create_dir_all(&config.desk.state_dir).with_context(|| {
            format!(
                "Creating the state directory {}",
                config.desk.state_dir.display()
            )
        })?;
        // Before anything is read or recovered: a second process would
        // take the first one's claimed outbox rows for interrupted ones
        // and send them again.
        let lock = lock_state_dir(&config.desk.state_dir)?;
        let db = config.desk.state_dir.join("supportdesk.db");
        let store = Store::open(&db)?;
        // Customer mail lives here: the owner only, whatever the umask.
        private(&config.desk.state_dir, 0o700)?;
        for f in [
            "supportdesk.db",
            "supportdesk.db-wal",
            "supportdesk.db-shm",
            LOCK_FILE,
        ] {
            let p = config.desk.state_dir.join(f);
            if p.exists() {
                private(&p, 0o600)?;
            }
        }
        store.call_blocking(|conn| crate::mail::outbox::recover_interrupted(conn))?;
        crate::store::spool::clean_tmp(&config.desk.state_dir)?;
        Ok(App {
            config: Arc::new(config),
            renderer: Arc::new(renderer),
            store,
            outbox_wake: Arc::new(Notify::new()),
            sweep_wake: Arc::new(Notify::new()),
            smtp_error: Arc::default(),
            ready: Readiness::default(),
            started: crate::clock::now(),
            shutdown: CancellationToken::new(),
            _lock: Arc::new(lock),
        })
    }

    /// The ingest handle of this generation.
    pub fn intake(&self) -> Intake {
        Intake::new(
            self.store.clone(),
            self.config.clone(),
            self.renderer.clone(),
            self.outbox_wake.clone(),
            self.sweep_wake.clone(),
        )
    }

    fn source(&self, intake: &Intake, name: &str) -> Source {
        Source::new(
            name,
            intake.clone(),
            self.ready.clone(),
            self.shutdown.clone(),
        )
    }

    fn outbox(&self) -> Outbox {
        Outbox::new(
            self.store.clone(),
            self.config.outbox.clone(),
            self.outbox_wake.clone(),
            self.smtp_error.clone(),
            self.shutdown.clone(),
        )
    }

    fn sweeper(&self) -> Sweeper {
        Sweeper {
            store: self.store.clone(),
            config: self.config.clone(),
            renderer: self.renderer.clone(),
            started: self.started,
            wake: self.sweep_wake.clone(),
            outbox_wake: self.outbox_wake.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

/// The lock file of a state directory: one process (`run` or `run --once`)
/// per database. It holds the holder's pid, for the message to the next.
pub const LOCK_FILE: &str = "supportdesk.lock";

/// Takes the state directory's lock (an advisory `flock`, released by the
/// kernel when the process ends, however it ends) and writes this
/// process's pid into it. The offline commands do not take it: reads and
/// the `tickets` writes go through SQLite's own locking next to a daemon.
fn lock_state_dir(dir: &std::path::Path) -> Result<std::fs::File> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(LOCK_FILE);
    // Not truncated on open: that would wipe the holder's pid.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("Opening the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let who = if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            };
            anyhow::bail!(
                "another supportdesk process{who} is running on {}",
                dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("Locking {}", path.display()));
        }
    }
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.flush())
        .with_context(|| format!("Writing the pid into {}", path.display()))?;
    Ok(file)
}

#[derive(Debug, Default)]
pub struct PassSummary {
    pub new_tickets: usize,
    pub other: usize,
    pub already_done: usize,
    pub sent: usize,
    pub failed: usize,
}

/// `run --once`: one pass over every mailbox, then deliver the outbox.
pub async fn run_once(app: &App) -> Result<PassSummary> {
    let mut summary = PassSummary::default();
    let mut tasks = tokio::task::JoinSet::new();
    let intake = app.intake();
    for mb in app.config.mailboxes.clone() {
        let src = app.source(&intake, &mb.name);
        tasks.spawn(async move {
            let r = match &mb.kind {
                MailboxKind::Imap(s) => crate::mail::imap::pass_once(&src, s).await,
                MailboxKind::Maildir { path, mark } => {
                    crate::mail::maildir::pass(&src, path, *mark).await
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
    if let Err(e) = app.sweeper().sweep().await {
        tracing::error!("escalation sweep: {e:#}");
        first_err.get_or_insert(e);
    }
    let (sent, failed) = crate::mail::outbox::drain(&app.outbox()).await?;
    summary.sent = sent;
    summary.failed = failed;
    match first_err {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Every long-running task of one configuration generation: a task per
/// mailbox, the outbox, the escalation sweeper, each with its own handle.
/// They stop when `app.shutdown` (a per-generation token) is cancelled.
fn spawn_tasks(app: &App) -> tokio::task::JoinSet<Result<()>> {
    let mut tasks = tokio::task::JoinSet::new();
    let intake = app.intake();
    for mb in app.config.mailboxes.clone() {
        let src = app.source(&intake, &mb.name);
        tasks.spawn(async move {
            match &mb.kind {
                MailboxKind::Imap(s) => crate::mail::imap::run(&src, s).await,
                MailboxKind::Maildir { path, mark } => {
                    crate::mail::maildir::run(&src, path, *mark).await
                }
            }
        });
    }
    let outbox = app.outbox();
    tasks.spawn(async move { crate::mail::outbox::run(&outbox).await });
    let sweeper = app.sweeper();
    tasks.spawn(async move { sweeper.run().await });
    tasks
}

/// What ends a generation.
enum Next {
    Stop,
    Reload(Box<Validated>),
}

/// The daemon, until SIGTERM/SIGINT. SIGHUP reloads the config file and
/// the templates: a new config that fails its checks is refused with a log
/// line and the running one goes on; a good one replaces it after the
/// running tasks finish the message in hand (mail not yet fetched is
/// fetched by the new generation, so nothing is lost).
pub async fn run(mut app: App) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("Listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("Listening for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("Listening for SIGHUP")?;
    let process_shutdown = app.shutdown.clone();
    let metrics_sla = crate::metrics::CurrentSla::new(app.config.clone());
    if let Some(addr) = app.config.metrics_listen {
        // Bound once per process: a changed address needs a restart.
        crate::metrics::spawn(
            addr,
            app.store.clone(),
            app.config.desk.state_dir.join("supportdesk.db"),
            metrics_sla.clone(),
        )?;
    }
    start_watchdog(app.store.clone(), process_shutdown.clone());
    let mut first = true;
    loop {
        let mut generation = app.clone();
        generation.shutdown = process_shutdown.child_token();
        let mut tasks = spawn_tasks(&generation);
        if first {
            first = false;
            // READY=1 once every mailbox made its first attempt (bounded
            // wait), so `systemctl start` returns when the desk works.
            let wait_ready = app.ready.wait_for(app.config.mailboxes.len());
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(60), wait_ready) => {}
                _ = term.recv() => process_shutdown.cancel(),
                _ = int.recv() => process_shutdown.cancel(),
            }
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        tracing::info!(
            mailboxes = app.config.mailboxes.len(),
            "supportdesk running"
        );
        if let Some(at) = crate::clock::test_clock() {
            tracing::warn!(now = %at, "test clock in use ({}; debug build)", crate::clock::TEST_CLOCK_VAR);
        } else if std::env::var_os(crate::clock::TEST_CLOCK_VAR).is_some()
            && !cfg!(debug_assertions)
        {
            tracing::warn!(
                "{} is ignored by a release build",
                crate::clock::TEST_CLOCK_VAR
            );
        }

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
                _ = hup.recv() => match reload(&app) {
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
                generation.shutdown.cancel();
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
                let Validated {
                    config, renderer, ..
                } = *new;
                if config.desk.state_dir != app.config.desk.state_dir {
                    tracing::warn!(
                        "desk.state_dir changed: the database stays where it is until a restart"
                    );
                }
                app.config = Arc::new(config);
                app.renderer = Arc::new(renderer);
                metrics_sla.set(app.config.clone());
                tracing::info!(mailboxes = app.config.mailboxes.len(), "config reloaded");
            }
        }
    }
}

/// Reads and checks the config file again, with its templates, as
/// check-config and start-up do.
fn reload(app: &App) -> Result<Validated> {
    let v = validate(&app.config.file, Secrets::Read)?;
    for w in &v.warnings {
        tracing::warn!("{w}");
    }
    Ok(v)
}

/// WATCHDOG=1 every half period while the store thread answers: a stuck
/// database owner gets the daemon restarted by systemd.
fn start_watchdog(store: Store, shutdown: CancellationToken) {
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
    let period = Duration::from_micros(watchdog_usec / 2);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = shutdown.cancelled() => return,
            }
            let alive = tokio::time::timeout(period, store.call(|_| Ok(()))).await;
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
