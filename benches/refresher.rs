//! Throughput and store cost of the background refresher: accounts stored over many
//! instances, some of them due, refreshed against a provider on loopback. Reports
//! accounts per second and store round-trips per refresh (every request the refresher
//! makes, the schedule query included), for each scenario in one run.
//!
//! `cargo bench --bench refresher` runs 10,000 and 100,000 accounts stored with 1,000 due,
//! spread over 100 instances, on the embedded store; `BENCH_STORE=couch` with
//! `BROKER_TEST_COUCHDB_URL` set runs them on CouchDB (`scripts/bench-refresher.sh` starts
//! Apache CouchDB 3.5 and pouchdb-server and runs every store; `BENCH_STORE_LABEL` names the
//! store in the table). `BENCH_SCENARIOS=stored:due,...` and
//! `BENCH_INSTANCES=N` change them. Under `cargo test` it is a smoke run (200 stored, 50 due).

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

#[path = "../tests/common/mod.rs"]
mod common;
use common::helpers;

use oauth_broker::app::Services;
use oauth_broker::domain::sealed::Keyring;
use oauth_broker::domain::{Domain, Instance};
use oauth_broker::store::account_types::AccountTypes;
use oauth_broker::store::accounts::Accounts;
use oauth_broker::store::instances::Instances;
use oauth_broker::store::REFRESH_SCHEDULE_DB;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Documents per bulk write while filling the store.
const FILL_CHUNK: usize = 2_000;

fn scenarios(full: bool) -> Vec<(usize, usize)> {
    if let Ok(spec) = std::env::var("BENCH_SCENARIOS") {
        return spec
            .split(',')
            .filter_map(|s| {
                let (stored, due) = s.split_once(':')?;
                Some((stored.trim().parse().ok()?, due.trim().parse().ok()?))
            })
            .collect();
    }
    if full {
        vec![(10_000, 1_000), (100_000, 1_000)]
    } else {
        vec![(200, 50)]
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let couch = std::env::var("BENCH_STORE").as_deref() == Ok("couch");
    let instances: usize = std::env::var("BENCH_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 100 } else { 10 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        println!(
            "| store | accounts stored | due | instances | accounts/s | store round-trips per refresh |"
        );
        println!("|---|---|---|---|---|---|");
        for (stored, due) in scenarios(full) {
            run(couch, stored, due.min(stored), instances).await;
        }
    });
}

async fn run(couch: bool, stored: usize, due: usize, n_instances: usize) {
    let dir = tempfile::tempdir().unwrap();
    let backend = if couch {
        helpers::Backend::Couch
    } else {
        helpers::Backend::Embedded
    };
    let mut settings = helpers::test_settings(backend, dir.path());
    settings.couchdb.db_prefix = format!("{}_", helpers::unique("bench"));
    let services = Services::open(&settings).await.unwrap();
    let store = services.store();
    let keys = Arc::new(Keyring::parse("").unwrap());
    let accounts = Accounts::new(store.clone(), keys.clone(), false);

    let provider = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "fresh", "expires_in": 3600})),
        )
        .mount(&provider)
        .await;
    AccountTypes::new(store.clone(), keys)
        .put(
            json!({"_id": "bench", "grant_mode": "authorization_code", "client_id": "c",
            "client_secret": "s", "auth_endpoint": format!("{}/a", provider.uri()),
            "token_endpoint": format!("{}/token", provider.uri())}),
        )
        .await
        .unwrap();
    let registry = Instances::new(store.clone());
    let mut instances: Vec<Instance> = Vec::with_capacity(n_instances);
    for i in 0..n_instances {
        let domain = Domain::parse(&format!("bench{i}.example")).unwrap();
        let inst = registry.add(domain, None).await.unwrap();
        store.ensure_db(&inst.accounts_db()).await.unwrap();
        instances.push(inst);
    }

    // Accounts round-robin over the instances; the first `due` are due now, the others in
    // a day. Written in bulk: filling the store is not what is measured.
    let far = oauth_broker::domain::Clock::system().now().unix_secs() + 86_400;
    let mut due_ids: Vec<(usize, String)> = Vec::with_capacity(due);
    let mut start = 0;
    while start < stored {
        let end = (start + FILL_CHUNK).min(stored);
        let mut per_instance: Vec<Vec<Value>> = vec![Vec::new(); n_instances];
        let mut plans: Vec<Value> = Vec::with_capacity(end - start);
        for i in start..end {
            let k = i % n_instances;
            let id = format!("acc{i:07}");
            per_instance[k].push(
                json!({"_id": id, "account_type": "bench", "name": "", "oauth": {
                "access_token": "stale", "expires_at": "2020-01-01T00:00:00Z",
                "refresh_token": format!("rt-{i}")}}),
            );
            let domain = instances[k].domain.as_str();
            plans.push(json!({"_id": format!("{domain}/{id}"), "instance": domain,
                "account_id": id, "due_at": if i < due { 0 } else { far }, "attempts": 0}));
            if i < due {
                due_ids.push((k, id));
            }
        }
        for (k, docs) in per_instance.iter().enumerate() {
            if !docs.is_empty() {
                let written = store
                    .put_many(&instances[k].accounts_db(), docs)
                    .await
                    .unwrap();
                assert!(written.iter().all(Result::is_ok));
            }
        }
        let written = store.put_many(REFRESH_SCHEDULE_DB, &plans).await.unwrap();
        assert!(written.iter().all(Result::is_ok));
        start = end;
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
    for (k, id) in due_ids.iter().step_by((due / 10).max(1)) {
        let doc = accounts.get(&instances[*k], id).await.unwrap().unwrap();
        assert_eq!(doc.access_token(), Some("fresh"));
    }
    assert_eq!(provider_calls, due, "one provider call per due account");
    assert_eq!(handled, due, "only the due accounts are taken");
    println!(
        "| {} | {stored} | {due} | {n_instances} | {:.0} | {:.2} |",
        std::env::var("BENCH_STORE_LABEL").unwrap_or_else(|_| if couch {
            "CouchDB"
        } else {
            "embedded"
        }
        .to_owned()),
        due as f64 / elapsed.as_secs_f64(),
        calls as f64 / due as f64,
    );
}
