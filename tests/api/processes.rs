//! Two broker processes on one store: one provider call for many concurrent refreshes,
//! and a process killed mid-refresh loses nothing.

use crate::both_stores;
use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use wiremock::matchers::{body_string_contains, path};
use wiremock::{Mock, ResponseTemplate};

/// A test app (for setup and reading the store) and two broker processes on its store.
async fn two_processes(b: Backend, lease_secs: u64) -> (TestApp, BrokerProcess, BrokerProcess) {
    let namespace = format!("{}_", unique("proc"));
    let app = spawn_app_with(b, move |s| s.couchdb.db_prefix = namespace).await;
    let one = spawn_process(&app.settings, lease_secs).await;
    let two = spawn_process(&app.settings, lease_secs).await;
    (app, one, two)
}

async fn refresh_on(
    http: &reqwest::Client,
    address: &str,
    t: &str,
    id: &str,
    token: &str,
) -> reqwest::Response {
    http.post(format!("{address}/accounts/{t}/{id}/refresh"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn fifty_refreshes_over_two_processes_make_one_provider_call(b: Backend) {
    let (app, one, two) = two_processes(b, 0).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    let id = app
        .seed_account(&inst, json!({"account_type": t, "name": "", "oauth": {"access_token": "at-1", "refresh_token": "rt-1"}}))
        .await;
    rotating_provider(&app.provider).await;
    let calls = (0..50).map(|i| {
        let address = if i % 2 == 0 {
            &one.address
        } else {
            &two.address
        };
        refresh_on(&app.http, address, &t, &id, &token)
    });
    for resp in futures::future::join_all(calls).await {
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["data"]["attributes"]["oauth"]["access_token"], "at-2");
    }
    assert_eq!(
        app.account(&inst, &id).await["oauth"]["refresh_token"],
        "rt-2"
    );
}

async fn a_process_killed_mid_refresh_is_taken_over_after_its_lease(b: Backend) {
    let (app, mut one, two) = two_processes(b, 3).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    let id = app
        .seed_account(&inst, json!({"account_type": t, "name": "", "oauth": {"access_token": "at-1", "refresh_token": "rt-1"}}))
        .await;
    // The first request hangs at the provider; the process making it dies meanwhile.
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "never"}))
                .set_delay(Duration::from_secs(10)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.provider)
        .await;
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=rt-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "at-3", "refresh_token": "rt-3"})),
        )
        .expect(1)
        .with_priority(2)
        .mount(&app.provider)
        .await;
    let doomed = tokio::spawn({
        let (http, address, t, id, token) = (
            app.http.clone(),
            one.address.clone(),
            t.clone(),
            id.clone(),
            token.clone(),
        );
        async move {
            http.post(format!("{address}/accounts/{t}/{id}/refresh"))
                .bearer_auth(token)
                .send()
                .await
        }
    });
    provider_has(&app.provider, 1).await;
    assert_eq!(
        app.provider.received_requests().await.unwrap().len(),
        1,
        "the first process is at the provider"
    );
    one.child.kill().unwrap(); // SIGKILL: no chance to release its lease
    let _ = one.child.wait();
    assert!(doomed.await.unwrap().is_err());
    let started = Instant::now();
    let resp = refresh_on(&app.http, &two.address, &t, &id, &token).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["attributes"]["oauth"]["access_token"], "at-3");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "waited for the dead process's lease"
    );
    let stored = app.account(&inst, &id).await;
    assert_eq!(
        stored["oauth"]["refresh_token"], "rt-3",
        "the refresh token is the one the provider issued last"
    );
}

both_stores!(
    fifty_refreshes_over_two_processes_make_one_provider_call,
    a_process_killed_mid_refresh_is_taken_over_after_its_lease,
    a_revoked_token_is_refused_by_every_process_within_a_second,
);

