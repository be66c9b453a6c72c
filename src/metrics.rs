//! Prometheus metrics, served on `GET /metrics`: flows by account type and outcome,
//! token endpoint latency, refresh outcomes by account type, store latency and failures,
//! lease takeovers, and accounts failing or needing reconnection. `deploy/grafana` and
//! `deploy/prometheus` are built on these names (a test keeps them in step).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::future::Future;
use std::time::Instant;

/// One metric family as registered: what the metrics reference lists.
#[derive(Debug, Clone)]
pub(crate) struct Family {
    /// Full name (`broker_...`).
    pub name: String,
    /// Its HELP line.
    pub help: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// Its label names.
    pub labels: Vec<String>,
}

/// The broker's collectors, in their own registry.
pub(crate) struct Metrics {
    registry: Registry,
    /// Every family registered.
    families: Vec<Family>,
    /// Flows started, by account type.
    pub flows_started: IntCounterVec,
    /// Flows that stored an account, by account type.
    pub flows_completed: IntCounterVec,
    /// Flows that ended in an error, by account type and error code.
    pub flows_failed: IntCounterVec,
    /// Token endpoint latency, by request kind.
    pub provider_seconds: HistogramVec,
    /// Refresh outcomes, by outcome and account type.
    pub refreshes: IntCounterVec,
    /// Store request latency, by operation.
    pub store_seconds: HistogramVec,
    /// Store requests that failed for want of the store, by operation.
    pub store_errors: IntCounterVec,
    /// Account events published on cozy-stack's realtime, by outcome.
    pub realtime_events: IntCounterVec,
    /// Newest grants put back over an older copy another writer saved.
    pub grants_restored: IntCounterVec,
    /// Refresh leases taken over from a holder that died or hung.
    pub lease_takeovers: IntCounter,
    /// Audit entries removed for their age (`audit.keep_days`).
    pub audit_pruned: IntCounter,
    /// Accounts whose refreshes fail, by account type (from the health records).
    pub accounts_failing: IntGaugeVec,
    /// Accounts waiting for their user to reconnect, by account type.
    pub accounts_reconnect_needed: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh collectors.
    // Names, labels and buckets are constants: a registration error is a programming
    // error, caught by `metrics_render` below.
    #[allow(clippy::expect_used)]
    pub(crate) fn new() -> Metrics {
        let registry = Registry::new_custom(Some("broker".into()), None).expect("valid prefix");
        let families = std::cell::RefCell::new(Vec::new());
        let note = |name: &str, help: &str, kind: &'static str, labels: &[&str]| {
            families.borrow_mut().push(Family {
                name: format!("broker_{name}"),
                help: help.to_owned(),
                kind,
                labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            });
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            note(name, help, "counter", labels);
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            note(name, help, "gauge", labels);
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            note(name, help, "histogram", labels);
            let buckets = vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid histogram");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        Metrics {
            flows_started: counter("flows_started_total", "Flows started", &["account_type"]),
            flows_completed: counter(
                "flows_completed_total",
                "Flows that stored an account",
                &["account_type"],
            ),
            flows_failed: counter(
                "flows_failed_total",
                "Flows that ended in an error",
                &["account_type", "reason"],
            ),
            provider_seconds: histogram(
                "token_endpoint_seconds",
                "Token endpoint latency",
                &["kind"],
            ),
            refreshes: counter(
                "refreshes_total",
                "Refresh outcomes",
                &["outcome", "account_type"],
            ),
            store_seconds: histogram("store_seconds", "Store request latency", &["op"]),
            grants_restored: counter(
                "grants_restored_total",
                "Accounts whose newest refresh token was put back over an older copy another writer saved (Harvest's conflict merge, a konnector)",
                &["account_type"],
            ),
            realtime_events: counter(
                "realtime_events_total",
                "Account events published on cozy-stack's realtime (cozy.redis_url), by outcome (published, failed)",
                &["outcome"],
            ),
            store_errors: counter(
                "store_errors_total",
                "Store requests that failed because the store was unavailable",
                &["op"],
            ),
            lease_takeovers: {
                note(
                    "lease_takeovers_total",
                    "Refresh leases taken over from a holder that died or hung",
                    "counter",
                    &[],
                );
                let c = IntCounter::new(
                    "lease_takeovers_total",
                    "Refresh leases taken over from a holder that died or hung",
                )
                .expect("valid counter");
                registry
                    .register(Box::new(c.clone()))
                    .expect("registered once");
                c
            },
            audit_pruned: {
                note(
                    "audit_entries_pruned_total",
                    "Audit entries removed for their age (audit.keep_days)",
                    "counter",
                    &[],
                );
                let c = IntCounter::new(
                    "audit_entries_pruned_total",
                    "Audit entries removed for their age (audit.keep_days)",
                )
                .expect("valid counter");
                registry
                    .register(Box::new(c.clone()))
                    .expect("registered once");
                c
            },
            accounts_failing: gauge(
                "accounts_failing",
                "Accounts whose refreshes fail",
                &["account_type"],
            ),
            accounts_reconnect_needed: gauge(
                "accounts_reconnect_needed",
                "Accounts waiting for their user to reconnect them",
                &["account_type"],
            ),
            registry,
            families: families.take(),
        }
    }

    /// Every family, in the order registered.
    pub(crate) fn families(&self) -> &[Family] {
        &self.families
    }

    /// Times a token endpoint request of `kind`.
    pub(crate) async fn time_provider<T>(&self, kind: &str, call: impl Future<Output = T>) -> T {
        self.time_provider_took(kind, call).await.0
    }

    /// [`Metrics::time_provider`], also telling how long the request took.
    pub(crate) async fn time_provider_took<T>(
        &self,
        kind: &str,
        call: impl Future<Output = T>,
    ) -> (T, std::time::Duration) {
        let started = Instant::now();
        let out = call.await;
        let took = started.elapsed();
        self.provider_seconds
            .with_label_values(&[kind])
            .observe(took.as_secs_f64());
        (out, took)
    }

    /// The text exposition format.
    // Encoding to memory cannot fail and the text format is UTF-8.
    #[allow(clippy::expect_used)]
    pub(crate) fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding to memory cannot fail");
        let mut text = String::from_utf8(buf).expect("the text format is UTF-8");
        // A family with no sample yet (no refresh failed since the start) is left out by
        // the encoder; its HELP and TYPE still say it exists, so that dashboards and
        // alert rules can be checked against a fresh broker.
        for Family {
            name, help, kind, ..
        } in &self.families
        {
            if !text.contains(&format!("# TYPE {name} ")) {
                text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render() {
        let m = Metrics::new();
        m.refreshes.with_label_values(&["ok", "google"]).inc();
        assert!(m
            .render()
            .contains("broker_refreshes_total{account_type=\"google\",outcome=\"ok\"} 1"));
    }
}
