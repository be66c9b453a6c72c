//! Background work, owned in one place: [`Tasks::start`] spawns every task and
//! [`Tasks::stop`] tells them to stop and waits (bounded) for them to finish. The
//! account-type watcher, the sweeper, the refresher and webhook delivery live here.

mod health_gauges;
mod pending;
pub(crate) mod refresher;
mod sweeper;
mod watcher;
mod webhooks;

use crate::app::Services;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Tells tasks when to stop.
#[derive(Clone)]
pub(crate) struct Shutdown(Option<watch::Receiver<bool>>);

impl Shutdown {
    /// Resolves once a stop was asked.
    pub(crate) async fn requested(&mut self) {
        match &mut self.0 {
            // An error means the sender is gone: that is a stop too.
            Some(rx) => drop(rx.wait_for(|stop| *stop).await),
            None => std::future::pending().await,
        }
    }

    /// Whether a stop was asked.
    pub(crate) fn is_requested(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Runs `work` until it ends or a stop is asked, whichever comes first; `None` when
    /// stopped. Only for work that is safe to drop half-way (waiting, reading).
    pub(crate) async fn or_stop<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            out = work => Some(out),
            () = self.requested() => None,
        }
    }
}

/// What the background tasks are built from.
pub(crate) struct TaskSettings {
    /// Run the background refresher.
    pub refresher: bool,
    /// How often the refresher looks for due accounts.
    pub refresh_interval: Duration,
    /// Called by the sweeper on each pass to prune in-memory tables (rate limits).
    pub prune: Option<Prune>,
}

/// Forgets entries of an in-memory table that nobody used lately.
pub(crate) type Prune = Arc<dyn Fn() + Send + Sync>;

/// The running background tasks.
pub(crate) struct Tasks {
    stop: watch::Sender<bool>,
    running: JoinSet<()>,
}

impl Tasks {
    /// Starts every background task over the services.
    pub(crate) fn start(services: Arc<Services>, settings: &TaskSettings) -> Tasks {
        let (stop, stopped) = watch::channel(false);
        let shutdown = Shutdown(Some(stopped));
        let mut running = JoinSet::new();
        running.spawn(watcher::account_types(services.clone(), shutdown.clone()));
        running.spawn(watcher::instances(services.clone(), shutdown.clone()));
        running.spawn(watcher::api_tokens(services.clone(), shutdown.clone()));
        running.spawn(watcher::registered_clients(
            services.clone(),
            shutdown.clone(),
        ));
        running.spawn(pending::run(services.clone(), shutdown.clone()));
        running.spawn(health_gauges::run(services.clone(), shutdown.clone()));
        running.spawn(sweeper::run(
            services.clone(),
            settings.prune.clone(),
            shutdown.clone(),
        ));
        if settings.refresher {
            running.spawn(refresher::run(
                services.clone(),
                settings.refresh_interval,
                shutdown.clone(),
            ));
        }
        if let Some(target) = services.webhooks.target() {
            running.spawn(webhooks::run(target, shutdown));
        }
        Tasks { stop, running }
    }

    /// Asks every task to stop and waits up to `grace` for them; what is left is aborted.
    pub(crate) async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let all_done = async { while self.running.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_done).await.is_err() {
            tracing::warn!("background tasks did not stop in time; aborting them");
            self.running.abort_all();
        }
        tracing::info!("background tasks stopped");
    }
}
