//! Settings: built-in defaults, then an optional file, then `BROKER__*` environment variables.

use crate::domain::Subdomains;
use config::{Config, Environment, File};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Everything the broker reads at start-up.
#[derive(Clone, Deserialize)]
pub struct Settings {
    /// Address to listen on (`BROKER__LISTEN`).
    pub listen: String,
    /// Public base URL; the default redirect URI is `{public_url}/accounts/{type}/redirect`.
    pub public_url: String,
    /// CouchDB connection; without a URL the embedded store is used.
    pub couchdb: CouchSettings,
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// Bearer token for `/admin/*`; the admin API is off without it.
    pub admin_token: Option<String>,
    /// App host scheme: `nested` (`home.alice.example`) or `flat` (`alice-home.example`).
    pub subdomains: Subdomains,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Total time allowed to a token endpoint, in seconds.
    pub provider_timeout_secs: u64,
    /// Time allowed to connect to a token endpoint, in seconds.
    pub provider_connect_timeout_secs: u64,
    /// Lifetime of a flow state, in seconds (15 minutes).
    pub flow_ttl_secs: u64,
    /// Lifetime of a session code, in seconds (10 minutes).
    pub session_code_ttl_secs: u64,
    /// Bind each flow to the browser that started it with a cookie (on by default).
    pub flow_binding: bool,
    /// The parent domain the binding cookie is scoped to, when start and redirect are
    /// served on different hosts under it (`mycozy.cloud` for start on
    /// `alice.mycozy.cloud` and redirect on `oauthcallback.mycozy.cloud`); empty keeps the
    /// cookie to the start host.
    pub flow_binding_cookie_domain: String,
    /// Development only: accept `http://localhost:PORT` and `http://127.0.0.1:PORT` as a
    /// start's `provider_url`, whatever the account type's patterns.
    pub allow_insecure_provider_urls: bool,
    /// Provider host names allowed to resolve to private addresses (an in-house identity
    /// provider), comma-separated; every other name must resolve to public addresses.
    pub provider_private_hosts: String,
    /// Per-client limits on start, redirect and the admin API.
    pub rate_limit: RateLimitSettings,
    /// Keys sealing secrets at rest, `id:base64-of-32-bytes`, comma-separated, newest first.
    pub encryption_keys: Option<String>,
    /// Also seal the refresh tokens stored in accounts (konnectors read only access tokens).
    pub encrypt_refresh_tokens: bool,
    /// The background refresher.
    pub refresh: RefreshSettings,
    /// Where account events are sent.
    pub webhooks: WebhookSettings,
    /// Beside cozy-stack: what the broker shares with it.
    pub cozy: CozySettings,
    /// How long the audit trail is kept.
    pub audit: AuditSettings,
}

/// Audit trail retention.
#[derive(Clone, Debug, Deserialize)]
pub struct AuditSettings {
    /// Entries older than this many days are removed by the sweeper; 0 keeps them all.
    pub keep_days: u64,
}

/// Settings for running beside cozy-stack, authenticating its clients.
#[derive(Clone, Default, Deserialize)]
pub struct CozySettings {
    /// cozy-stack's Redis `sessions` database (`redis://host:6379/3`), to spend the
    /// session codes the flagship app sends; without it such a code is refused.
    pub redis_url: Option<String>,
}

impl CozySettings {
    /// The Redis URL, when set and non-empty.
    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref().filter(|u| !u.trim().is_empty())
    }
}

/// Webhook settings.
#[derive(Clone, Deserialize)]
pub struct WebhookSettings {
    /// Endpoint receiving `account.created`, `refresh.failed`, `account.reconnected`.
    pub url: Option<String>,
    /// HMAC-SHA256 key of the `X-Broker-Signature` header.
    pub secret: String,
    /// First retry delay in milliseconds; doubles on each attempt.
    pub retry_base_ms: u64,
    /// Deliveries under way at once (events about one account still go one at a time,
    /// in order).
    pub concurrency: usize,
}

/// Background refresher settings.
#[derive(Clone, Debug, Deserialize)]
pub struct RefreshSettings {
    /// Run the background refresher in this process.
    pub enabled: bool,
    /// How often it looks for due accounts, in seconds.
    pub interval_secs: u64,
    /// Default time before expiry at which a token is refreshed (account types may override).
    pub margin_secs: u64,
    /// Default longest time between refreshes, also used when the expiry is unknown.
    pub idle_secs: u64,
    /// How long a refresh lease lasts; 0 means twice the provider timeout plus 5 s.
    pub lease_secs: u64,
    /// A refresh asked within this many seconds of the last one answers the tokens it
    /// stored without calling the provider (`force=true` still calls it); 0 turns it off.
    pub fresh_window_secs: u64,
}