async fn flows_survive_a_replica_killed_mid_run(b: Backend) {
    use futures::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let (app, one, two) = two_processes(b, 0).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"access_token": "a", "refresh_token": "r", "expires_in": 3600}),
                )
                .set_delay(Duration::from_millis(20)),
        )
        .mount(&app.provider)
        .await;
    let addresses = [one.address.clone(), two.address.clone()];
    let doomed = Arc::new(std::sync::Mutex::new(one));
    let finished = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (doomed, finished) = (doomed.clone(), finished.clone());
        tokio::spawn(async move {
            while finished.load(Ordering::SeqCst) < 100 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut p = doomed.lock().unwrap();
            p.child.kill().unwrap(); // SIGKILL, mid-run
            let _ = p.child.wait();
        })
    };
    // Each flow starts on one replica and comes back on the other. An error names the
    // replica it came from.
    let outcomes: Vec<Result<String, (String, String)>> = futures::stream::iter(0..200)
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
                        .map_err(|e| (start_on.clone(), e.to_string()))?;
                    let state = TestApp::state_in(&location(&resp));
                    let done = http
                        .get(format!(
                            "{back_on}/accounts/{t}/redirect?code=c&state={state}"
                        ))
                        .header("cookie", binding_cookie_of(&resp))
                        .send()
                        .await
                        .map_err(|e| (back_on.clone(), e.to_string()))?;
                    Ok(location(&done))
                }
                .await;
                finished.fetch_add(1, Ordering::SeqCst);
                outcome
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    killer.await.unwrap();
    let mut completed = 0;
    for outcome in &outcomes {
        match outcome {
            Ok(loc) => {
                assert!(
                    loc.contains("account="),
                    "every flow that reached a live replica completed: {loc}"
                );
                completed += 1;
            }
            Err((replica, e)) => {
                assert_eq!(replica, &addresses[0], "only the killed replica fails: {e}")
            }
        }
    }
    assert!(completed >= 100, "{completed} of 200 completed");
    let survivor_redirects = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(survivor_redirects, completed);
    // Every completed flow has its account; a redirect in flight on the killed replica may
    // have written one whose answer never left (at most one per concurrent flow).
    let stored: Vec<String> = app
        .accounts(&inst)
        .await
        .iter()
        .map(|d| d["_id"].as_str().unwrap().to_owned())
        .collect();
    for loc in outcomes.iter().flatten() {
        assert!(stored.contains(&query_of(loc)["account"]), "{loc}");
    }
    assert!(
        stored.len() <= completed + 16,
        "{} accounts, {completed} flows",
        stored.len()
    );
}

both_stores!(flows_survive_a_replica_killed_mid_run);

