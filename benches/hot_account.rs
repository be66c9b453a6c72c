//! One hot account: bursts of 64 concurrent refreshes of the same account through the
//! HTTP route, each burst after the last has landed. Reports refreshes answered per
//! second, provider calls made (one a burst is the goal: single flight), and store
//! requests per answered refresh, for one store per run.
//!
//! `cargo bench --bench hot_account` runs it on the embedded store; `BENCH_STORE=couch`
//! with `BROKER_TEST_COUCHDB_URL` set runs it on CouchDB (`scripts/bench-refresher.sh`
//! runs every store). `BENCH_BURSTS=N` changes the number of bursts (20). The broker's
//! clock is moved past the fresh window between bursts, so that each burst makes a real
//! refresh, and a caller of a burst that comes late is answered from the window as it
//! would be in production. Under `cargo test` it is a smoke run (2 bursts).

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

#[path = "../tests/common/mod.rs"]
mod common;
use common::helpers;

use oauth_broker::domain::{Clock, Timestamp};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

/// Concurrent callers in a burst.
const CALLERS: usize = 64;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let couch = std::env::var("BENCH_STORE").as_deref() == Ok("couch");
    let bursts: usize = std::env::var("BENCH_BURSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 20 } else { 2 });
    let label = std::env::var("BENCH_STORE_LABEL")
        .unwrap_or_else(|_| if couch { "CouchDB" } else { "embedded" }.to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let backend = if couch {
            helpers::Backend::Couch
        } else {
            helpers::Backend::Embedded
        };
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut settings = helpers::test_settings(backend, dir.path());
        settings.couchdb.db_prefix = format!("{}_", helpers::unique("hot"));
        let window = settings.refresh.fresh_window_secs as i64;
        let mut now = Clock::system().now().unix_secs();
        let clock = Clock::fixed(Timestamp::from_unix_secs(now));
        let app = helpers::spawn_with_clock(
            settings,
            dir,
            wiremock::MockServer::start().await,
            clock.clone(),
        )
        .await;
        let inst = app.new_instance(None).await;
        let token = app.api_token(&inst).await;
        let t = app.code_type(json!({})).await;
        let id = app
            .seed_account(&inst, json!({"account_type": t, "name": "",
                "oauth": {"access_token": "stale", "refresh_token": "rt"}}))
            .await;
        Mock::given(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"access_token": "fresh", "refresh_token": "rt", "expires_in": 3600}),
            ))
            .mount(&app.provider)
            .await;
        let url = format!("{}/accounts/{t}/{id}/refresh", app.address);
        let before = app.services.store_requests();
        let started = Instant::now();
        for _ in 0..bursts {
            // Past the window of the last burst's refresh.
            now += window + 1;
            clock.set(Timestamp::from_unix_secs(now));
            let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
            let calls = (0..CALLERS).map(|_| {
                let (http, url, token, barrier) =
                    (app.http.clone(), url.clone(), token.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    http.post(url).bearer_auth(token).send().await.unwrap().status()
                })
            });
            for status in futures::future::join_all(calls).await {
                assert_eq!(status.unwrap(), 200);
            }
        }
        let elapsed = started.elapsed();
        let store = app.services.store_requests() - before;
        let provider_calls = app.provider.received_requests().await.unwrap().len();
        let answered = bursts * CALLERS;
        assert_eq!(provider_calls, bursts, "one provider call a burst");
        println!("| store | callers | bursts | refreshes answered/s | provider calls | store requests per refresh |");
        println!("|---|---|---|---|---|---|");
        println!(
            "| {label} | {CALLERS} | {bursts} | {:.0} | {provider_calls} | {:.2} |",
            answered as f64 / elapsed.as_secs_f64(),
            store as f64 / answered as f64,
        );
    });
}
