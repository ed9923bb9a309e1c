//! The one validation path: check-config, start-up and reload all call
//! [`validate`], so each refuses exactly what the others refuse. It loads
//! the config (every problem with its file, line, column and key), loads
//! the templates and renders each with sample contexts covering its
//! branches (an unknown variable, a missing `Subject:` line), and returns
//! problems and warnings apart.

use std::fmt;
use std::path::Path;

use crate::config::{self, Config, Secrets};
use crate::render::{AckContext, Renderer};

/// A config that passed every check, with its templates.
pub struct Validated {
    pub config: Config,
    pub renderer: Renderer,
    /// Accepted but worth saying aloud (plaintext to a loopback host, a
    /// metrics endpoint beyond loopback).
    pub warnings: Vec<String>,
}

/// Why a config was refused: one line per problem, each naming the file.
#[derive(Debug)]
pub struct Invalid(String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.trim_end())
    }
}

impl std::error::Error for Invalid {}

pub fn validate(path: &Path, secrets: Secrets) -> Result<Validated, Invalid> {
    let config = config::load_with(path, secrets).map_err(|e| Invalid(e.to_string()))?;
    let renderer = check_templates(&config)
        .map_err(|e| Invalid(format!("{}: templates: {e:#}", path.display())))?;
    let warnings = warnings(&config);
    Ok(Validated {
        config,
        renderer,
        warnings,
    })
}

/// The templates as the daemon will load them, then rendered with sample
/// contexts: syntax, variables and the Subject: line.
fn check_templates(cfg: &Config) -> anyhow::Result<Renderer> {
    let r = Renderer::load(&cfg.desk.templates_dir, cfg.triage.default_language())?;
    r.check_kind("ack", &ack_samples(cfg))?;
    r.check_kind("escalation", &crate::escalate::sample_contexts())?;
    r.check_kind("digest", &crate::digest::sample_contexts())?;
    let (reminds, closes) = cfg.sla.uses_pending();
    for (kind, used) in [("reminder", reminds), ("autoclose", closes)] {
        if used && !r.has_default(kind) {
            anyhow::bail!(
                "a plan sets pending_{}_after but there is no {kind}.{}.txt in {}",
                if kind == "reminder" {
                    "reminder"
                } else {
                    "close"
                },
                cfg.triage.default_language(),
                cfg.desk.templates_dir.display()
            );
        }
        r.check_kind(kind, &crate::pending::sample_contexts(kind))?;
    }
    Ok(r)
}

/// Plaintext is accepted only for loopback hosts, and said aloud; so is a
/// metrics endpoint reachable from other machines.
fn warnings(cfg: &Config) -> Vec<String> {
    let file = cfg.file.display();
    let mut out = Vec::new();
    for mb in &cfg.mailboxes {
        if let config::MailboxKind::Imap(s) = &mb.kind
            && s.tls == config::Tls::None
        {
            out.push(format!(
                "{file}: warning: mailbox {} talks plaintext IMAP to {}:{}",
                mb.name, s.host, s.port
            ));
        }
    }
    if let config::OutboxKind::Smtp(s) = &cfg.outbox.kind
        && s.tls == config::Tls::None
    {
        out.push(format!(
            "{file}: warning: the outbox talks plaintext SMTP to {}:{}",
            s.host, s.port
        ));
    }
    // Secure by default means nobody is an agent by mail until the config
    // says how senders are verified; say so, and say when From is trusted.
    let t = &cfg.trust;
    if t.authserv_id.is_empty() && !t.verify_dkim {
        out.push(format!(
            "{file}: warning: [trust] names no authserv_id and verify_dkim is off: no sender is \
             authenticated, so agent commands by mail and plan or priority claims are refused"
        ));
    }
    if t.agents == crate::core::auth::Require::From {
        out.push(format!(
            "{file}: warning: [trust] agents = \"from\": anyone who types an agent's address runs agent commands"
        ));
    }
    // The endpoint has neither TLS nor authentication, and the figures
    // say how the desk is doing.
    if let Some(addr) = cfg.metrics_listen
        && !addr.ip().to_canonical().is_loopback()
    {
        out.push(format!(
            "{file}: warning: the metrics endpoint listens on {addr}, beyond loopback: \
             anyone who reaches it reads the desk's figures (no TLS, no authentication)"
        ));
    }
    out
}

/// Acknowledgement contexts covering the templates' branches.
fn ack_samples(cfg: &Config) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for (category, due, overdue) in [
        (
            Some("commercial"),
            Some("lundi 5 janvier 2026 à 10:00 (heure de Paris)"),
            false,
        ),
        (None, None, false),
        (None, None, true),
    ] {
        let ctx = AckContext {
            desk_name: cfg.desk.name.clone(),
            reference: "SUP-000001".into(),
            subject: "Subject".into(),
            customer_name: category.map(|_| "Customer".into()),
            customer_email: "customer@example.com".into(),
            language: cfg.triage.default_language().into(),
            plan: "plan".into(),
            category: category.map(Into::into),
            priority: category.map(|_| "P1".into()),
            first_response_due: due.map(Into::into),
            first_response_overdue: overdue,
            resolution_due: due.map(Into::into),
            received_at: "2026-01-05T08:00:00Z".into(),
            vars: cfg.desk.template_vars.clone(),
        };
        out.push(serde_json::to_value(ctx).unwrap_or_default());
    }
    out
}
