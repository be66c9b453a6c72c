//! The broker on a 3-node Apache CouchDB cluster (n=3, q=2), started by `scripts/test.sh`
//! with `../shared/couchdb/couchdb.sh`: two brokers on different coordinator nodes, the
//! provider played on loopback counting its calls, with every node up and with one
//! stopped. Its own test binary, and one scenario at a time, because the scenarios stop
//! and start nodes of the one cluster.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

mod common;
use common::helpers::*;

use futures::StreamExt;
use serde_json::{json, Value};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, path};
use wiremock::{Mock, ResponseTemplate};

/// Rounds of each race, with every node up and then with one stopped.
const ROUNDS: usize = 10;

/// The cluster of `BROKER_TEST_COUCHDB_CLUSTER`, driven through `COUCHDB_SH`.
struct Cluster {
    dir: String,
    sh: String,
}

impl Cluster {
    /// The cluster, or `None` where none runs (a bare `cargo test`).
    fn from_env() -> Option<Cluster> {
        let dir = common::needs::env("BROKER_TEST_COUCHDB_CLUSTER", "a 3-node CouchDB cluster")?;
        let sh = common::needs::env("COUCHDB_SH", "a 3-node CouchDB cluster")?;
        Some(Cluster { dir, sh })
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.sh)
            .args(args)
            .output()
            .expect("couchdb.sh runs");
        assert!(
            out.status.success(),
            "couchdb.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Node `i`'s URL, with the admin's credentials.
    fn url(&self, i: u8) -> String {
        self.run(&["url", &self.dir, &i.to_string()])
    }

    fn stop(&self, i: u8) -> StoppedNode<'_> {
        self.run(&["node", &self.dir, &i.to_string(), "stop"]);
        StoppedNode { cluster: self, i }
    }
}

/// A node stopped until this is dropped (even when the test fails).
struct StoppedNode<'a> {
    cluster: &'a Cluster,
    i: u8,
}

impl Drop for StoppedNode<'_> {
    fn drop(&mut self) {
        self.cluster
            .run(&["node", &self.cluster.dir, &self.i.to_string(), "start"]);
    }
}

/// One scenario at a time: they stop and start nodes.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A test broker coordinated by node 1 and a broker process coordinated by node 2, in a
/// namespace of their own.
async fn two_brokers(cluster: &Cluster) -> (TestApp, BrokerProcess) {
    let namespace = format!("{}_", unique("cluster"));
    let first = cluster.url(1);
    let app = spawn_app_with(Backend::Couch, move |s| {
        s.couchdb.url = Some(first);
        s.couchdb.db_prefix = namespace;
    })
    .await;
    let mut settings = app.settings.clone();
    settings.couchdb.url = Some(cluster.url(2));
    let other = spawn_process(&settings, 0).await;
    (app, other)
}

/// Token requests the provider received whose body holds `needle`.
async fn provider_calls(app: &TestApp, needle: &str) -> usize {
    app.provider
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains(needle))
        .count()
}

