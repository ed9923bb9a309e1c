//! `[oauth.NAME]`: the OAuth 2.0 accounts mailboxes and the outbox log in
//! with (SASL XOAUTH2 or OAUTHBEARER), raw and checked. A provider preset
//! (`microsoft` with its tenant, `google`) fills the endpoints and scopes;
//! `generic` names them. The tokens themselves live in the state
//! directory (src/oauth.rs), never in the config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::{Problems, RawSecret, Secret, Secrets, read_secret};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth {
    /// "microsoft", "google" or "generic".
    pub provider: String,
    /// Microsoft: the directory (tenant) id or domain, or "organizations".
    pub tenant: Option<String>,
    pub client_id: String,
    /// Confidential clients only (Google's "TVs and limited input"
    /// clients have one; Microsoft public clients have none).
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub client_secret_credential: Option<String>,
    /// Default: the preset's (IMAP and SMTP of that provider, and a
    /// refresh token).
    pub scopes: Option<Vec<String>>,
    /// Required for `generic`; a preset's endpoints may be overridden.
    pub token_url: Option<String>,
    pub device_authorization_url: Option<String>,
    /// The browser sign-in's (`auth login --browser`) authorization endpoint.
    pub authorization_url: Option<String>,
    /// Where the browser sign-in sends the browser back (default
    /// "http://localhost:8400/"; nothing needs to listen there).
    pub redirect_uri: Option<String>,
    /// "xoauth2" (default; what Microsoft and Google document) or
    /// "oauthbearer" (RFC 7628).
    pub mechanism: Option<String>,
    /// An extra CA for the token endpoint (a private identity provider).
    pub ca_file: Option<String>,
}

/// The SASL mechanism an account's bearer token is presented with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sasl {
    XOAuth2,
    OAuthBearer,
}

/// One checked `[oauth.NAME]`: everything needed to get and refresh its
/// tokens. Mailboxes and the outbox that log in with it share it.
#[derive(Debug, Clone)]
pub struct OAuthAccount {
    pub name: String,
    pub provider: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    pub token_url: String,
    pub device_authorization_url: String,
    /// None: no browser sign-in (a generic provider without one).
    pub authorization_url: Option<String>,
    pub redirect_uri: String,
    pub mechanism: Sasl,
    pub ca_file: Option<PathBuf>,
    /// `<state_dir>/oauth/NAME.json`.
    pub token_file: PathBuf,
}

/// How a mailbox or the outbox logs in.
#[derive(Debug, Clone)]
pub enum Login {
    Password(Secret),
    /// A bearer token of this account; the login user (the mailbox) may
    /// differ from the token's owner (a shared mailbox, a delegate).
    OAuth2(Arc<OAuthAccount>),
}

const MICROSOFT_SCOPES: &[&str] = &[
    "offline_access",
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
];
const GOOGLE_SCOPES: &[&str] = &["https://mail.google.com/"];

/// The directory the token files live in.
pub fn token_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("oauth")
}

pub(super) fn check_accounts(
    raw: &BTreeMap<String, RawOAuth>,
    base: &Path,
    state_dir: &Path,
    secrets: Secrets,
    pr: &mut Problems,
) -> BTreeMap<String, Arc<OAuthAccount>> {
    let mut out = BTreeMap::new();
    for (name, a) in raw {
        let account = pr.within(&[name.as_str()], |pr| {
            check_account(name, a, base, state_dir, secrets, pr)
        });
        if let Some(a) = account {
            out.insert(name.clone(), Arc::new(a));
        }
    }
    out
}

