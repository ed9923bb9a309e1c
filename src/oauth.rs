//! OAuth 2.0 tokens of the `[oauth.NAME]` accounts: the device
//! authorization grant of `supportdesk auth login` (RFC 8628), the refresh
//! grant, and the token files that hold them.
//!
//! One file per account, `<state_dir>/oauth/NAME.json`, 0600 in a 0700
//! directory, replaced atomically (written aside, synced, renamed): a
//! rotated refresh token replaces the old one in the same write, and a
//! crash leaves the old file or the new one, never half of either. Every
//! read-refresh-write holds the account's lock file (`NAME.lock`, an
//! advisory flock), so the daemon's IMAP and SMTP tasks, a `check-config
//! --connect` and an `auth login` never refresh one token twice at once: a
//! provider that rotates refresh tokens would take the second use of the
//! old one for a theft. The file is read again at every use, so a new
//! `auth login` is picked up by a running daemon without a restart.
//!
//! Token values are never logged or printed; the file's Debug says only
//! what it holds. The protocol is the `oauth2` crate's, over reqwest with
//! the project's rustls configuration (ring, Mozilla roots plus the
//! account's `ca_file`).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use chrono::{DateTime, Utc};
use oauth2::basic::BasicClient;
use oauth2::{
    ClientId, ClientSecret, DeviceAuthorizationUrl, RefreshToken, RequestTokenError, Scope,
    StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use crate::config::{OAuthAccount, Sasl};

/// An access token is refreshed when it has less than this left (or a
/// quarter of its lifetime, when that is shorter), so it never expires
/// between the check and the server's reading of it.
const REFRESH_MARGIN: i64 = 120;
/// Longest wait for the token endpoint.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// What an account's token file holds.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenFile {
    pub account: String,
    /// The client and endpoint the tokens were issued for: a config that
    /// names another one needs a new login, not a refresh.
    pub client_id: String,
    pub token_url: String,
    /// Who signed in, as the access token says (when it is a JWT).
    pub owner: Option<String>,
    pub scopes: Vec<String>,
    pub access_token: String,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_token: Option<String>,
    pub obtained_at: DateTime<Utc>,
    pub refreshed_at: Option<DateTime<Utc>>,
    /// Refreshes that failed, over the life of this login (Prometheus).
    #[serde(default)]
    pub refresh_failures: u64,
    /// The last refresh's failure, until one succeeds.
    pub last_error: Option<TokenFailure>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("account", &self.account)
            .field("owner", &self.owner)
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenFailure {
    pub at: DateTime<Utc>,
    /// The provider's error and description, or why it could not be asked.
    pub error: String,
    /// The provider refused (revoked, expired, consent withdrawn): only a
    /// new login mends it. Otherwise the endpoint could not be reached.
    pub refused: bool,
}

/// Why no access token could be had. A caller branches on it: a refused
/// token is the config's (the admin's) problem, as a refused password.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("OAuth account {0}: not signed in; run `supportdesk auth login {0}`")]
    NotLoggedIn(String),
    #[error(
        "OAuth account {account}: the provider refused the token ({error}); run `supportdesk auth login {account}`"
    )]
    Refused { account: String, error: String },
    #[error("OAuth account {account}: token endpoint unavailable: {error}")]
    Unreachable { account: String, error: String },
    #[error("OAuth account {account}: {error:#}")]
    Local {
        account: String,
        error: anyhow::Error,
    },
}

impl TokenError {
    /// Whether an admin must act (sign in again, fix the config).
    pub fn is_login(&self) -> bool {
        !matches!(self, TokenError::Unreachable { .. })
    }
}

/// An access token, for one login.
pub struct Bearer {
    pub token: String,
}

/// Reads an account's token file; None when it signed in never or out.
pub fn read(account: &OAuthAccount) -> Result<Option<TokenFile>> {
    read_path(&account.token_file)
}

fn read_path(path: &Path) -> Result<Option<TokenFile>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("Reading the token file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("Reading {}", path.display())),
    }
}