/// Rate limit settings.
#[derive(Clone, Debug, Deserialize)]
pub struct RateLimitSettings {
    /// Requests per minute per client address and route group; 0 turns limits off.
    pub per_minute: u32,
    /// Requests a client may make at once before the rate applies.
    pub burst: u32,
    /// Replaced by `trusted_proxies`; `true` without them is refused at start-up.
    pub trust_forwarded_for: bool,
    /// Addresses or CIDR blocks of the proxies in front of the broker, comma-separated:
    /// from them, the client is the right-most `X-Forwarded-For` hop they did not add.
    pub trusted_proxies: String,
}

/// CouchDB settings.
#[derive(Clone, Deserialize)]
pub struct CouchSettings {
    /// `http://user:password@host:5984`; empty or absent selects the embedded store.
    pub url: Option<String>,
    /// Time allowed to one CouchDB request, in seconds.
    pub timeout_secs: u64,
    /// Prepended to every database name; empty (the default) keeps cozy-stack's names.
    /// Lets several brokers (or test runs) share one CouchDB without seeing each other.
    pub db_prefix: String,
}

/// Log line format.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("couchdb_url", &self.couchdb_url().map(redact_url))
            .field("data_dir", &self.data_dir)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[redacted]"),
            )
            .field("subdomains", &self.subdomains)
            .field("cozy_redis_url", &self.cozy.redis_url().map(redact_url))
            .finish_non_exhaustive()
    }
}

/// A URL with its password hidden, for logs.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

impl Settings {
    /// Loads settings; `file` is an optional TOML file.
    pub fn load(file: Option<&Path>) -> Result<Settings, config::ConfigError> {
        let mut builder = Config::builder()
            .set_default("listen", "127.0.0.1:8080")?
            .set_default("public_url", "http://127.0.0.1:8080")?
            .set_default("data_dir", "./data")?
            .set_default("subdomains", "nested")?
            .set_default("log_format", "text")?
            .set_default("provider_timeout_secs", 15)?
            .set_default("provider_connect_timeout_secs", 5)?
            .set_default("flow_ttl_secs", 900)?
            .set_default("session_code_ttl_secs", 600)?
            .set_default("flow_binding", true)?
            .set_default("flow_binding_cookie_domain", "")?
            .set_default("allow_insecure_provider_urls", false)?
            .set_default("provider_private_hosts", "")?
            .set_default("rate_limit.per_minute", 120)?
            .set_default("rate_limit.burst", 30)?
            .set_default("rate_limit.trust_forwarded_for", false)?
            .set_default("rate_limit.trusted_proxies", "")?
            .set_default("encrypt_refresh_tokens", false)?
            .set_default("refresh.enabled", true)?
            .set_default("refresh.interval_secs", 30)?
            .set_default("refresh.margin_secs", 600)?
            .set_default("refresh.idle_secs", 86_400)?
            .set_default("refresh.lease_secs", 0)?
            .set_default("refresh.fresh_window_secs", 5)?
            .set_default("webhooks.secret", "")?
            .set_default("webhooks.retry_base_ms", 1000)?
            .set_default("webhooks.concurrency", 8)?
            .set_default("audit.keep_days", 365)?
            .set_default("couchdb.timeout_secs", 10)?
            .set_default("cozy.redis_url", "")?
            .set_default("couchdb.db_prefix", "")?;
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).required(true));
        }
        builder
            .add_source(
                Environment::with_prefix("BROKER")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()
    }

    /// The CouchDB URL, when one is set and non-empty.
    pub fn couchdb_url(&self) -> Option<&str> {
        self.couchdb.url.as_deref().filter(|u| !u.trim().is_empty())
    }

    /// The admin token, when one is set and non-empty.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref().filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_admin_token_and_couchdb_password() {
        let mut s = Settings::load(None).unwrap();
        s.admin_token = Some("topsecret".into());
        s.couchdb.url = Some("http://admin:hunter2@db:5984".into());
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn defaults_select_the_embedded_store() {
        let s = Settings::load(None).unwrap();
        assert_eq!(s.flow_ttl_secs, 900);
        assert!(s.couchdb_url().is_none() || std::env::var("BROKER__COUCHDB__URL").is_ok());
    }
}
