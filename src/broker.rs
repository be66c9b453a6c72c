//! The broker's services, built once from settings and shared by handlers and tasks.

use crate::config::Settings;
use crate::domain::provider_url::ProviderUrl;
use crate::domain::sealed::Keyring;
use crate::domain::secret::random_hex;
use crate::domain::AccountType;
use crate::domain::Subdomains;
use crate::http::rate_limit::RateLimits;
use crate::metrics::Metrics;
use crate::oauth::ProviderClient;
use crate::refresh::LocalLocks;
use crate::registration::{registration_id, RegistrationError, Registrations};
use crate::store::account_types::AccountTypes;
use crate::store::accounts::Accounts;
use crate::store::couch::CouchStore;
use crate::store::credentials::Credentials;
use crate::store::embedded::EmbeddedStore;
use crate::store::flow_states::FlowStates;
use crate::store::instances::Instances;
use crate::store::instrumented::Instrumented;
use crate::store::leases::Leases;
use crate::store::schedule::Schedule;
use crate::store::{
    SharedStore, StoreError, ACCOUNT_TYPES_DB, BROKER_DBS, INSTANCES_DB, REFRESH_SCHEDULE_DB,
};
use crate::webhooks::Webhooks;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Services and settings every request needs.
pub struct Broker {
    /// The document store (instrumented).
    pub store: SharedStore,
    /// Request counts of the store.
    pub store_stats: Arc<Instrumented>,
    /// Prometheus collectors.
    pub metrics: Metrics,
    /// Cached account types.
    pub account_types: Arc<AccountTypes>,
    /// Instances.
    pub instances: Instances,
    /// Flow states.
    pub flows: FlowStates,
    /// Session codes and API tokens.
    pub credentials: Credentials,
    /// Konnector accounts.
    pub accounts: Accounts,
    /// HTTP client for token endpoints.
    pub provider: ProviderClient,
    /// Public base URL of the broker.
    pub public_url: Url,
    /// App host scheme.
    pub subdomains: Subdomains,
    /// Flow state lifetime.
    pub flow_ttl: Duration,
    /// Session code lifetime.
    pub session_code_ttl: Duration,
    /// Admin bearer token, if the admin API is on.
    pub admin_token: Option<String>,
    /// Whether flows are bound to the starting browser by a cookie.
    pub flow_binding: bool,
    /// Per-client request budgets.
    pub rate_limits: RateLimits,
    /// Cross-process refresh leases.
    pub leases: Leases,
    /// When each account is next refreshed.
    pub schedule: Schedule,
    /// In-process single flight of refreshes.
    pub refresh_locks: LocalLocks,
    /// This process's name as a lease owner.
    pub process_id: String,
    /// How long a refresh lease lasts: longer than any provider call can take.
    pub lease_ttl: Duration,
    /// Default refresh margin before expiry, in seconds.
    pub refresh_margin_secs: i64,
    /// Default longest time between refreshes, in seconds.
    pub refresh_idle_secs: i64,
    /// Account event notifications.
    pub webhooks: Webhooks,
    /// Clients registered with providers (RFC 7591).
    pub registrations: Registrations,
    /// Development only: loopback http `provider_url`s are accepted.
    pub insecure_provider_urls: bool,
}

/// Why the client of an account type cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A per-account type used without a provider.
    #[error("account type `{0}` connects to a server of the user's choice: give provider_url")]
    NoProvider(String),
    /// A provider given for a type that has a fixed one.
    #[error("account type `{0}` has a fixed provider and takes no provider_url")]
    FixedProvider(String),
    /// Registration failed.
    #[error(transparent)]
    Registration(#[from] RegistrationError),
}

/// Why the broker could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A setting is wrong.
    #[error("invalid setting: {0}")]
    Setting(String),
    /// The store is unreachable or refused to create a database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens the store the settings select: CouchDB when a URL is set, else the embedded one.
pub fn open_store(settings: &Settings) -> Result<SharedStore, StoreError> {
    Ok(match settings.couchdb_url() {
        Some(url) => Arc::new(CouchStore::new(
            url,
            Duration::from_secs(settings.couchdb.timeout_secs),
            &settings.couchdb.db_prefix,
        )?),
        None => Arc::new(EmbeddedStore::open(&settings.data_dir)?),
    })
}

/// Creates the databases the broker uses (and cozy-stack's `by-slug` lookups rely on).
pub async fn ensure_databases(store: &SharedStore) -> Result<(), StoreError> {
    for db in BROKER_DBS {
        store.ensure_db(db).await?;
    }
    // cozy-stack's index for secret lookups by konnector slug, and the refresher's.
    store.ensure_index(ACCOUNT_TYPES_DB, "slug").await?;
    store.ensure_index(REFRESH_SCHEDULE_DB, "due_at").await?;
    // cozy-stack's instance documents are found by `domain`, not by id.
    store.ensure_index(INSTANCES_DB, "domain").await?;
    Ok(())
}