/// Replaces the token file atomically, 0600 in a 0700 directory.
fn write(account: &OAuthAccount, t: &TokenFile) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = &account.token_file;
    let dir = path.parent().context("token file without a directory")?;
    create_dir(dir)?;
    let tmp = dir.join(format!(".{}.tmp", account.name));
    let body = serde_json::to_vec_pretty(t)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("Creating {}", tmp.display()))?;
    f.write_all(&body)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("Writing {}", tmp.display()))?;
    give_to_state_owner(&tmp)?;
    std::fs::rename(&tmp, path).with_context(|| format!("Renaming to {}", path.display()))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("Syncing {}", dir.display()))?;
    Ok(())
}

/// The oauth/ directory, 0700, the state directory's owner's.
fn create_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("Creating {}", dir.display()))?;
        give_to_state_owner(dir)?;
    }
    Ok(())
}

/// An `auth login` run as root must not leave a file the service's user
/// cannot read: what it creates under `<state_dir>/oauth/` goes to the
/// state directory's owner. (Another user cannot chown; nothing to do.)
fn give_to_state_owner(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Some(state_dir) = path
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "oauth"))
        .and_then(Path::parent)
    else {
        return Ok(());
    };
    let (Ok(meta), Ok(own)) = (std::fs::metadata(state_dir), std::fs::metadata(path)) else {
        return Ok(());
    };
    if own.uid() != meta.uid() && std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid()))
            .with_context(|| format!("Giving {} to the state directory's owner", path.display()))?;
    }
    Ok(())
}

/// Takes the account's lock (waits for another holder); released on drop.
async fn lock(account: &OAuthAccount) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = account
        .token_file
        .parent()
        .context("token file without a directory")?
        .to_path_buf();
    let path = dir.join(format!("{}.lock", account.name));
    tokio::task::spawn_blocking(move || {
        create_dir(&dir)?;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("Opening {}", path.display()))?;
        give_to_state_owner(&path)?;
        f.lock()
            .with_context(|| format!("Locking {}", path.display()))?;
        Ok(f)
    })
    .await
    .context("The lock task panicked")?
}

/// When the account was last signed in (None: it is not): a source
/// waiting after a refused token retries as soon as this changes. A
/// refresh, failed or not, leaves it alone.
pub fn signed_in_at(account: &OAuthAccount) -> Option<DateTime<Utc>> {
    read(account).ok().flatten().map(|t| t.obtained_at)
}

/// Never for None; for an account, when it is signed in again (`auth
/// login`), polled each second: a mailbox or the outbox waiting after a
/// refused token resumes at once instead of after its backoff.
pub async fn signed_in_again(account: Option<&OAuthAccount>) {
    let Some(account) = account else {
        return std::future::pending().await;
    };
    let before = signed_in_at(account);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if signed_in_at(account) != before {
            return;
        }
    }
}

/// Signs out: forgets the account's tokens. Returns whether there were any.
pub async fn logout(account: &OAuthAccount) -> Result<bool> {
    let _lock = lock(account).await?;
    match std::fs::remove_file(&account.token_file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("Removing {}", account.token_file.display())),
    }
}

fn http_client(account: &OAuthAccount) -> Result<reqwest::Client> {
    let tls = crate::mail::tls::client_config(account.ca_file.as_deref())?;
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        // Following redirects would open the client to SSRF (oauth2's advice).
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .build()
        .context("Building the HTTP client")
}

type Client = BasicClient<
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn oauth_client(account: &OAuthAccount) -> Result<Client> {
    let mut c = BasicClient::new(ClientId::new(account.client_id.clone()))
        .set_token_uri(TokenUrl::new(account.token_url.clone()).context("token_url")?)
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(account.device_authorization_url.clone())
                .context("device_authorization_url")?,
        );
    if let Some(s) = &account.client_secret {
        c = c.set_client_secret(ClientSecret::new(s.expose().to_string()));
    }
    Ok(c)
}

