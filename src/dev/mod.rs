//! Konnector developer mode: a token in `konnector-dev-config.json`, no CouchDB, no broker.
//!
//! The same account-type parsing, authorization URL and token requests as the server, run
//! from the command line against a loopback redirect.

pub(crate) mod konnector_config;
pub(crate) mod loopback;

use crate::domain::account::TokenGrant;
use crate::domain::AccountType;
use crate::oauth::authorize::{authorization_url, AuthorizeParams};
use crate::oauth::provider::{ProviderClient, ProviderError};
use crate::oauth::provider_request;
pub(crate) use konnector_config::{ConfigError, KonnectorConfig};
use std::net::TcpListener;
use std::time::Duration;
use url::Url;

/// Why a dev command failed; each says what to do next.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DevError {
    /// The dev config could not be read or written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The account type cannot be used for a login from the command line.
    #[error("account type `{0}`: {1}")]
    Unusable(String, &'static str),
    /// The redirect URI is not a loopback `http` URL.
    #[error("--redirect-uri `{0}`: must be http://127.0.0.1, http://[::1] or http://localhost with a port")]
    NotLoopback(String),
    /// The loopback port could not be opened.
    #[error("cannot listen on {0}: {1} (pick another with --redirect-uri)")]
    Listen(String, std::io::Error),
    /// Nobody came back from the provider in time.
    #[error("no redirect came back within {0} s; run the command again")]
    Timeout(u64),
    /// The person or the provider refused.
    #[error("the provider refused the authorization: {0}")]
    Refused(String),
    /// The provider failed or refused the token request.
    #[error("token request to {endpoint} failed: {cause}{hint}")]
    Provider {
        /// Token endpoint, without query.
        endpoint: String,
        /// What went wrong.
        cause: ProviderError,
        /// What to do about it.
        hint: &'static str,
    },
    /// There is no refresh token to use.
    #[error("{0}: no fields.refresh_token to refresh with; run `oauth-broker dev login` again")]
    NoRefreshToken(String),
    /// The access token expired and cannot be refreshed.
    #[error("{0}: the access token expired and there is no refresh token; run `oauth-broker dev login` again")]
    Expired(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

/// How `login` runs.
#[derive(Debug, Clone)]
pub(crate) struct LoginOptions {
    /// Loopback redirect URI; port 0 picks a free port.
    pub redirect_uri: Url,
    /// Scope asked for; the type's default when empty.
    pub scope: String,
    /// Account to suggest to the provider (OpenID `login_hint`); none when empty.
    pub login_hint: String,
    /// How long to wait for the redirect.
    pub timeout: Duration,
    /// Try to open a browser.
    pub open_browser: bool,
    /// Provider request timeout.
    pub provider_timeout: Duration,
}

/// A redirect URI the provider will send the browser back to, on this machine only.
pub(crate) fn loopback_redirect(raw: &str) -> Result<Url, DevError> {
    let bad = || DevError::NotLoopback(raw.to_owned());
    let url = Url::parse(raw).map_err(|_| bad())?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if url.scheme() != "http"
        || !loopback
        || url.port().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad());
    }
    Ok(url)
}

fn provider(timeout: Duration) -> Result<ProviderClient, DevError> {
    ProviderClient::new(
        timeout.min(Duration::from_secs(10)),
        timeout,
        crate::domain::Clock::system(),
        // A developer's own machine: the provider may well be a local one.
        crate::oauth::resolver::DnsPolicy {
            allow_loopback: true,
            ..Default::default()
        },
    )
    .map_err(|e| DevError::Client(e.to_string()))
}

fn hint(e: &ProviderError) -> &'static str {
    match e {
        ProviderError::OAuth { error, .. } if error == "invalid_client" => {
            " (check the client id and secret, and the account type's token_mode)"
        }
        e if e.is_invalid_token() => " (the grant is gone: run `oauth-broker dev login` again)",
        ProviderError::Timeout | ProviderError::Unreachable => {
            " (is the provider reachable from this machine?)"
        }
        _ => "",
    }
}

async fn send(
    at: &AccountType,
    req: Option<provider_request::ProviderRequest>,
    timeout: Duration,
) -> Result<TokenGrant, DevError> {
    let req = req.ok_or(DevError::Unusable(
        at.id.clone(),
        "it has no token_endpoint",
    ))?;
    let mut endpoint = req.url.clone();
    endpoint.set_query(None);
    provider(timeout)?
        .request_token(&req)
        .await
        .map_err(|cause| DevError::Provider {
            endpoint: endpoint.to_string(),
            hint: hint(&cause),
            cause,
        })
}

