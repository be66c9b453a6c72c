//! The application layer: use cases, each a struct holding just what it needs, built once
//! from settings into [`Services`]. No actix types and no HTTP statuses here: failures are
//! [`Error`]s that know their [`crate::domain::ErrorKind`].

pub(crate) mod account_health;
pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod audit;
pub mod backfill;
pub(crate) mod callers;
pub(crate) mod clients;
pub mod doctor;
mod error;
pub(crate) mod flows;
pub(crate) mod keyed_locks;
pub(crate) mod leasing;
pub(crate) mod refresh;
pub(crate) mod refresh_plan;
pub(crate) mod refresher;
pub(crate) mod registrations;
pub(crate) mod renewal;
pub(crate) mod single_flight;

pub(crate) use error::Error;

use crate::config::Settings;
use crate::domain::flow_state::FlowSeal;
use crate::domain::sealed::Keyring;
use crate::domain::Clock;
use crate::metrics::Metrics;
use crate::oauth::id_token::IdTokens;
use crate::oauth::resolver::DnsPolicy;
use crate::oauth::ProviderClient;
use crate::store::account_types::AccountTypes;
use crate::store::accounts::Accounts;
use crate::store::audit::AuditLog;
use crate::store::couch::CouchStore;
use crate::store::cozy::CozyDocs;
use crate::store::cozy_realtime::CozyRealtime;
use crate::store::cozy_session_codes::CozySessionCodes;
use crate::store::credentials::Credentials;
use crate::store::embedded::EmbeddedStore;
use crate::store::flow_states::FlowStates;
use crate::store::health_records::HealthRecords;
use crate::store::instances::Instances;
use crate::store::instrumented::Instrumented;
use crate::store::jobs::Checkpoints;
use crate::store::leases::Leases;
use crate::store::newest_grants::NewestGrants;
use crate::store::pending_grants::PendingGrants;
use crate::store::schedule::Schedule;
use crate::store::{SharedStore, StoreError};
use crate::webhooks::Webhooks;
use account_health::HealthLog;
use accounts::AccountActions;
use admin::Admin;
use audit::Audit;
use backfill::Backfill;
use callers::{Callers, Secret};
use clients::Clients;
use flows::Flows;
use leasing::Leasing;
use refresh::{Refreshes, RefreshesParts};
use refresh_plan::RefreshPlan;
use refresher::{Refresher, RefresherParts};
use registrations::Registrations;
use renewal::{Renewal, RenewalParts};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Why the services could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A setting is wrong.
    #[error("invalid setting: {0}")]
    Setting(String),
    /// The store is unreachable or refused to create a database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens the store the settings select: CouchDB when a URL is set, else the embedded one,
/// and creates the databases the broker uses.
pub async fn open_store(settings: &Settings) -> Result<SharedStore, StoreError> {
    let store: SharedStore = match settings.couchdb_url() {
        Some(url) => Arc::new(CouchStore::new(
            url,
            Duration::from_secs(settings.couchdb.timeout_secs),
            &settings.couchdb.db_prefix,
        )?),
        None => Arc::new(EmbeddedStore::open(&settings.data_dir)?),
    };
    crate::store::ensure_databases(&store).await?;
    Ok(store)
}

/// What provider names may resolve to, as the settings ask (`allow_insecure_provider_urls`,
/// `provider_private_hosts`).
pub(crate) fn dns_policy(settings: &Settings) -> DnsPolicy {
    DnsPolicy {
        allow_loopback: settings.allow_insecure_provider_urls,
        private_hosts: settings
            .provider_private_hosts
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect(),
    }
}

/// The binding cookie's scope for this deployment: the settings' decision
/// (`Settings::binding_cookie`) against the hosts sign-ins start on, read from up to a
/// thousand instances. `serve` uses its domain, `doctor` says its finding.
pub async fn binding_cookie(
    settings: &Settings,
    store: &dyn crate::store::Store,
) -> Result<crate::config::BindingCookie, StoreError> {
    /// Instances read to learn the hosts (a sample on big deployments).
    const INSTANCE_SAMPLE: usize = 1000;
    let hosts = if settings.flow_binding {
        crate::store::inspect::instance_hosts(store, INSTANCE_SAMPLE).await?
    } else {
        Default::default()
    };
    Ok(settings.binding_cookie(&hosts))
}

/// Every use case, built once and shared by the HTTP handlers, the command line and the
/// background tasks.
pub struct Services {
    pub(crate) store: SharedStore,
    pub(crate) store_stats: Arc<Instrumented>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) account_types: Arc<AccountTypes>,
    pub(crate) flows: Flows,
    pub(crate) refreshes: Arc<Refreshes>,
    pub(crate) refresher: Arc<Refresher>,
    pub(crate) accounts: Arc<AccountActions>,
    pub(crate) admin: Admin,
    pub(crate) callers: Callers,
    pub(crate) backfill: Backfill,
    pub(crate) webhooks: Webhooks,
    pub(crate) clock: Clock,
    /// How long audit entries are kept (`audit.keep_days`); none: for ever.
    pub(crate) audit_kept: Option<Duration>,
}