/// `ROUNDS` rounds: a flow started, then 20 concurrent loads of its redirect, half through
/// each broker; each round makes one code exchange and one account.
async fn one_state_completes_once(app: &TestApp, other: &BrokerProcess, label: &str) {
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"access_token": "a", "refresh_token": "r", "expires_in": 3600}),
            ),
        )
        .mount(&app.provider)
        .await;
    for round in 0..ROUNDS {
        let resp = app
            .http
            .get(format!("{}/accounts/{t}/start?state=s{round}", app.address))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{label} round {round}: start");
        let state = TestApp::state_in(&location(&resp));
        let cookie = binding_cookie_of(&resp);
        let code = format!("{label}-{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(20));
        let loads = (0..20).map(|i| {
            let address = if i % 2 == 0 {
                app.address.clone()
            } else {
                other.address.clone()
            };
            let (http, barrier, cookie) = (app.http.clone(), barrier.clone(), cookie.clone());
            let url = format!("{address}/accounts/{t}/redirect?code={code}&state={state}");
            tokio::spawn(async move {
                barrier.wait().await;
                let resp = http.get(url).header("cookie", cookie).send().await.unwrap();
                (resp.status().as_u16(), location_or_empty(&resp))
            })
        });
        let answers: Vec<(u16, String)> = futures::future::join_all(loads)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let completed = answers
            .iter()
            .filter(|(_, loc)| loc.contains("account="))
            .count();
        assert_eq!(completed, 1, "{label} round {round}: {answers:?}");
        assert!(
            answers
                .iter()
                .all(|(s, loc)| loc.contains("account=") || *s == 400 || *s == 409),
            "{label} round {round}: the others are refused: {answers:?}"
        );
        assert_eq!(
            provider_calls(app, &format!("code={code}")).await,
            1,
            "{label} round {round}: one code exchange"
        );
    }
    assert_eq!(
        app.accounts(&inst).await.len(),
        ROUNDS,
        "{label}: one account a round"
    );
}

