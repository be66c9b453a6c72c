//! Settings: built-in defaults, then an optional file, then `BROKER__*` environment variables.

mod checks;
mod cookie;

pub use checks::{SettingFinding, Severity};
pub use cookie::{BindingCookie, InstanceHosts};

use crate::domain::Subdomains;
use config::{Config, Environment, File};
use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Everything the broker reads at start-up.
#[cfg_attr(test, derive(Serialize))]
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
#[cfg_attr(test, derive(Serialize))]
#[derive(Clone, Debug, Deserialize)]
pub struct AuditSettings {
    /// Entries older than this many days are removed by the sweeper; 0 keeps them all.
    pub keep_days: u64,
}

/// Settings for running beside cozy-stack, authenticating its clients.
#[cfg_attr(test, derive(Serialize))]
#[derive(Clone, Default, Deserialize)]
pub struct CozySettings {
    /// cozy-stack's Redis `sessions` database (`redis://host:6379/3`), to spend the
    /// session codes the flagship app sends; without it such a code is refused.
    pub redis_url: Option<String>,
    /// The scheme of instance and app URLs: `https`, or `http` for development stacks.
    #[serde(default)]
    pub instance_scheme: crate::domain::Scheme,
    /// cozy-stack's own address (`http://cozy-stack:8080`): requests for account types
    /// the broker does not run (Budget Insight's) are handed to it unchanged.
    #[serde(default)]
    pub stack_url: String,
    /// Per context (`default` for instances without one), cozy-stack's
    /// `authentication.<context>.oidc` members that let an `id_token` log `start` in.
    #[serde(default)]
    pub oidc: std::collections::BTreeMap<String, OidcContext>,
}

/// What cozy-stack's `checkIDToken` reads of a context's OIDC configuration.
#[cfg_attr(test, derive(Serialize))]
#[derive(Clone, Debug, Default, Deserialize)]
pub struct OidcContext {
    /// Whether an `id_token` may log `start` in (`allow_oauth_token`).
    #[serde(default)]
    pub allow_oauth_token: bool,
    /// The identity provider's key set (`id_token_jwk_url`).
    #[serde(default)]
    pub id_token_jwk_url: String,
}

impl CozySettings {
    /// The key set of each context that lets an `id_token` log `start` in (those
    /// allowing it with a key-set URL that parses; `check` reports the others).
    pub fn id_token_keys(&self) -> std::collections::HashMap<String, url::Url> {
        self.oidc
            .iter()
            .filter(|(_, c)| c.allow_oauth_token)
            .filter_map(|(name, c)| {
                Some((name.clone(), url::Url::parse(&c.id_token_jwk_url).ok()?))
            })
            .collect()
    }

    /// The Redis URL, when set and non-empty.
    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref().filter(|u| !u.trim().is_empty())
    }
}

/// Webhook settings.
#[cfg_attr(test, derive(Serialize))]
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
#[cfg_attr(test, derive(Serialize))]
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
    /// Share (percent) of a token's remaining life that passes before the refresher
    /// renews it, whatever the margin.
    pub lifetime_share_percent: u8,
    /// Shortest time between planning a refresh and making it, in seconds.
    pub floor_secs: u64,
    /// A refresh asked within this many seconds of the last one answers the tokens it
    /// stored without calling the provider (`force=true` still calls it); 0 turns it off.
    pub fresh_window_secs: u64,
}

/// Rate limit settings.
#[cfg_attr(test, derive(Serialize))]
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
#[cfg_attr(test, derive(Serialize))]
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

/// A setting's built-in value.
#[derive(Debug, Clone, Copy)]
pub enum DefaultValue {
    /// A string.
    Text(&'static str),
    /// A number.
    Number(i64),
    /// A boolean.
    Flag(bool),
    /// None: the feature it enables is off.
    Unset,
}

impl std::fmt::Display for DefaultValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DefaultValue::Text("") => f.write_str("empty"),
            DefaultValue::Text(v) => write!(f, "`{v}`"),
            DefaultValue::Number(v) => write!(f, "`{v}`"),
            DefaultValue::Flag(v) => write!(f, "`{v}`"),
            DefaultValue::Unset => f.write_str("unset"),
        }
    }
}

/// One setting as documented: its key, built-in value and meaning.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Dotted key (`couchdb.url`); the environment variable is `BROKER__COUCHDB__URL`.
    pub key: &'static str,
    /// Built-in value.
    pub default: DefaultValue,
    /// What it does, in Markdown.
    pub meaning: &'static str,
}

