//! Webhook deliveries per second: events about distinct accounts put in the outbox, an
//! endpoint that takes 20 ms to answer each, delivered one at a time
//! (`webhooks.concurrency = 1`) and then eight at a time, in one run; prints both rates
//! and their ratio.
//!
//! `cargo bench --bench webhooks` runs it on the embedded store (`BENCH_EVENTS=N`
//! events, 400 by default). Under `cargo test` it is a smoke run (16 events).

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

#[path = "../tests/common/mod.rs"]
mod common;
use common::helpers;

use oauth_broker::store::WEBHOOK_OUTBOX_DB;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Delivers `events` at `concurrency`; deliveries per second.
async fn rate(events: usize, concurrency: usize) -> f64 {
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204).set_delay(Duration::from_millis(20)))
        .mount(&hook)
        .await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = helpers::test_settings(helpers::Backend::Embedded, dir.path());
    settings.webhooks.url = Some(format!("{}/hook", hook.uri()));
    settings.webhooks.secret = "whsec-0123456789abcdef".into();
    settings.webhooks.retry_base_ms = 50;
    settings.webhooks.concurrency = concurrency;
    let app = helpers::spawn_with_settings(settings, dir, MockServer::start().await).await;
    let docs: Vec<_> = (0..events)
        .map(|i| {
            let body = json!({"event": "account.created", "instance": "bench", "account_id": i})
                .to_string();
            json!({"_id": format!("{:015}-{i:06}", 0), "event": "account.created", "body": body,
                "signature": "sha256=0", "key": format!("bench/{i}"), "attempts": 0, "next_at": 0})
        })
        .collect();
    let started = Instant::now();
    app.store.put_many(WEBHOOK_OUTBOX_DB, &docs).await.unwrap();
    while hook.received_requests().await.unwrap().len() < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    events as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 400 } else { 16 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let one = rate(events, 1).await;
        let eight = rate(events, 8).await;
        println!(
            "| events | concurrency 1 (deliveries/s) | concurrency 8 (deliveries/s) | ratio |"
        );
        println!("|---|---|---|---|");
        println!("| {events} | {one:.0} | {eight:.0} | {:.1} |", eight / one);
    });
}
