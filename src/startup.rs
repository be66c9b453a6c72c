//! Building and running the HTTP server from settings.

use crate::broker::{ensure_databases, now, open_store, Broker};
use crate::config::{redact_url, Settings};
use crate::http;
use crate::store::{sweep_expired, FLOW_STATES_DB, SESSION_CODES_DB};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// How often expired flow states, session codes and quiet rate-limit entries are purged.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// How long a used or expired state is kept, so a replay is told apart from a forgery.
const KEEP_SPENT_STATES_SECS: i64 = 24 * 3600;

/// A bound, not yet running, broker.
pub struct Application {
    port: u16,
    server: Server,
    broker: Arc<Broker>,
}

impl Application {
    /// Opens the store, creates the databases, binds the listener and starts the
    /// background tasks (account-type changes feed, state sweeper).
    pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
        match settings.couchdb_url() {
            Some(url) => tracing::info!(couchdb = %redact_url(url), "using CouchDB"),
            None => {
                tracing::info!(data_dir = %settings.data_dir.display(), "using the embedded store")
            }
        }
        let store = open_store(settings)?;
        ensure_databases(&store).await?;
        let broker = Arc::new(Broker::new(settings, store)?);
        broker.account_types.spawn_watcher();
        if settings.refresh.enabled {
            crate::refresh::background::spawn(
                broker.clone(),
                Duration::from_secs(settings.refresh.interval_secs.max(1)),
            );
        }
        spawn_sweeper(broker.clone());

        let listener = TcpListener::bind(&settings.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let data = web::Data::from(broker.clone());
        let server = HttpServer::new(move || {
            App::new()
                .wrap(http::security_headers())
                .wrap(from_fn(http::request_log::log_request))
                .app_data(data.clone())
                .configure(http::configure)
        })
        .listen(listener)?
        .shutdown_timeout(30)
        .run();
        tracing::info!(port, "listening");
        Ok(Application {
            port,
            server,
            broker,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's services, for tests and tools that share the process.
    pub fn broker(&self) -> Arc<Broker> {
        self.broker.clone()
    }

    /// Serves until the process is asked to stop; in-flight requests get 30 s to finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn spawn_sweeper(broker: Arc<Broker>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            broker.rate_limits.forget_quiet_clients();
            let sweeps = [
                (FLOW_STATES_DB, now() - KEEP_SPENT_STATES_SECS),
                (SESSION_CODES_DB, now()),
            ];
            for (db, before) in sweeps {
                match sweep_expired(broker.store.as_ref(), db, before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(db, purged = n, "expired documents purged"),
                    Err(e) => tracing::warn!(db, error = %e, "sweep failed"),
                }
            }
        }
    });
}
