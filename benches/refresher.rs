//! Throughput of the background refresher: N due accounts (10,000 under `cargo bench`,
//! 50 as a smoke run under `cargo test`) refreshed against a provider on loopback.
//! Reports accounts per second and store round-trips per refresh.
//!
//! `cargo bench --bench refresher` (embedded store); `BENCH_STORE=couch` with
//! `BROKER_TEST_COUCHDB_URL` set runs it on CouchDB; `BENCH_ACCOUNTS=N` changes N.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "../tests/common/mod.rs"]
mod common;
use common::helpers;

use oauth_broker::app::Services;
use oauth_broker::domain::sealed::Keyring;
use oauth_broker::domain::Domain;
use oauth_broker::store::account_types::AccountTypes;
use oauth_broker::store::accounts::Accounts;
use oauth_broker::store::instances::Instances;
use oauth_broker::store::schedule::Schedule;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 10_000 } else { 50 });
    let couch = std::env::var("BENCH_STORE").as_deref() == Ok("couch");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let backend = if couch { helpers::Backend::Couch } else { helpers::Backend::Embedded };
        let mut settings = helpers::test_settings(backend, dir.path());
        settings.couchdb.db_prefix = format!("{}_", helpers::unique("bench"));
        let services = Services::open(&settings).await.unwrap();
        let store = services.store();
        let keys = Arc::new(Keyring::parse("").unwrap());
        let accounts = Accounts::new(store.clone(), keys.clone(), false);
        let schedule = Schedule::new(store.clone());

        let provider = MockServer::start().await;
        Mock::given(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "fresh", "expires_in": 3600})))
            .mount(&provider)
            .await;
        let inst = Instances::new(store.clone(), oauth_broker::domain::Clock::system()).add(Domain::parse("bench.example").unwrap(), None).await.unwrap();
        AccountTypes::new(store.clone(), keys)
            .put(json!({"_id": "bench", "grant_mode": "authorization_code", "client_id": "c",
                "client_secret": "s", "auth_endpoint": format!("{}/a", provider.uri()),
                "token_endpoint": format!("{}/token", provider.uri())}))
            .await
            .unwrap();
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let doc = json!({"account_type": "bench", "name": "", "oauth": {
                "access_token": "stale", "expires_at": "2020-01-01T00:00:00Z", "refresh_token": format!("rt-{i}")}});
            let id = accounts.create(&inst, &doc).await.unwrap();
            schedule.set(&inst.domain, &id, 0, 0, true).await.unwrap();
            ids.push(id);
        }

        let before = services.store_requests();
        let started = Instant::now();
        let mut handled = 0;
        loop {
            let batch = services.refresh_due_once().await;
            if batch == 0 {
                break;
            }
            handled += batch;
        }
        let elapsed = started.elapsed();
        let calls = services.store_requests() - before;
        let provider_calls = provider.received_requests().await.unwrap().len();
        for id in ids.iter().step_by((n / 10).max(1)) {
            let doc = accounts.get(&inst, id).await.unwrap().unwrap();
            assert_eq!(doc["oauth"]["access_token"], "fresh");
        }
        assert_eq!(provider_calls, n, "one provider call per account");
        println!(
            "refresher: {n} accounts on the {} store in {:.2} s: {:.0} accounts/s, {:.1} store round-trips per refresh ({handled} handled)",
            if couch { "CouchDB" } else { "embedded" },
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            calls as f64 / n as f64,
        );
    });
}