impl Setting {
    /// The environment variable that sets it.
    pub fn env_var(&self) -> String {
        format!(
            "BROKER__{}",
            self.key.replace('.', "__").to_ascii_uppercase()
        )
    }
}

/// Every setting: the defaults `Settings::load` starts from and the documented table are
/// this one list (a unit test holds it to the fields of [`Settings`]).
#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    Setting { key: "listen", default: DefaultValue::Text("127.0.0.1:8080"), meaning: "address to listen on" },
    Setting { key: "public_url", default: DefaultValue::Text("http://127.0.0.1:8080"), meaning: "base of the default redirect URI `{public_url}/accounts/{type}/redirect`" },
    Setting { key: "couchdb.url", default: DefaultValue::Unset, meaning: "`http://user:password@host:5984`; unset or empty: the embedded store" },
    Setting { key: "couchdb.timeout_secs", default: DefaultValue::Number(10), meaning: "time allowed to one CouchDB request" },
    Setting { key: "couchdb.db_prefix", default: DefaultValue::Text(""), meaning: "prepended to every database name (several brokers on one CouchDB); empty keeps cozy-stack's names" },
    Setting { key: "data_dir", default: DefaultValue::Text("./data"), meaning: "embedded store directory" },
    Setting { key: "admin_token", default: DefaultValue::Unset, meaning: "bearer token of `/admin/*`, at least 32 characters (`openssl rand -hex 32`); the admin API is off without it" },
    Setting { key: "subdomains", default: DefaultValue::Text("nested"), meaning: "`nested` (`home.alice.mycozy.cloud`) or `flat` (`alice-home.mycozy.cloud`)" },
    Setting { key: "log_format", default: DefaultValue::Text("text"), meaning: "`text` or `json`; the level comes from `RUST_LOG` (default `info`)" },
    Setting { key: "provider_timeout_secs", default: DefaultValue::Number(15), meaning: "total time allowed to a token endpoint" },
    Setting { key: "provider_connect_timeout_secs", default: DefaultValue::Number(5), meaning: "time allowed to connect to a token endpoint" },
    Setting { key: "flow_ttl_secs", default: DefaultValue::Number(900), meaning: "lifetime of a flow state" },
    Setting { key: "session_code_ttl_secs", default: DefaultValue::Number(600), meaning: "lifetime of a session code" },
    Setting { key: "flow_binding", default: DefaultValue::Flag(true), meaning: "bind each flow to the starting browser with a cookie" },
    Setting { key: "flow_binding_cookie_domain", default: DefaultValue::Text(""), meaning: "parent domain of the binding cookie when start and redirect are on two hosts under it; empty: inferred at start-up from `public_url` and the instances' domains when unambiguous, else host-only" },
    Setting { key: "allow_insecure_provider_urls", default: DefaultValue::Flag(false), meaning: "development only: accept loopback `http` `provider_url`s" },
    Setting { key: "provider_private_hosts", default: DefaultValue::Text(""), meaning: "provider host names allowed to resolve to private addresses (an in-house identity provider), comma-separated" },
    Setting { key: "rate_limit.per_minute", default: DefaultValue::Number(120), meaning: "requests per minute per client address, for each of start, redirect and `/admin`; `0` turns limits off" },
    Setting { key: "rate_limit.burst", default: DefaultValue::Number(30), meaning: "requests a client may make at once before the rate applies" },
    Setting { key: "rate_limit.trusted_proxies", default: DefaultValue::Text(""), meaning: "addresses or CIDR blocks of the proxies in front of the broker, comma-separated; from them the client is the right-most `X-Forwarded-For` hop they did not add (`Forwarded` is never read); IPv6 clients are limited per /64" },
    Setting { key: "rate_limit.trust_forwarded_for", default: DefaultValue::Flag(false), meaning: "replaced by `trusted_proxies`: `true` without them is refused at start-up, since it let any client pick its own address" },
    Setting { key: "encryption_keys", default: DefaultValue::Unset, meaning: "keys sealing secrets at rest: `id:base64-of-32-bytes`, comma-separated, newest first (`oauth-broker keys generate ID`)" },
    Setting { key: "encrypt_refresh_tokens", default: DefaultValue::Flag(false), meaning: "also seal the refresh tokens stored in accounts (needs `encryption_keys`)" },
    Setting { key: "refresh.enabled", default: DefaultValue::Flag(true), meaning: "run the background refresher in this process" },
    Setting { key: "refresh.interval_secs", default: DefaultValue::Number(30), meaning: "how often it looks for due accounts" },
    Setting { key: "refresh.margin_secs", default: DefaultValue::Number(600), meaning: "default refresh margin before expiry (an account type may set its own)" },
    Setting { key: "refresh.idle_secs", default: DefaultValue::Number(86_400), meaning: "default longest time between refreshes, also used when the expiry is unknown" },
    Setting { key: "refresh.lifetime_share_percent", default: DefaultValue::Number(75), meaning: "the refresher renews a token no sooner than this share of its remaining life, whatever the margin: a token living less than the margin (Keycloak's 300 s) is renewed about once per lifetime, not on every pass" },
    Setting { key: "refresh.floor_secs", default: DefaultValue::Number(60), meaning: "shortest time between planning a refresh and making it" },
    Setting { key: "refresh.lease_secs", default: DefaultValue::Number(0), meaning: "refresh lease lifetime; `0`: twice the provider timeout plus 5 s" },
    Setting { key: "refresh.fresh_window_secs", default: DefaultValue::Number(5), meaning: "a refresh asked this soon after the last answers the stored tokens without a provider call (while the access token outlives the window; `?force=true` refreshes anyway); `0` turns it off" },
    Setting { key: "webhooks.url", default: DefaultValue::Unset, meaning: "endpoint for account events" },
    Setting { key: "webhooks.secret", default: DefaultValue::Text(""), meaning: "HMAC-SHA256 key of `X-Broker-Signature`; at least 16 characters, required when `webhooks.url` is set" },
    Setting { key: "webhooks.retry_base_ms", default: DefaultValue::Number(1000), meaning: "first retry delay; doubles each attempt" },
    Setting { key: "webhooks.concurrency", default: DefaultValue::Number(8), meaning: "deliveries under way at once (one account's events still one at a time, in order)" },
    Setting { key: "cozy.instance_scheme", default: DefaultValue::Text("https"), meaning: "scheme of the instances' and apps' URLs (the app the browser goes back to, the default redirect URI): `https`, or `http` beside a development cozy-stack" },
    Setting { key: "cozy.oidc", default: DefaultValue::Unset, meaning: "beside cozy-stack, per context (`[cozy.oidc.<context>]`, `default` for instances without one): `allow_oauth_token = true` and `id_token_jwk_url`, as in cozy-stack's `authentication.<context>.oidc`, let an app start a flow with `?id_token=` (cozy-stack's `checkIDToken`); empty: such a token is refused" },
    Setting { key: "cozy.stack_url", default: DefaultValue::Text(""), meaning: "beside cozy-stack: its own address (`http://cozy-stack:8080`); requests under `/accounts/<type>/` for types the broker does not run (Budget Insight's `bi_*` grant modes) are handed to it unchanged, so one nginx rule sends all of `/accounts/` to the broker; empty: such requests are refused" },
    Setting { key: "cozy.redis_url", default: DefaultValue::Text(""), meaning: "beside cozy-stack: its Redis `sessions` database (`redis://redis:6379/3`), to spend the session codes the flagship app sends; empty: such a code is refused" },
    Setting { key: "audit.keep_days", default: DefaultValue::Number(365), meaning: "audit entries older than this are removed by the sweeper; `0` keeps them all" },
];