/// The provider's words for a refused request, else what went wrong.
fn refusal<RE: std::error::Error + 'static, T: oauth2::ErrorResponse + 'static>(
    e: &RequestTokenError<RE, T>,
) -> (String, bool) {
    match e {
        RequestTokenError::ServerResponse(r) => (r.to_string(), true),
        RequestTokenError::Request(e) => (format!("{:#}", anyhow!(error_chain(e))), false),
        RequestTokenError::Parse(e, _) => (format!("unreadable answer: {e}"), false),
        RequestTokenError::Other(s) => (s.clone(), false),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Who the access token was issued to, when it is a JWT (Microsoft's are;
/// Google's are opaque). Informational only: nothing trusts it.
pub fn owner_of(access_token: &str) -> Option<String> {
    let payload = access_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    ["upn", "preferred_username", "email", "unique_name", "sub"]
        .iter()
        .find_map(|k| claims.get(k)?.as_str().map(str::to_string))
}

fn expiry(now: DateTime<Utc>, expires_in: Option<Duration>) -> Option<DateTime<Utc>> {
    expires_in.and_then(|d| chrono::TimeDelta::from_std(d).ok().map(|d| now + d))
}

/// An access token for `account`: the stored one while it has more than
/// two minutes left (unless `force`: the server refused it), else a fresh
/// one from the refresh grant, stored with a rotated refresh token before
/// it is returned.
pub async fn bearer(account: &OAuthAccount, force: bool) -> Result<Bearer, TokenError> {
    let local = |error: anyhow::Error| TokenError::Local {
        account: account.name.clone(),
        error,
    };
    let _lock = lock(account).await.map_err(local)?;
    let Some(mut t) = read(account).map_err(local)? else {
        return Err(TokenError::NotLoggedIn(account.name.clone()));
    };
    if t.client_id != account.client_id || t.token_url != account.token_url {
        return Err(TokenError::Local {
            account: account.name.clone(),
            error: anyhow!(
                "the stored token was issued to another client or provider than the config names; run `supportdesk auth login {}`",
                account.name
            ),
        });
    }
    let now = Utc::now();
    let fresh = t.access_expires_at.is_none_or(|at| {
        let issued = t.refreshed_at.unwrap_or(t.obtained_at);
        let margin = chrono::TimeDelta::seconds(REFRESH_MARGIN).min((at - issued) / 4);
        at - margin > now
    });
    if fresh && !force && !t.access_token.is_empty() {
        return Ok(Bearer {
            token: t.access_token,
        });
    }
    let Some(refresh) = t.refresh_token.clone() else {
        return Err(TokenError::Refused {
            account: account.name.clone(),
            error: "the access token expired and the provider gave no refresh token (is offline_access among the scopes?)".into(),
        });
    };
    let result = async {
        let http = http_client(account)?;
        let client = oauth_client(account)?;
        Ok::<_, anyhow::Error>(
            client
                .exchange_refresh_token(&RefreshToken::new(refresh))
                .request_async(&http)
                .await,
        )
    }
    .await
    .map_err(local)?;
    match result {
        Ok(r) => {
            let now = Utc::now();
            t.access_token = r.access_token().secret().clone();
            t.access_expires_at = expiry(now, r.expires_in());
            if let Some(rt) = r.refresh_token() {
                t.refresh_token = Some(rt.secret().clone());
            }
            if let Some(scopes) = r.scopes() {
                t.scopes = scopes.iter().map(|s| s.to_string()).collect();
            }
            t.owner = owner_of(&t.access_token).or(t.owner);
            t.refreshed_at = Some(now);
            t.last_error = None;
            write(account, &t).map_err(local)?;
            tracing::info!(account = %account.name, expires_at = ?t.access_expires_at, "OAuth access token refreshed");
            Ok(Bearer {
                token: t.access_token,
            })
        }
        Err(e) => {
            let (error, refused) = refusal(&e);
            t.refresh_failures += 1;
            t.last_error = Some(TokenFailure {
                at: Utc::now(),
                error: error.clone(),
                refused,
            });
            write(account, &t).map_err(local)?;
            let account = account.name.clone();
            Err(if refused {
                TokenError::Refused { account, error }
            } else {
                TokenError::Unreachable { account, error }
            })
        }
    }
}

/// `auth login`: the device authorization grant. Prints where to sign in
/// and the code, waits for the user (at most the code's lifetime), then
/// stores the tokens. Returns the stored file.
pub async fn login(account: &OAuthAccount, out: &mut dyn Write) -> Result<TokenFile> {
    let http = http_client(account)?;
    let client = oauth_client(account)?;
    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scopes(account.scopes.iter().map(|s| Scope::new(s.clone())))
        .request_async(&http)
        .await
        .map_err(|e| anyhow!("the device authorization request failed: {}", refusal(&e).0))?;
    let lifetime = details.expires_in();
    writeln!(
        out,
        "To sign in account {}, open {} in any browser and enter the code {}",
        account.name,
        details.verification_uri().as_str(),
        details.user_code().secret()
    )?;
    if let Some(complete) = details.verification_uri_complete() {
        writeln!(out, "(or open {} directly)", complete.secret())?;
    }
    writeln!(
        out,
        "Sign in as the mailbox's owner or delegate. Waiting up to {} minutes...",
        lifetime.as_secs().div_ceil(60)
    )?;
    out.flush()?;
    let r = client
        .exchange_device_access_token(&details)
        .request_async(&http, tokio::time::sleep, Some(lifetime))
        .await
        .map_err(|e| anyhow!("sign-in did not complete: {}", refusal(&e).0))?;
    store_new(account, &r).await
}

/// `auth login --browser`: the authorization code grant with PKCE (RFC
/// 7636) and a loopback redirect URI, for providers whose device grant
/// does not offer the mail scopes (Google). No server listens there: the
/// browser's failed visit to the redirect URI shows it in the address
/// bar, and the user pastes that URL here (works over SSH, from any
/// machine's browser). The `state` in it must be the one sent.
pub async fn login_browser(
    account: &OAuthAccount,
    out: &mut dyn Write,
    input: &mut dyn std::io::BufRead,
) -> Result<TokenFile> {
    use oauth2::{AuthUrl, AuthorizationCode, CsrfToken, PkceCodeChallenge, RedirectUrl};
    let Some(auth_url) = &account.authorization_url else {
        anyhow::bail!(
            "account {} has no authorization_url: the browser sign-in needs one",
            account.name
        );
    };
    let http = http_client(account)?;
    let client = oauth_client(account)?
        .set_auth_uri(AuthUrl::new(auth_url.clone()).context("authorization_url")?)
        .set_redirect_uri(RedirectUrl::new(account.redirect_uri.clone()).context("redirect_uri")?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(account.scopes.iter().map(|s| Scope::new(s.clone())))
        .set_pkce_challenge(challenge);
    if account.provider == "google" {
        // Google gives a refresh token only for offline access, and again
        // on a second sign-in only with a new consent.
        request = request
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent");
    }
    let (url, state) = request.url();
    writeln!(
        out,
        "To sign in account {}, open this URL in any browser and sign in as the mailbox's owner or delegate:\n\n{url}\n",
        account.name
    )?;
    writeln!(
        out,
        "The browser then fails to open {} (nothing listens there): copy the whole address from its address bar and paste it here:",
        account.redirect_uri
    )?;
    out.flush()?;
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("Reading the pasted address")?;
    let code = code_from_redirect(line.trim(), state.secret())?;
    let r = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .map_err(|e| anyhow!("the code exchange failed: {}", refusal(&e).0))?;
    store_new(account, &r).await
}

/// The code in the address the provider redirected the browser to, after
/// checking its `state` (a pasted address of another sign-in is refused).
fn code_from_redirect(pasted: &str, state: &str) -> Result<String> {
    let query = pasted
        .split_once('?')
        .map_or(pasted, |(_, q)| q)
        .split('#')
        .next()
        .unwrap_or_default();
    let pairs: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x/?{query}"))
        .context("Not an address")?
        .query_pairs()
        .into_owned()
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(e) = get("error") {
        anyhow::bail!(
            "the provider refused the sign-in: {e}{}",
            get("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
    }
    if get("state").as_deref() != Some(state) {
        anyhow::bail!(
            "the pasted address is not of this sign-in (its state differs); run auth login again"
        );
    }
    get("code").context("the pasted address carries no code")
}

/// Stores the tokens of a new sign-in, replacing any before.
async fn store_new(
    account: &OAuthAccount,
    r: &oauth2::basic::BasicTokenResponse,
) -> Result<TokenFile> {
    let now = Utc::now();
    let access_token = r.access_token().secret().clone();
    let t = TokenFile {
        account: account.name.clone(),
        client_id: account.client_id.clone(),
        token_url: account.token_url.clone(),
        owner: owner_of(&access_token),
        scopes: r
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_else(|| account.scopes.clone()),
        access_expires_at: expiry(now, r.expires_in()),
        access_token,
        refresh_token: r.refresh_token().map(|t| t.secret().clone()),
        obtained_at: now,
        refreshed_at: None,
        refresh_failures: 0,
        last_error: None,
    };
    let _lock = lock(account).await?;
    write(account, &t)?;
    Ok(t)
}

/// One account's line for `auth status` and `status`, and whether it is
/// usable (signed in, no refused refresh). Shows no token.
pub fn describe(account: &OAuthAccount, now: DateTime<Utc>) -> (String, bool) {
    let head = format!("{} ({})", account.name, account.provider);
    let t = match read(account) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return (
                format!(
                    "{head}: not signed in; run `supportdesk auth login {}`",
                    account.name
                ),
                false,
            );
        }
        Err(e) => return (format!("{head}: {e:#}"), false),
    };
    let when = |at: DateTime<Utc>| at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let mut parts = vec![format!(
        "signed in {} as {}",
        when(t.obtained_at),
        t.owner.as_deref().unwrap_or("(owner not in the token)")
    )];
    parts.push(format!("scopes {}", t.scopes.join(" ")));
    parts.push(match t.access_expires_at {
        Some(at) if at > now => format!(
            "access token valid until {} ({} min)",
            when(at),
            (at - now).num_minutes()
        ),
        Some(at) => format!("access token expired {} (renewed at next use)", when(at)),
        None => "access token without an expiry".into(),
    });
    parts.push(
        if t.refresh_token.is_some() {
            "refresh token held"
        } else {
            "no refresh token"
        }
        .into(),
    );
    if let Some(at) = t.refreshed_at {
        parts.push(format!("last refreshed {}", when(at)));
    }
    if t.refresh_failures > 0 {
        parts.push(format!("{} failed refreshes", t.refresh_failures));
    }
    let mut ok = true;
    if let Some(f) = &t.last_error {
        if f.refused {
            ok = false;
            parts.push(format!(
                "REFUSED by the provider {}: {}; run `supportdesk auth login {}`",
                when(f.at),
                f.error,
                account.name
            ));
        } else {
            parts.push(format!(
                "last refresh failed {} (endpoint unavailable): {}",
                when(f.at),
                f.error
            ));
        }
    }
    if t.client_id != account.client_id || t.token_url != account.token_url {
        ok = false;
        parts.push(format!(
            "issued to another client or provider than the config names; run `supportdesk auth login {}`",
            account.name
        ));
    }
    (format!("{head}: {}", parts.join("; ")), ok)
}

/// The SASL initial response presenting `token` for `user` (RFC 7628
/// OAUTHBEARER, or Google's and Microsoft's XOAUTH2), unencoded.
pub fn sasl_response(mechanism: Sasl, user: &str, host: &str, port: u16, token: &str) -> String {
    match mechanism {
        Sasl::XOAuth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01"),
        // gs2 header: no channel binding, authzid = the login user.
        Sasl::OAuthBearer => format!(
            "n,a={},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01",
            user.replace('=', "=3D").replace(',', "=2C")
        ),
    }
}

/// What a client answers to the server's error challenge (RFC 7628 3.2.3:
/// a single ^A for OAUTHBEARER; XOAUTH2 takes an empty response).
pub fn sasl_abort(mechanism: Sasl) -> &'static [u8] {
    match mechanism {
        Sasl::XOAuth2 => b"",
        Sasl::OAuthBearer => b"\x01",
    }
}

/// The mechanism's SASL name.
pub fn sasl_name(mechanism: Sasl) -> &'static str {
    match mechanism {
        Sasl::XOAuth2 => "XOAUTH2",
        Sasl::OAuthBearer => "OAUTHBEARER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_responses_are_the_rfc_s() {
        assert_eq!(
            sasl_response(Sasl::XOAuth2, "s@x.test", "imap.x", 993, "T0k"),
            "user=s@x.test\x01auth=Bearer T0k\x01\x01"
        );
        // RFC 7628 section 4.1's example, with an authzid to escape.
        assert_eq!(
            sasl_response(
                Sasl::OAuthBearer,
                "a=b,c@x.test",
                "server.example.com",
                143,
                "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
            ),
            "n,a=a=3Db=2Cc@x.test,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
        assert_eq!(sasl_abort(Sasl::OAuthBearer), b"\x01");
        assert_eq!(sasl_abort(Sasl::XOAuth2), b"");
    }

    #[test]
    fn the_owner_is_read_from_a_jwt_and_nothing_else() {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"1234","upn":"agent@contoso.test","exp":1}"#);
        assert_eq!(
            owner_of(&format!("eyJhbGciOiJub25lIn0.{claims}.sig")).as_deref(),
            Some("agent@contoso.test")
        );
        let sub = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"agent"}"#);
        assert_eq!(owner_of(&format!("h.{sub}.s")).as_deref(), Some("agent"));
        // Google's opaque tokens, garbage: no owner, no panic.
        assert_eq!(owner_of("ya29.a0AfB_byC-opaque"), None);
        assert_eq!(owner_of("a.!!!.c"), None);
        assert_eq!(owner_of(""), None);
    }

    #[test]
    fn the_pasted_redirect_gives_its_code_only_for_this_sign_in() {
        let ok = "http://localhost:8400/?code=C0de%2Fx&state=S1&session_state=z";
        assert_eq!(code_from_redirect(ok, "S1").unwrap(), "C0de/x");
        // The query alone, as some users copy it.
        assert_eq!(
            code_from_redirect("code=abc&state=S1", "S1").unwrap(),
            "abc"
        );
        let e = code_from_redirect(ok, "S2").unwrap_err().to_string();
        assert!(e.contains("state differs"), "{e}");
        let e = code_from_redirect(
            "http://localhost:8400/?error=access_denied&error_description=User+said+no&state=S1",
            "S1",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("access_denied: User said no"), "{e}");
        assert!(code_from_redirect("http://localhost:8400/?state=S1", "S1").is_err());
        assert!(code_from_redirect("", "S1").is_err());
    }

    #[test]
    fn the_debug_form_holds_no_token() {
        let t = TokenFile {
            account: "m365".into(),
            client_id: "c".into(),
            token_url: "https://t".into(),
            owner: None,
            scopes: vec![],
            access_token: "SECRET-ACCESS".into(),
            access_expires_at: None,
            refresh_token: Some("SECRET-REFRESH".into()),
            obtained_at: Utc::now(),
            refreshed_at: None,
            refresh_failures: 0,
            last_error: None,
        };
        let d = format!("{t:?}");
        assert!(!d.contains("SECRET"), "{d}");
    }
}
