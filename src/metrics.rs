//! Prometheus metrics, served on `GET /metrics`: flows by account type and outcome,
//! token endpoint latency, refresh outcomes, store latency.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::future::Future;
use std::time::Instant;

/// The broker's collectors, in their own registry.
pub(crate) struct Metrics {
    registry: Registry,
    /// Flows started, by account type.
    pub flows_started: IntCounterVec,
    /// Flows that stored an account, by account type.
    pub flows_completed: IntCounterVec,
    /// Flows that ended in an error, by account type and error code.
    pub flows_failed: IntCounterVec,
    /// Token endpoint latency, by request kind.
    pub provider_seconds: HistogramVec,
    /// Refresh outcomes.
    pub refreshes: IntCounterVec,
    /// Store request latency, by operation.
    pub store_seconds: HistogramVec,
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
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
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
            refreshes: counter("refreshes_total", "Refresh outcomes", &["outcome"]),
            store_seconds: histogram("store_seconds", "Store request latency", &["op"]),
            registry,
        }
    }

    /// Times a token endpoint request of `kind`.
    pub(crate) async fn time_provider<T>(&self, kind: &str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        self.provider_seconds
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
        out
    }

    /// The text exposition format.
    // Encoding to memory cannot fail and the text format is UTF-8.
    #[allow(clippy::expect_used)]
    pub(crate) fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding to memory cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render() {
        let m = Metrics::new();
        m.refreshes.with_label_values(&["ok"]).inc();
        assert!(m
            .render()
            .contains("broker_refreshes_total{outcome=\"ok\"} 1"));
    }
}