async fn sigterm_lets_an_in_flight_flow_finish(b: Backend) {
    let namespace = format!("{}_", unique("term"));
    let app = spawn_app_with(b, move |s| s.couchdb.db_prefix = namespace).await;
    let mut broker = spawn_process(&app.settings, 0).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "a"}))
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&app.provider)
        .await;
    let resp = app
        .http
        .get(format!("{}/accounts/{t}/start", broker.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let state = TestApp::state_in(&location(&resp));
    let cookie = binding_cookie_of(&resp);
    let in_flight = tokio::spawn({
        let (http, url) = (
            app.http.clone(),
            format!(
                "{}/accounts/{t}/redirect?code=c&state={state}",
                broker.address
            ),
        );
        async move { http.get(url).header("cookie", cookie).send().await }
    });
    // The flow is in flight once the provider has its code (and answers in 1.5 s).
    provider_has(&app.provider, 1).await;
    let pid = broker.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let done = in_flight
        .await
        .unwrap()
        .expect("the in-flight redirect is answered");
    assert!(location(&done).contains("account="));
    let status = broker.child.wait().unwrap();
    assert!(status.success(), "the broker exits cleanly: {status}");
    assert_eq!(app.accounts(&inst).await.len(), 1);
}

both_stores!(sigterm_lets_an_in_flight_flow_finish);

async fn sigterm_stops_promptly_and_finishes_the_background_refresh_in_flight(b: Backend) {
    let namespace = format!("{}_", unique("stop"));
    // The margin alone decides, so the 60 s token is due at once.
    let app = spawn_app_with(b, move |s| {
        s.couchdb.db_prefix = namespace;
        on_the_margin_alone(s);
    })
    .await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "old", "refresh_token": "rt-1", "expires_in": 60}),
        ))
        .mount(&app.provider)
        .await;
    // The provider rotates the refresh token, slowly: the stop comes while it answers.
    Mock::given(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"access_token": "new", "refresh_token": "rt-2", "expires_in": 3600}),
                )
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&app.provider)
        .await;
    // Due at once: it expires within the refresh margin.
    let url = app.start_flow(&inst, &t).await;
    let done = app
        .redirect(&t, &[("code", "c"), ("state", &TestApp::state_in(&url))])
        .await;
    let id = query_of(&location(&done))["account"].clone();

    let mut broker = spawn_process_with(
        &app.settings,
        0,
        &[
            ("BROKER__REFRESH__ENABLED", "true"),
            ("BROKER__REFRESH__INTERVAL_SECS", "1"),
            ("BROKER__REFRESH__LIFETIME_SHARE_PERCENT", "0"),
            ("BROKER__REFRESH__FLOOR_SECS", "0"),
        ],
    )
    .await;
    let refreshing = async {
        loop {
            let asked = app.provider.received_requests().await.unwrap_or_default();
            if asked
                .iter()
                .any(|r| String::from_utf8_lossy(&r.body).contains("grant_type=refresh_token"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), refreshing)
        .await
        .expect("the refresher asks the provider");
    let asked_to_stop = std::time::Instant::now();
    let pid = broker.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(status) = broker.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked_to_stop.elapsed() < Duration::from_secs(10),
            "the broker is still running 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "the broker exits cleanly: {status}");
    // The refresh under way was finished, not dropped: the rotated pair is stored.
    let doc = app.account(&inst, &id).await;
    assert_eq!(doc["oauth"]["access_token"], "new");
    assert_eq!(doc["oauth"]["refresh_token"], "rt-2");
}

both_stores!(sigterm_stops_promptly_and_finishes_the_background_refresh_in_flight);

/// API tokens are cached by each process; a revocation through one process (or straight
/// in the store) is in force in the other within a second, through the changes feed.
async fn a_revoked_token_is_refused_by_every_process_within_a_second(b: Backend) {
    let (app, one, two) = two_processes(b, 0).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let status_on = |address: String, token: String| {
        let http = app.http.clone();
        let t = t.clone();
        async move {
            http.get(format!("{address}/accounts/{t}/no-such-account/status"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    for revoke_through_admin in [true, false] {
        let token = app.api_token(&inst).await;
        // Known to both (the account is not: 404 after the token was accepted), and cached.
        for address in [&one.address, &two.address] {
            for _ in 0..3 {
                assert_eq!(status_on(address.clone(), token.clone()).await, 404);
            }
        }
        if revoke_through_admin {
            let resp = app
                .http
                .post(format!("{}/admin/tokens/revoke", one.address))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"token": token}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        } else {
            // Another tool deleting the document: only the changes feed tells.
            let id = oauth_broker::domain::secret::sha256_hex(&token);
            let doc = app
                .store
                .get("broker/api_tokens", &id)
                .await
                .unwrap()
                .unwrap();
            app.store
                .delete("broker/api_tokens", &id, doc["_rev"].as_str().unwrap())
                .await
                .unwrap();
        }
        let revoked_at = Instant::now();
        let mut refused = false;
        while revoked_at.elapsed() < Duration::from_secs(1) {
            let (a, b) = (
                status_on(one.address.clone(), token.clone()).await,
                status_on(two.address.clone(), token.clone()).await,
            );
            if a == 403 && b == 403 {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            refused,
            "a revoked token still accepted after a second (admin: {revoke_through_admin})"
        );
    }
}