/// Runs the authorization code flow through a browser and a loopback redirect, and writes
/// the tokens into `config`; `show` is told the URL to open.
pub(crate) async fn login(
    at: &AccountType,
    config: &mut KonnectorConfig,
    opts: &LoginOptions,
    show: impl FnOnce(&Url),
) -> Result<(), DevError> {
    if !at.grant_mode.is_some_and(|m| {
        matches!(
            m,
            crate::domain::GrantMode::AuthorizationCode
                | crate::domain::GrantMode::AuthorizationCodeWithSecret
        )
    }) {
        return Err(DevError::Unusable(
            at.id.clone(),
            "dev login needs grant_mode `authorization_code`",
        ));
    }
    if at.token_endpoint.is_none() {
        return Err(DevError::Unusable(
            at.id.clone(),
            "it has no token_endpoint",
        ));
    }
    let mut redirect = opts.redirect_uri.clone();
    let addr = format!(
        "{}:{}",
        redirect.host_str().unwrap_or("127.0.0.1"),
        redirect.port().unwrap_or(0)
    );
    let listener =
        TcpListener::bind(addr.as_str()).map_err(|e| DevError::Listen(addr.clone(), e))?;
    let port = listener
        .local_addr()
        .map_err(|e| DevError::Listen(addr.clone(), e))?
        .port();
    redirect
        .set_port(Some(port))
        .map_err(|()| DevError::NotLoopback(redirect.to_string()))?;

    let state = crate::domain::secret::random_hex(16);
    let pkce = at.pkce.then(oauth2::PkceCodeChallenge::new_random_sha256);
    let url = authorization_url(
        at,
        &AuthorizeParams {
            scope: &opts.scope,
            redirect_uri: redirect.as_str(),
            state: &state,
            code_challenge: pkce.as_ref().map(|(c, _)| c.as_str()),
            login_hint: &opts.login_hint,
        },
    )
    .ok_or(DevError::Unusable(at.id.clone(), "it has no auth_endpoint"))?;
    show(&url);
    if opts.open_browser {
        open_browser(url.as_str());
    }

    let caught = loopback::catch(listener, redirect.path(), &state, opts.timeout)
        .await
        .map_err(|e| DevError::Listen(addr, e))?
        .ok_or(DevError::Timeout(opts.timeout.as_secs()))?;
    let code = match caught {
        loopback::Caught::Code(c) => oauth2::AuthorizationCode::new(c),
        loopback::Caught::Refused(e) => return Err(DevError::Refused(e)),
    };
    let req = provider_request::code_exchange(
        at,
        &provider_request::CodeExchange {
            code: &code,
            redirect_uri: redirect.as_str(),
            state: &state,
            nonce: "",
            code_verifier: pkce.as_ref().map(|(_, v)| v.secret().as_str()),
        },
    );
    let grant = send(at, req, opts.provider_timeout).await?;
    config.set_login(&grant);
    config.save()?;
    Ok(())
}

/// Refreshes the tokens in `config` with its refresh token, and saves them.
pub(crate) async fn refresh(
    at: &AccountType,
    config: &mut KonnectorConfig,
    timeout: Duration,
) -> Result<(), DevError> {
    let rt = config
        .refresh_token()
        .ok_or_else(|| DevError::NoRefreshToken(config.path().display().to_string()))?;
    let req = provider_request::refresh(at, &oauth2::RefreshToken::new(rt.to_owned()));
    let grant = send(at, req, timeout).await?;
    config.set_refresh(&grant);
    config.save()?;
    Ok(())
}

/// True when the access token must be refreshed before use: it expires within
/// `min_validity`. A token without a known expiry is taken as valid.
pub(crate) fn needs_refresh(config: &KonnectorConfig, min_validity: Duration) -> bool {
    config.access_token().is_none()
        || config.expires_at().is_some_and(|t| {
            t <= crate::domain::Clock::system().now().to_datetime()
                + chrono::Duration::from_std(min_validity).unwrap_or(chrono::Duration::MAX)
        })
}

/// A valid access token from `config`, refreshing first when `needs_refresh`.
pub(crate) async fn token(
    at: &AccountType,
    config: &mut KonnectorConfig,
    min_validity: Duration,
    timeout: Duration,
) -> Result<String, DevError> {
    if needs_refresh(config, min_validity) {
        if config.refresh_token().is_none() {
            return Err(DevError::Expired(config.path().display().to_string()));
        }
        refresh(at, config, timeout).await?;
    }
    config
        .access_token()
        .map(str::to_owned)
        .ok_or_else(|| DevError::Expired(config.path().display().to_string()))
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    // Best effort: the URL is printed anyway.
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_redirects_are_accepted() {
        for ok in [
            "http://127.0.0.1:8917/callback",
            "http://localhost:0/cb",
            "http://[::1]:9000/",
        ] {
            assert!(loopback_redirect(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://127.0.0.1:8917/callback",
            "http://example.org:8917/cb",
            "http://127.0.0.1/cb",
            "http://10.0.0.1:80/cb",
            "http://127.0.0.1:8917/cb?x=1",
        ] {
            assert!(loopback_redirect(bad).is_err(), "{bad}");
        }
    }
}