/// Store operations a broker made so far (`broker_store_seconds_count`, every operation).
async fn store_operations(http: &reqwest::Client, address: &str) -> u64 {
    let text = http
        .get(format!("{address}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("broker_store_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn location_or_empty(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_sign_in_state_completes_once_through_two_brokers() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let (app, other) = two_brokers(&cluster).await;
    one_state_completes_once(&app, &other, "all-up").await;
    let _down = cluster.stop(3);
    one_state_completes_once(&app, &other, "node-3-down").await;
}

/// `ROUNDS` rounds: an account seeded, then 50 concurrent refreshes of it through both
/// brokers, the provider answering in 0.5 s; each round makes one provider call, and
/// every caller gets the new token.
async fn concurrent_refreshes_make_one_provider_call(
    app: &TestApp,
    other: &BrokerProcess,
    label: &str,
) {
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    for round in 0..ROUNDS {
        let old = format!("rt-{label}-{round}");
        let id = app
            .seed_account(
                &inst,
                json!({"account_type": t, "name": "",
                       "oauth": {"access_token": "at-old", "refresh_token": old}}),
            )
            .await;
        let fresh = format!("at-{label}-{round}");
        Mock::given(path("/token"))
            .and(body_string_contains(format!("refresh_token={old}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": fresh, "refresh_token": format!("{old}-next"), "expires_in": 3600}))
                    .set_delay(Duration::from_millis(500)),
            )
            .mount(&app.provider)
            .await;
        let before = store_operations(&app.http, &app.address).await
            + store_operations(&app.http, &other.address).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(50));
        let calls = (0..50).map(|i| {
            let address = if i % 2 == 0 {
                app.address.clone()
            } else {
                other.address.clone()
            };
            let (http, barrier, token) = (app.http.clone(), barrier.clone(), token.clone());
            let url = format!("{address}/accounts/{t}/{id}/refresh");
            tokio::spawn(async move {
                barrier.wait().await;
                let started = std::time::Instant::now();
                let resp = http.post(url).bearer_auth(token).send().await.unwrap();
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or_default();
                (status, body, started.elapsed())
            })
        });
        let mut took = Vec::new();
        for answer in futures::future::join_all(calls).await {
            let (status, body, elapsed) = answer.unwrap();
            assert_eq!(status, 200, "{label} round {round}: {body}");
            assert_eq!(
                body["data"]["attributes"]["oauth"]["access_token"], fresh,
                "{label} round {round}"
            );
            took.push(elapsed);
        }
        took.sort();
        let store_ops = store_operations(&app.http, &app.address).await
            + store_operations(&app.http, &other.address).await
            - before;
        assert_eq!(
            provider_calls(app, &format!("refresh_token={old}")).await,
            1,
            "{label} round {round}: one provider call"
        );
        assert_eq!(
            app.account(&inst, &id).await["oauth"]["refresh_token"],
            format!("{old}-next"),
            "{label} round {round}: the rotated refresh token is stored"
        );
        println!(
            "{label} round {round}: 50 refreshes, 1 provider call, {store_ops} store operations, p50 {:?}, p99 {:?}",
            took[24], took[49]
        );
        assert!(
            took[49] < Duration::from_secs(2),
            "{label} round {round}: every caller answered within 2 s (provider 0.5 s): {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_refreshes_through_two_brokers_make_one_provider_call() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let (app, other) = two_brokers(&cluster).await;
    concurrent_refreshes_make_one_provider_call(&app, &other, "all-up").await;
    let _down = cluster.stop(3);
    concurrent_refreshes_make_one_provider_call(&app, &other, "node-3-down").await;
}

/// 200 flows, each started on one broker and completed on the other, 16 at a time; node 3
/// is stopped once 100 are done. Every flow completes, and every account holds the tokens
/// its flow was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_stopped_mid_run_loses_no_flow_and_no_token() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let (app, other) = two_brokers(&cluster).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    // Each code gets its own refresh token back, so a lost or crossed write shows.
    Mock::given(path("/token"))
        .respond_with(|req: &wiremock::Request| {
            let body = String::from_utf8_lossy(&req.body).into_owned();
            let code = url::form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            ResponseTemplate::new(200).set_body_json(
                json!({"access_token": format!("at-{code}"), "refresh_token": format!("rt-{code}"), "expires_in": 3600}),
            )
        })
        .mount(&app.provider)
        .await;
    let addresses = [app.address.clone(), other.address.clone()];
    let finished = Arc::new(AtomicUsize::new(0));
    let stopper = {
        let finished = finished.clone();
        let (sh, dir) = (cluster.sh.clone(), cluster.dir.clone());
        tokio::spawn(async move {
            while finished.load(Ordering::SeqCst) < 100 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::task::spawn_blocking(move || {
                Command::new(sh)
                    .args(["node", &dir, "3", "stop"])
                    .status()
                    .unwrap()
            })
            .await
            .unwrap()
        })
    };
    let outcomes: Vec<(usize, Result<String, String>)> = futures::stream::iter(0..200)
        .map(|i| {
            let (http, token, t, finished) =
                (app.http.clone(), token.clone(), t.clone(), finished.clone());
            let (start_on, back_on) = (addresses[i % 2].clone(), addresses[(i + 1) % 2].clone());
            async move {
                let outcome = async {
                    let resp = http
                        .get(format!("{start_on}/accounts/{t}/start?state=s{i}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    if resp.status() != 303 {
                        return Err(format!("start: {}", resp.status()));
                    }
                    let state = TestApp::state_in(&location(&resp));
                    let done = http
                        .get(format!(
                            "{back_on}/accounts/{t}/redirect?code=c{i}&state={state}"
                        ))
                        .header("cookie", binding_cookie_of(&resp))
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let loc = location_or_empty(&done);
                    if loc.contains("account=") {
                        Ok(loc)
                    } else {
                        Err(format!(
                            "redirect: {} {}",
                            done.status(),
                            done.text().await.unwrap_or_default()
                        ))
                    }
                }
                .await;
                finished.fetch_add(1, Ordering::SeqCst);
                (i, outcome)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(stopper.await.unwrap().success());
    let _down = StoppedNode {
        cluster: &cluster,
        i: 3,
    };
    let failed: Vec<_> = outcomes.iter().filter(|(_, o)| o.is_err()).collect();
    assert!(failed.is_empty(), "every flow completes: {failed:?}");
    for (i, outcome) in &outcomes {
        let loc = outcome.as_ref().unwrap();
        let id = &query_of(loc)["account"];
        let account = app.account(&inst, id).await;
        assert_eq!(
            account["oauth"]["refresh_token"],
            format!("rt-c{i}"),
            "flow {i}"
        );
    }
    assert_eq!(app.accounts(&inst).await.len(), 200, "one account a flow");
}