impl Broker {
    /// Builds the services over an opened store.
    pub fn new(settings: &Settings, store: SharedStore) -> Result<Broker, BuildError> {
        let metrics = Metrics::new();
        let store_stats = Arc::new(Instrumented::new(store, metrics.store_seconds.clone()));
        let store: SharedStore = store_stats.clone();
        let public_url = Url::parse(settings.public_url.trim_end_matches('/'))
            .map_err(|e| BuildError::Setting(format!("public_url: {e}")))?;
        let provider = ProviderClient::new(
            Duration::from_secs(settings.provider_connect_timeout_secs.max(1)),
            Duration::from_secs(settings.provider_timeout_secs.max(1)),
        )
        .map_err(|e| BuildError::Setting(format!("provider client: {e}")))?;
        let keyring = Arc::new(
            Keyring::parse(settings.encryption_keys.as_deref().unwrap_or(""))
                .map_err(|e| BuildError::Setting(format!("encryption_keys: {e}")))?,
        );
        if settings.encrypt_refresh_tokens && keyring.primary_id().is_none() {
            return Err(BuildError::Setting(
                "encrypt_refresh_tokens needs encryption_keys".into(),
            ));
        }
        let webhook_url = match settings.webhooks.url.as_deref().filter(|u| !u.is_empty()) {
            Some(u) => {
                Some(Url::parse(u).map_err(|e| BuildError::Setting(format!("webhooks.url: {e}")))?)
            }
            None => None,
        };
        Ok(Broker {
            account_types: AccountTypes::new(store.clone(), keyring.clone()),
            instances: Instances::new(store.clone()),
            flows: FlowStates::new(store.clone()),
            credentials: Credentials::new(store.clone()),
            leases: Leases::new(store.clone()),
            schedule: Schedule::new(store.clone()),
            refresh_locks: LocalLocks::default(),
            process_id: random_hex(8),
            lease_ttl: Duration::from_secs(match settings.refresh.lease_secs {
                0 => 2 * settings.provider_timeout_secs.max(1) + 5,
                s => s,
            }),
            refresh_margin_secs: settings.refresh.margin_secs as i64,
            refresh_idle_secs: settings.refresh.idle_secs.max(60) as i64,
            webhooks: Webhooks::new(
                webhook_url,
                &settings.webhooks.secret,
                Duration::from_millis(settings.webhooks.retry_base_ms),
            ),
            accounts: Accounts::new(
                store.clone(),
                keyring.clone(),
                settings.encrypt_refresh_tokens,
            ),
            registrations: Registrations::new(store.clone(), keyring, provider.clone()),
            insecure_provider_urls: settings.allow_insecure_provider_urls,
            store,
            store_stats,
            metrics,
            provider,
            public_url,
            subdomains: settings.subdomains,
            flow_ttl: Duration::from_secs(settings.flow_ttl_secs),
            session_code_ttl: Duration::from_secs(settings.session_code_ttl_secs),
            admin_token: settings.admin_token().map(str::to_owned),
            flow_binding: settings.flow_binding,
            rate_limits: RateLimits::new(
                settings.rate_limit.per_minute,
                settings.rate_limit.burst,
                settings.rate_limit.trust_forwarded_for,
            ),
        })
    }

    /// The redirect URI flows of `at` use.
    pub fn redirect_uri_of(&self, at: &AccountType) -> String {
        at.redirect_uri.as_ref().map_or_else(
            || self.default_redirect_uri(at.service_id()),
            |u| u.to_string(),
        )
    }

    /// `at` as a flow or an account uses it: pointed at its provider when it is a
    /// per-account type, and with its registered client when it registers one.
    pub async fn client_type(
        &self,
        at: &Arc<AccountType>,
        provider: Option<&ProviderUrl>,
    ) -> Result<Arc<AccountType>, ClientError> {
        let at = match (at.per_account(), provider) {
            (true, Some(p)) => at.with_provider(p),
            (true, None) => return Err(ClientError::NoProvider(at.service_id().to_owned())),
            (false, Some(_)) => return Err(ClientError::FixedProvider(at.service_id().to_owned())),
            // The common case stays a shared pointer: no copy on the hot path.
            (false, None) if !at.registers() => return Ok(at.clone()),
            (false, None) => (**at).clone(),
        };
        if !at.registers() {
            return Ok(Arc::new(at));
        }
        let id = registration_id(&at.id, provider);
        let client = self
            .registrations
            .client_for(&at, &id, provider, &self.redirect_uri_of(&at), now())
            .await?;
        Ok(Arc::new(client.apply(&at)))
    }

    /// Sends a registered client's metadata again, rotating its secret on request; the
    /// account type it was registered for gives the metadata.
    pub async fn update_registration(
        &self,
        id: &str,
        reset_secret: bool,
    ) -> Result<serde_json::Value, RegistrationError> {
        let stored = self.registrations.get(id).await?;
        let type_id = stored
            .get("account_type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let at = self.account_types.lookup_id(type_id).await?;
        let provider = stored
            .get("provider_url")
            .and_then(serde_json::Value::as_str)
            .and_then(ProviderUrl::from_stored);
        let at = match &provider {
            Some(p) if at.per_account() => at.with_provider(p),
            _ => (*at).clone(),
        };
        self.registrations
            .update(id, &at, &self.redirect_uri_of(&at), reset_secret, now())
            .await
    }

    /// The default redirect URI of a service: `{public_url}/accounts/{service}/redirect`.
    pub fn default_redirect_uri(&self, service_id: &str) -> String {
        format!(
            "{}/accounts/{service_id}/redirect",
            self.public_url.as_str().trim_end_matches('/')
        )
    }
}

/// Current time in unix seconds.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