fn check_account(
    name: &str,
    a: &RawOAuth,
    base: &Path,
    state_dir: &Path,
    secrets: Secrets,
    pr: &mut Problems,
) -> Option<OAuthAccount> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        pr.push(
            &[] as &[&str],
            format!("account name {name:?}: expected letters, digits, - and _ only"),
        );
        return None;
    }
    let (token, device, auth, scopes): (Option<String>, Option<String>, Option<String>, &[&str]) =
        match a.provider.as_str() {
            "microsoft" => {
                // A problem, not a missing account: what uses it is checked on.
                let tenant = match a.tenant.as_deref().filter(|t| !t.trim().is_empty()) {
                    Some(t) => t,
                    None => {
                        pr.push(
                        &["tenant"],
                        "the microsoft provider needs the tenant (directory id or domain, or \"organizations\")",
                    );
                        "-"
                    }
                };
                let root = format!(
                    "https://login.microsoftonline.com/{}/oauth2/v2.0",
                    tenant.trim()
                );
                (
                    Some(format!("{root}/token")),
                    Some(format!("{root}/devicecode")),
                    Some(format!("{root}/authorize")),
                    MICROSOFT_SCOPES,
                )
            }
            "google" => (
                Some("https://oauth2.googleapis.com/token".into()),
                Some("https://oauth2.googleapis.com/device/code".into()),
                Some("https://accounts.google.com/o/oauth2/v2/auth".into()),
                GOOGLE_SCOPES,
            ),
            "generic" => (None, None, None, &[]),
            other => {
                pr.push(
                &["provider"],
                format!(
                    "unknown provider {other:?}; expected \"microsoft\", \"google\" or \"generic\""
                ),
            );
                (
                    Some("https://-".into()),
                    Some("https://-".into()),
                    None,
                    &["-"],
                )
            }
        };
    if a.provider != "microsoft" && a.tenant.is_some() {
        pr.push(&["tenant"], "`tenant` is for the microsoft provider");
    }
    let mut url = |key: &str, given: &Option<String>, preset: Option<String>| -> String {
        match given.clone().or(preset) {
            Some(u) if u.starts_with("https://") && u.len() > "https://".len() => u,
            Some(u) => {
                pr.push(
                    &[key],
                    format!("{u:?} is not an https:// URL (tokens never travel in clear)"),
                );
                String::new()
            }
            None => {
                pr.push(&[key], format!("the generic provider needs {key}"));
                String::new()
            }
        }
    };
    let token_url = url("token_url", &a.token_url, token);
    let device_authorization_url = url(
        "device_authorization_url",
        &a.device_authorization_url,
        device,
    );
    let authorization_url = match a.authorization_url.clone().or(auth) {
        None => None,
        Some(u) if u.starts_with("https://") => Some(u),
        Some(u) => {
            pr.push(
                &["authorization_url"],
                format!("{u:?} is not an https:// URL"),
            );
            None
        }
    };
    let redirect_uri = a
        .redirect_uri
        .clone()
        .unwrap_or_else(|| "http://localhost:8400/".into());
    let loopback = ["http://localhost", "http://127.0.0.1", "http://[::1]"];
    if !loopback.iter().any(|l| {
        redirect_uri
            .strip_prefix(l)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
    }) {
        pr.push(
            &["redirect_uri"],
            format!(
                "{redirect_uri:?}: expected a loopback address such as \"http://localhost:8400/\" (the browser must not carry the code to any server)"
            ),
        );
    }
    if a.client_id.trim().is_empty() {
        pr.push(&["client_id"], "expected the application (client) id");
    }
    let secret = RawSecret {
        password: a.client_secret.clone(),
        password_file: a.client_secret_file.clone(),
        password_credential: a.client_secret_credential.clone(),
    };
    let client_secret = match read_secret(base, &secret, secrets) {
        Ok(s) => s,
        Err((key, msg)) => {
            pr.push(&[key.replace("password", "client_secret").as_str()], msg);
            None
        }
    };
    let scopes = match &a.scopes {
        Some(s) if s.is_empty() || s.iter().any(|s| s.trim().is_empty() || s.contains(' ')) => {
            pr.push(&["scopes"], "expected a list of scopes, one per string");
            Vec::new()
        }
        Some(s) => s.clone(),
        None if scopes.is_empty() => {
            pr.push(&["scopes"], "the generic provider needs scopes");
            Vec::new()
        }
        None => scopes.iter().map(|s| s.to_string()).collect(),
    };
    let mechanism = match a.mechanism.as_deref().unwrap_or("xoauth2") {
        "xoauth2" => Sasl::XOAuth2,
        "oauthbearer" => Sasl::OAuthBearer,
        other => {
            pr.push(
                &["mechanism"],
                format!("unknown mechanism {other:?}; expected \"xoauth2\" or \"oauthbearer\""),
            );
            Sasl::XOAuth2
        }
    };
    let ca_file = a.ca_file.as_ref().map(|f| base.join(f));
    if let Some(ca) = &ca_file
        && !ca.is_file()
    {
        pr.push(
            &["ca_file"],
            format!("{} is not a readable file", ca.display()),
        );
    }
    Some(OAuthAccount {
        name: name.to_string(),
        provider: a.provider.clone(),
        client_id: a.client_id.trim().to_string(),
        client_secret,
        scopes,
        token_url,
        device_authorization_url,
        authorization_url,
        redirect_uri,
        mechanism,
        ca_file,
        token_file: token_dir(state_dir).join(format!("{name}.json")),
    })
}

/// A mailbox's or the outbox's `auth` / `oauth` keys with its password
/// keys: how it logs in. None: `auth = "password"` with no password (the
/// caller decides whether that is allowed).
pub(super) fn check_login(
    auth: Option<&str>,
    account: Option<&str>,
    password: Option<Secret>,
    password_declared: bool,
    accounts: &BTreeMap<String, Arc<OAuthAccount>>,
    pr: &mut Problems,
) -> Option<Login> {
    match auth.unwrap_or("password") {
        "password" => {
            if account.is_some() {
                pr.push(&["oauth"], "`oauth` needs auth = \"oauth2\"");
            }
            password.map(Login::Password)
        }
        "oauth2" => {
            if password_declared {
                pr.push(
                    &["auth"],
                    "auth = \"oauth2\" takes no password (the token comes from `supportdesk auth login`)",
                );
            }
            let Some(name) = account else {
                pr.push(
                    &["oauth"],
                    "auth = \"oauth2\" needs `oauth`, the name of an [oauth.NAME] account",
                );
                return None;
            };
            match accounts.get(name) {
                Some(a) => Some(Login::OAuth2(a.clone())),
                None => {
                    let known: Vec<&str> = accounts.keys().map(String::as_str).collect();
                    pr.push(
                        &["oauth"],
                        format!(
                            "no [oauth.{name}] account{}",
                            if known.is_empty() {
                                String::new()
                            } else {
                                format!(" (defined: {})", known.join(", "))
                            }
                        ),
                    );
                    None
                }
            }
        }
        other => {
            pr.push(
                &["auth"],
                format!("unknown auth {other:?}; expected \"password\" or \"oauth2\""),
            );
            None
        }
    }
}