/// Log line format.
#[cfg_attr(test, derive(Serialize))]
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
        let mut builder = Config::builder();
        for setting in SETTINGS {
            builder = match setting.default {
                DefaultValue::Text(v) => builder.set_default(setting.key, v)?,
                DefaultValue::Number(v) => builder.set_default(setting.key, v)?,
                DefaultValue::Flag(v) => builder.set_default(setting.key, v)?,
                DefaultValue::Unset => builder,
            };
        }
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

    /// The dotted keys of a serialized value's leaves.
    fn leaves(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v.as_object() {
            // An empty table (`cozy.oidc` by default) is one setting.
            Some(o) if o.is_empty() => out.push(prefix.to_owned()),
            Some(o) => {
                for (k, v) in o {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&key, v, out);
                }
            }
            None => out.push(prefix.to_owned()),
        }
    }

    #[test]
    fn the_settings_table_names_every_setting_once() {
        let loaded = serde_json::to_value(Settings::load(None).unwrap()).unwrap();
        let mut fields = Vec::new();
        leaves("", &loaded, &mut fields);
        fields.sort();
        let mut table: Vec<String> = SETTINGS.iter().map(|s| s.key.to_owned()).collect();
        table.sort();
        assert_eq!(fields, table);
    }

    #[test]
    fn defaults_select_the_embedded_store() {
        let s = Settings::load(None).unwrap();
        assert_eq!(s.flow_ttl_secs, 900);
        assert!(s.couchdb_url().is_none() || std::env::var("BROKER__COUCHDB__URL").is_ok());
    }
}