impl Services {
    /// Whether `service_id`'s type is cozy-stack's to run (Budget Insight's modes): its
    /// requests are handed to cozy-stack.
    pub(crate) async fn stays_on_stack(&self, service_id: &str) -> bool {
        self.account_types.stays_on_stack(service_id).await
    }

    /// Builds the services over an opened store.
    pub(crate) async fn build(
        settings: &Settings,
        store: SharedStore,
        clock: Clock,
    ) -> Result<Services, BuildError> {
        let setting =
            |name: &str, e: &dyn std::fmt::Display| BuildError::Setting(format!("{name}: {e}"));
        // The same rules `serve`'s preflight and `doctor` apply, for callers that build the
        // services without them (the command line, tests).
        if let Some(f) = settings
            .check()
            .into_iter()
            .find(|f| f.severity == crate::config::Severity::Error)
        {
            return Err(setting(f.setting, &f.detail));
        }
        let metrics = Arc::new(Metrics::new());
        let store_stats = Arc::new(Instrumented::new(
            store,
            metrics.store_seconds.clone(),
            metrics.store_errors.clone(),
        ));
        let store: SharedStore = store_stats.clone();
        let public_url = Url::parse(settings.public_url.trim_end_matches('/'))
            .map_err(|e| setting("public_url", &e))?;
        let provider = ProviderClient::new(
            Duration::from_secs(settings.provider_connect_timeout_secs.max(1)),
            Duration::from_secs(settings.provider_timeout_secs.max(1)),
            clock.clone(),
            dns_policy(settings),
        )
        .map_err(|e| setting("provider client", &e))?;
        let keyring = Arc::new(
            Keyring::parse(settings.encryption_keys.as_deref().unwrap_or(""))
                .map_err(|e| setting("encryption_keys", &e))?,
        );
        // States are sealed with keys derived from the encryption keys; a broker without
        // any shares one drawn at first start through the store.
        let flow_keys = match keyring.derive("flow states") {
            keys if !keys.is_empty() => keys,
            _ => vec![FlowStates::stored_key(&store).await?],
        };
        let flow_seal =
            Arc::new(FlowSeal::new(&flow_keys).ok_or_else(|| setting("flow keys", &"none"))?);
        let webhook_url = settings
            .webhook_url()
            .map_err(|e| setting("webhooks.url", &e))?;
        let webhooks = Webhooks::new(
            webhook_url,
            &settings.webhooks.secret,
            Duration::from_millis(settings.webhooks.retry_base_ms),
            settings.webhooks.concurrency.max(1),
            store.clone(),
            clock.clone(),
        )
        .map_err(|e| setting("webhooks", &e))?;

        let account_types = AccountTypes::new(store.clone(), keyring.clone());
        let instances = Instances::new(store.clone());
        let credentials = Credentials::new(store.clone());
        let schedule = Schedule::new(store.clone());
        let audit = Audit {
            log: AuditLog::new(store.clone()),
            clock: clock.clone(),
        };
        // Beside cozy-stack, its apps hear of the broker's account writes.
        let realtime = match settings.cozy.redis_url() {
            Some(url) => Some(Arc::new(
                CozyRealtime::new(url, metrics.realtime_events.clone())
                    .map_err(|e| setting("cozy.redis_url", &e))?,
            )),
            None => None,
        };
        let accounts = Accounts::new(
            store.clone(),
            keyring.clone(),
            settings.encrypt_refresh_tokens,
        )
        .with_realtime(realtime);
        let registrations = Arc::new(Registrations::new(
            store.clone(),
            keyring.clone(),
            provider.clone(),
        ));
        let clients = Arc::new(Clients::new(
            account_types.clone(),
            registrations.clone(),
            public_url,
            settings.allow_insecure_provider_urls,
            clock.clone(),
            settings.cozy.instance_scheme,
        ));
        let plan = RefreshPlan::new(
            schedule.clone(),
            clock.clone(),
            crate::domain::account::Cadence {
                margin: settings.refresh.margin_secs as i64,
                every: settings.refresh.idle_secs.max(60) as i64,
                share_percent: i64::from(settings.refresh.lifetime_share_percent.min(100)),
                floor: settings.refresh.floor_secs as i64,
            },
        );
        let health = Arc::new(HealthLog::new(
            HealthRecords::new(store.clone()),
            metrics.clone(),
            webhooks.clone(),
            clock.clone(),
        ));
        let leasing = Arc::new(Leasing::new(
            Leases::new(store.clone()).counting_takeovers(metrics.lease_takeovers.clone()),
            Duration::from_secs(match settings.refresh.lease_secs {
                0 => 2 * settings.provider_timeout_secs.max(1) + 5,
                s => s,
            }),
            clock.clone(),
        ));
        let renewal = Arc::new(Renewal::new(RenewalParts {
            accounts: accounts.clone(),
            provider: provider.clone(),
            pending: PendingGrants::open(&settings.data_dir, keyring.clone())?,
            leasing: leasing.clone(),
            plan: plan.clone(),
            health: health.clone(),
            webhooks: webhooks.clone(),
            instances: instances.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            newest: NewestGrants::new(store.clone(), keyring.clone()),
            audit: audit.clone(),
        }));
        let refreshes = Arc::new(Refreshes::new(RefreshesParts {
            renewal: renewal.clone(),
            accounts: accounts.clone(),
            clients: clients.clone(),
            leasing: leasing.clone(),
            plan: plan.clone(),
            health: health.clone(),
            clock: clock.clone(),
            fresh_window: Duration::from_secs(settings.refresh.fresh_window_secs),
        }));
        let refresher = Arc::new(Refresher::new(RefresherParts {
            renewal,
            accounts: accounts.clone(),
            clients: clients.clone(),
            instances: instances.clone(),
            leasing,
            plan: plan.clone(),
            health: health.clone(),
            clock: clock.clone(),
        }));
        let account_actions = Arc::new(AccountActions {
            accounts: accounts.clone(),
            account_types: account_types.clone(),
            clients: clients.clone(),
            plan: plan.clone(),
            health: health.clone(),
            provider: provider.clone(),
            metrics: metrics.clone(),
            webhooks: webhooks.clone(),
            clock: clock.clone(),
            audit: audit.clone(),
            newest: NewestGrants::new(store.clone(), keyring.clone()),
        });
        let flows = Flows {
            instances: instances.clone(),
            account_types: account_types.clone(),
            accounts: accounts.clone(),
            states: FlowStates::new(store.clone(), flow_seal),
            clients: clients.clone(),
            plan: plan.clone(),
            health: health.clone(),
            provider: provider.clone(),
            metrics: metrics.clone(),
            webhooks: webhooks.clone(),
            clock: clock.clone(),
            subdomains: settings.subdomains,
            ttl: Duration::from_secs(settings.flow_ttl_secs),
            binding: settings.flow_binding,
            cookie_domain: settings
                .cookie_domain()
                .map_err(|e| setting("flow_binding_cookie_domain", &e))?,
            scheme: settings.cozy.instance_scheme,
        };
        let admin = Admin {
            account_types: account_types.clone(),
            instances: instances.clone(),
            credentials: credentials.clone(),
            accounts: accounts.clone(),
            registrations,
            clients,
            account_actions: account_actions.clone(),
            clock: clock.clone(),
            session_code_ttl: Duration::from_secs(settings.session_code_ttl_secs),
            audit,
            health: HealthRecords::new(store.clone()),
        };
        let cozy_codes = match settings.cozy.redis_url() {
            Some(url) => Some(Arc::new(
                CozySessionCodes::new(url).map_err(|e| setting("cozy.redis_url", &e))?,
            )),
            None => None,
        };
        let callers = Callers {
            credentials,
            instances: instances.clone(),
            cozy: CozyDocs::new(store.clone()),
            cozy_codes,
            subdomains: settings.subdomains,
            admin_token: settings.admin_token().map(|t| Secret::new(t.to_owned())),
            clock: clock.clone(),
            id_tokens: IdTokens::new(provider.clone()),
            oidc_keys: settings.cozy.id_token_keys(),
        };
        let backfill = Backfill {
            instances: instances.clone(),
            accounts: accounts.clone(),
            account_types: account_types.clone(),
            schedule: schedule.clone(),
            plan: plan.clone(),
            checkpoints: Checkpoints::new(store.clone()),
        };
        let services = Services {
            backfill,
            store,
            store_stats,
            metrics,
            account_types,
            flows,
            refreshes,
            refresher,
            accounts: account_actions,
            admin,
            callers,
            webhooks,
            clock,
            audit_kept: (settings.audit.keep_days > 0)
                .then(|| Duration::from_secs(settings.audit.keep_days.saturating_mul(86_400))),
        };
        Ok(services)
    }

