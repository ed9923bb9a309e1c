//! Our own DKIM and DMARC check (mail-auth over DNS), for a message no
//! trusted server gave a verdict on, when `[trust] verify_dkim` is on.
//!
//! DMARC is evaluated on DKIM alone: a mailbox read over IMAP or Maildir
//! has no connecting IP to check SPF against. Each message's check is
//! bounded in time; a DNS server that does not answer gives a temperror,
//! which authenticates nobody.

use std::time::Duration;

use anyhow::{Context, Result};
use mail_auth::hickory_resolver::config::{
    NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::{
    AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, SpfOutput,
    dmarc::verify::DmarcParameters,
};

use crate::config::Trust;
use crate::core::auth::{self, Dkim, Res, Verdict};

/// The whole check of one message, at most.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Verifier {
    auth: MessageAuthenticator,
}

impl Verifier {
    /// None when the config does not ask for our own checks. Call it
    /// inside the tokio runtime.
    pub fn new(trust: &Trust) -> Result<Option<Verifier>> {
        if !trust.verify_dkim {
            return Ok(None);
        }
        let auth = match trust.dns {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                let mut opts = ResolverOpts::default();
                opts.use_hosts_file = ResolveHosts::Never;
                opts.timeout = Duration::from_secs(2);
                opts.attempts = 1;
                MessageAuthenticator::new(ResolverConfig::from_name_servers(vec![ns]), opts)
                    .with_context(|| format!("Setting up the DNS resolver for {addr}"))?
            }
            None => MessageAuthenticator::new_system_conf()
                .context("Setting up the DNS resolver from /etc/resolv.conf")?,
        };
        Ok(Some(Verifier { auth }))
    }

    /// The verdict of the message's DKIM signatures and DMARC record.
    pub async fn verify(&self, raw: &[u8], from_domain: Option<&str>) -> Verdict {
        match tokio::time::timeout(TIMEOUT, self.check(raw, from_domain)).await {
            Ok(v) => v,
            Err(_) => Verdict {
                source: "own DKIM check".into(),
                dmarc: Res::Temperror,
                from_domain: from_domain.map(str::to_string),
                note: Some(format!("no answer within {}s", TIMEOUT.as_secs())),
                ..Verdict::default()
            },
        }
    }

    async fn check(&self, raw: &[u8], from_domain: Option<&str>) -> Verdict {
        let Some(msg) = AuthenticatedMessage::parse(raw) else {
            return Verdict::none(from_domain, "the message could not be read for DKIM");
        };
        let outputs = self.auth.verify_dkim(&msg).await;
        let dkim = outputs
            .iter()
            .filter_map(|o| {
                let sig = o.signature()?;
                let domain = sig.d.to_ascii_lowercase();
                Some(Dkim {
                    aligned: from_domain.is_some_and(|f| auth::aligned(&domain, f)),
                    domain,
                    result: match o.result() {
                        DkimResult::Pass => Res::Pass,
                        // A body that does not match its hash, or an expired
                        // signature: a failed signature.
                        DkimResult::Neutral(_) | DkimResult::Fail(_) => Res::Fail,
                        DkimResult::PermError(_) => Res::Permerror,
                        DkimResult::TempError(_) => Res::Temperror,
                        DkimResult::None => Res::None,
                    },
                })
            })
            .collect();
        let spf = SpfOutput::default();
        let dmarc = self
            .auth
            .verify_dmarc(DmarcParameters::new(&msg, &outputs, "", &spf))
            .await;
        let about = dmarc.domain().to_ascii_lowercase();
        let dmarc_res = match dmarc.dkim_result() {
            DmarcResult::Pass if from_domain.is_some_and(|f| f.eq_ignore_ascii_case(&about)) => {
                Res::Pass
            }
            DmarcResult::Pass => Res::None,
            DmarcResult::Fail(_) => Res::Fail,
            DmarcResult::TempError(_) => Res::Temperror,
            DmarcResult::PermError(_) => Res::Permerror,
            DmarcResult::None => Res::None,
        };
        Verdict {
            source: "own DKIM check".into(),
            dmarc: dmarc_res,
            dkim,
            spf: Res::None,
            from_domain: from_domain.map(str::to_string),
            note: None,
        }
    }
}
