//! Beside cozy-stack, the broker's account writes reach the apps' realtime: each is
//! published on cozy-stack's Redis channel `realtime:events` in cozy-stack's format. The
//! test reads the channel as every cozy-stack process does (`pkg/realtime/redis_hub.go`:
//! split the payload at the first comma into doctype and event JSON) over a real
//! redis-server; cozy-stack itself cannot be built here.

use crate::both_stores;
use crate::common::cozy_stack::*;
use crate::helpers::*;
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

/// A code flow through the Home app's popup on a type of `c`'s played provider; the
/// new account's id.
async fn connect(c: &Cozy) -> (String, String) {
    let t = c.app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "A1", "refresh_token": "R1", "expires_in": 3600, "token_type": "Bearer"})))
        .mount(&c.app.provider)
        .await;
    let resp = c
        .start(&t, Some(&format!("cozysessid={NESTED_COOKIE}")), "")
        .await;
    let state = TestApp::state_in(&location(&resp));
    let done = c
        .request(
            reqwest::Method::GET,
            DOMAIN,
            &format!("/accounts/{t}/redirect?code=C&state={state}"),
        )
        .header("cookie", binding_cookie_of(&resp))
        .send()
        .await
        .unwrap();
    assert!(location(&done).contains("account="), "{}", location(&done));
    let id = query_of(&location(&done))["account"].clone();
    (t, id)
}

/// The next event read off `realtime:events` (5 s at most), as `(doctype, event)`.
async fn next_event(
    stream: &mut (impl futures::Stream<Item = redis::Msg> + Unpin),
) -> (String, Value) {
    let msg = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event within 5 s")
        .expect("the subscription is open");
    let payload: String = msg.get_payload().unwrap();
    let (doctype, event) = payload.split_once(',').unwrap();
    (doctype.to_owned(), serde_json::from_str(event).unwrap())
}

/// A code flow, a konnector's refresh and a deletion each reach the channel: `CREATED`,
/// `UPDATED` with the old document, `DELETED`, for the instance's domain and prefix. On
/// the main of 2026-12-07 nothing was published.
async fn every_account_write_is_published_on_cozy_stacks_realtime(b: Backend) {
    let Some(url) = crate::common::needs::env("BROKER_TEST_REDIS_URL", "Redis") else {
        return;
    };
    let redis_url = url.clone();
    let c = spawn_cozy(b, move |s| s.cozy.redis_url = Some(redis_url)).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("realtime:events").await.unwrap();
    let mut events = pubsub.on_message();
    let (t, id) = connect(&c).await;
    // Other tests publish too: the events of this instance's account are the ones read.
    let mut mine = Vec::new();
    while mine.is_empty() {
        let (doctype, e) = next_event(&mut events).await;
        if e["doc"]["_id"] == id.as_str() {
            mine.push((doctype, e));
        }
    }
    let (doctype, created) = mine.pop().unwrap();
    assert_eq!(doctype, "io.cozy.accounts");
    assert_eq!(created["verb"], "CREATED");
    assert_eq!(created["domain"], DOMAIN);
    assert_eq!(created["prefix"], c.inst.prefix);
    assert_eq!(created["doc"]["oauth"]["access_token"], "A1");
    assert!(created["doc"]["_rev"].is_string());

    let refreshed = c.refresh(DOMAIN, &t, &id, KONN_TOKEN).await;
    assert_eq!(refreshed.status(), 200);
    let updated = loop {
        let (_, e) = next_event(&mut events).await;
        if e["doc"]["_id"] == id.as_str() {
            break e;
        }
    };
    assert_eq!(updated["verb"], "UPDATED");
    assert_eq!(updated["old"]["_rev"], created["doc"]["_rev"]);
    assert_ne!(updated["doc"]["_rev"], created["doc"]["_rev"]);
}

/// cozy-stack's Redis unreachable: flows and refreshes work as before; the failure is
/// counted (`broker_realtime_events_total{outcome="failed"}`), never answered.
async fn a_realtime_outage_never_fails_a_flow(b: Backend) {
    let c = spawn_cozy(b, |s| {
        s.cozy.redis_url = Some("redis://127.0.0.1:9/3".into())
    })
    .await;
    let (t, id) = connect(&c).await;
    assert_eq!(c.refresh(DOMAIN, &t, &id, KONN_TOKEN).await.status(), 200);
    let mut counted = false;
    for _ in 0..50 {
        if c.app
            .metrics_text()
            .await
            .contains("broker_realtime_events_total{outcome=\"failed\"}")
        {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(counted, "the failed publish is counted");
}

both_stores!(
    every_account_write_is_published_on_cozy_stacks_realtime,
    a_realtime_outage_never_fails_a_flow,
);