    /// Opens the store the settings select and builds the services over it, for tools and
    /// benchmarks that run no server (no webhooks are delivered).
    pub async fn open(settings: &Settings) -> anyhow::Result<Services> {
        let store = open_store(settings).await?;
        Ok(Services::build(settings, store, Clock::system()).await?)
    }

    /// The store, as the services see it (instrumented).
    pub fn store(&self) -> SharedStore {
        self.store.clone()
    }

    /// Store requests made since start-up (benchmarks count round-trips with it).
    pub fn store_requests(&self) -> u64 {
        self.store_stats.requests()
    }

    /// Removes the audit entries older than `audit.keep_days`, counted in
    /// `broker_audit_entries_pruned_total`; a failure is logged.
    pub(crate) async fn prune_audit(&self) {
        let Some(kept) = self.audit_kept else {
            return;
        };
        let before = self.clock.now().minus(kept);
        match crate::store::audit::AuditLog::new(self.store.clone())
            .prune_before(before)
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                self.metrics.audit_pruned.inc_by(n as u64);
                tracing::info!(pruned = n, "audit entries past audit.keep_days removed");
            }
            Err(e) => tracing::warn!(error = %e, "audit pruning failed"),
        }
    }

    /// One background-refresher pass now: refreshes what is due; returns how many
    /// accounts it handled.
    pub async fn refresh_due_once(&self) -> usize {
        self.refresher.refresh_due(&|| false).await
    }
}
