//! Wiring: the store, the services, the background tasks and the HTTP server, started in
//! that order and stopped in the reverse one.

use crate::app::doctor::{self, Severity};
use crate::app::{open_store, Services};
use crate::config::{redact_url, Settings};
use crate::domain::Clock;
use crate::http;
use crate::http::rate_limit::RateLimits;
use crate::tasks::{TaskSettings, Tasks};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// How long in-flight requests get to finish once a stop is asked.
const HTTP_DRAIN_SECS: u64 = 30;
/// How long background tasks get to finish after HTTP has drained.
const TASKS_GRACE: Duration = Duration::from_secs(10);

/// Logs a report's warnings; fails with every error, one line each, when there is one.
fn refuse_errors(report: &doctor::Report) -> anyhow::Result<()> {
    for f in report.of(Severity::Warning) {
        tracing::warn!(check = %f.check, setting = f.setting.unwrap_or(""), "{}", f.detail);
    }
    let errors: Vec<String> = report.of(Severity::Error).map(|f| f.line()).collect();
    if !errors.is_empty() {
        anyhow::bail!(
            "this deployment cannot work ({} problem(s); `oauth-broker doctor` checks more):\n  {}",
            errors.len(),
            errors.join("\n  ")
        );
    }
    Ok(())
}

/// A bound, running broker.
pub struct Application {
    port: u16,
    server: Server,
    services: Arc<Services>,
    tasks: Tasks,
}

impl Application {
    /// Opens the store, builds the services, starts the background tasks and binds the
    /// listener, on the system clock.
    pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// [`Application::build`] on a given clock (tests fix the time).
    pub async fn build_with_clock(
        settings: &Settings,
        clock: Clock,
    ) -> anyhow::Result<Application> {
        match settings.couchdb_url() {
            Some(url) => tracing::info!(couchdb = %redact_url(url), "using CouchDB"),
            None => {
                tracing::info!(data_dir = %settings.data_dir.display(), "using the embedded store")
            }
        }
        // What cannot work is refused here, every problem at once and by its setting,
        // rather than met by the first user (see `oauth-broker doctor`).
        let preflight = doctor::preflight(settings, true).await;
        refuse_errors(&preflight)?;
        let store = open_store(settings).await?;
        // The binding cookie's scope: set, or inferred from the instance hosts (unread
        // instances leave it as set: a warning, not a reason to stay down).
        let inferred = match crate::app::binding_cookie(settings, store.as_ref()).await {
            Ok(cookie) => {
                if cookie.finding.severity == Severity::Warning {
                    tracing::warn!(
                        setting = cookie.finding.setting,
                        "{}",
                        cookie.finding.detail
                    );
                }
                cookie.domain.filter(|_| cookie.inferred)
            }
            Err(e) => {
                tracing::warn!(error = %e, "instances not readable: the cookie domain is not inferred");
                None
            }
        };
        let settings = &match inferred {
            Some(domain) => {
                tracing::info!(%domain, "flow binding cookie domain inferred from the public URL and the instance hosts");
                let mut inferred = settings.clone();
                inferred.flow_binding_cookie_domain = domain;
                inferred
            }
            None => settings.clone(),
        };
        let services = Services::build(settings, store, clock).await?;
        let services = Arc::new(services);
        let rate_limits = web::Data::new(RateLimits::new(
            settings.rate_limit.per_minute,
            settings.rate_limit.burst,
            settings
                .trusted_proxies()
                .map_err(|e| anyhow::anyhow!("invalid setting: rate_limit.trusted_proxies: {e}"))?,
        ));
        let tasks = Tasks::start(
            services.clone(),
            &TaskSettings {
                refresher: settings.refresh.enabled,
                refresh_interval: Duration::from_secs(settings.refresh.interval_secs.max(1)),
                prune: Some({
                    let limits = rate_limits.clone();
                    Arc::new(move || limits.forget_quiet_clients())
                }),
            },
        );

        let listener = TcpListener::bind(&settings.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let data = web::Data::from(services.clone());
        // Requests for types cozy-stack runs alone go to it (after the request log, and
        // before the broker's own headers, which are not cozy-stack's).
        let stack = settings
            .stack_url()
            .map_err(|e| anyhow::anyhow!("invalid setting: cozy.stack_url: {e}"))?
            .map(|u| web::Data::new(http::stack_upstream::StackUpstream::new(u)));
        let server = HttpServer::new(move || {
            let app = App::new()
                .wrap(http::security_headers())
                .wrap(from_fn(http::stack_upstream::hand_over))
                .wrap(from_fn(http::request_log::log_request));
            let app = match &stack {
                Some(s) => app.app_data(s.clone()),
                None => app,
            };
            app.app_data(data.clone())
                .app_data(rate_limits.clone())
                .configure(http::configure)
        })
        .listen(listener)?
        .shutdown_timeout(HTTP_DRAIN_SECS)
        .run();
        tracing::info!(port, "listening");
        Ok(Application {
            port,
            server,
            services,
            tasks,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's services, for tests and tools that share the process.
    pub fn services(&self) -> Arc<Services> {
        self.services.clone()
    }

    /// Serves until the process is asked to stop (SIGTERM, SIGINT): in-flight requests
    /// get 30 s to finish, then the background tasks are stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        tracing::info!("HTTP drained; stopping background tasks");
        self.tasks.stop(TASKS_GRACE).await;
        served
    }
}
