//! Webhooks: signed, retried, for account creation, dead refresh tokens and reconnection.

use crate::both_stores;
use crate::helpers::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The events the hook received, in order, each checked against its signature.
pub(crate) async fn events(hook: &MockServer) -> Vec<Value> {
    let mut out = Vec::new();
    for r in hook.received_requests().await.unwrap() {
        let sig = r
            .headers
            .get("x-broker-signature")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            sig,
            format!(
                "sha256={}",
                oauth_broker::webhooks::sign(b"whsec-0123456789abcdef", &r.body)
            ),
            "signed"
        );
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            r.headers.get("x-broker-event").unwrap().to_str().unwrap(),
            body["event"]
        );
        out.push(body);
    }
    out
}

pub(crate) async fn wait_for(hook: &MockServer, n: usize) -> Vec<Value> {
    wait_for_within(hook, n, 5).await
}

async fn wait_for_within(hook: &MockServer, n: usize, secs: u64) -> Vec<Value> {
    for _ in 0..secs * 10 {
        let got = events(hook).await;
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "fewer than {n} webhook deliveries: {:?}",
        events(hook).await
    );
}

async fn account_events_are_signed_retried_and_delivered(b: Backend) {
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&hook)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .with_priority(2)
        .mount(&hook)
        .await;
    let url = format!("{}/hook", hook.uri());
    let app = spawn_app_with(b, move |s| {
        s.webhooks.url = Some(url);
        s.webhooks.secret = "whsec-0123456789abcdef".into();
        s.webhooks.retry_base_ms = 50;
    })
    .await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "a", "refresh_token": "dead"})),
        )
        .mount(&app.provider)
        .await;
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=dead"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .mount(&app.provider)
        .await;
    let url = app.start_flow(&inst, &t).await;
    let loc = location(
        &app.redirect(&t, &[("code", "c"), ("state", &TestApp::state_in(&url))])
            .await,
    );
    let id = query_of(&loc)["account"].clone();
    let got = wait_for(&hook, 2).await;
    assert_eq!(
        got[0], got[1],
        "the refused delivery was retried with the same body"
    );
    assert_eq!(got[1]["event"], "account.created");
    assert_eq!(got[1]["account_id"], id.as_str());
    assert_eq!(got[1]["account_type"], t.as_str());
    assert_eq!(got[1]["instance"], inst.domain.as_str());

    assert_eq!(app.refresh(&t, &id, Some(&token)).await.status(), 401);
    let got = wait_for(&hook, 3).await;
    assert_eq!(got[2]["event"], "refresh.failed");
    assert_eq!(got[2]["error"], "invalid_grant");

    let url = app.reconnect_flow(&inst, &t, &id).await;
    app.redirect(&t, &[("code", "c"), ("state", &TestApp::state_in(&url))])
        .await;
    let got = wait_for(&hook, 4).await;
    assert_eq!(got[3]["event"], "account.reconnected");
    assert_eq!(got[3]["account_id"], id.as_str());
}

both_stores!(account_events_are_signed_retried_and_delivered);

#[tokio::test]
async fn a_webhook_url_without_a_signing_secret_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    for secret in ["", "short"] {
        let mut s = test_settings(Backend::Embedded, dir.path());
        s.webhooks.url = Some("https://hooks.example/broker".into());
        s.webhooks.secret = secret.into();
        let refused = oauth_broker::startup::Application::build(&s).await;
        let e = refused.err().expect("refused").to_string();
        assert!(e.contains("webhooks.secret"), "{e}");
    }
}

/// An event outlives the process that emitted it: stored before delivery, it is delivered
/// by the next process when the first one was killed with it still failing.
async fn an_undelivered_event_survives_the_process_being_killed(b: Backend) {
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&hook)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .with_priority(2)
        .mount(&hook)
        .await;
    let namespace = format!("{}_", unique("hook"));
    let app = spawn_app_with(b, move |s| s.couchdb.db_prefix = namespace).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "a"})))
        .mount(&app.provider)
        .await;
    let url = format!("{}/hook", hook.uri());
    let env = |retry_ms: &'static str| {
        vec![
            ("BROKER__WEBHOOKS__URL", url.clone()),
            (
                "BROKER__WEBHOOKS__SECRET",
                "whsec-0123456789abcdef".to_owned(),
            ),
            ("BROKER__WEBHOOKS__RETRY_BASE_MS", retry_ms.to_owned()),
        ]
    };
    // Long enough for the kill to come before the retry; the event is then due about 4 s
    // later, for whichever process runs.
    let first_env = env("4000");
    let first_env: Vec<(&str, &str)> = first_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut first = spawn_process_with(&app.settings, 0, &first_env).await;
    let resp = app
        .http
        .get(format!("{}/accounts/{t}/start?state=s", first.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let state = TestApp::state_in(&location(&resp));
    let done = app
        .http
        .get(format!(
            "{}/accounts/{t}/redirect?code=c&state={state}",
            first.address
        ))
        .header("cookie", binding_cookie_of(&resp))
        .send()
        .await
        .unwrap();
    assert!(location(&done).contains("account="));
    // The first attempt fails and its retry is planned; the process dies before the
    // retry. (Killed between the attempt and the planning, the event would wait out its
    // claim instead: delivered too, but later than this test waits.)
    for _ in 0..100 {
        let outbox = app
            .store
            .all_docs(oauth_broker::store::WEBHOOK_OUTBOX_DB)
            .await
            .unwrap();
        if outbox.iter().any(|d| d["attempts"] == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert_eq!(hook.received_requests().await.unwrap().len(), 1);

    let second_env = env("50");
    let second_env: Vec<(&str, &str)> = second_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _second = spawn_process_with(&app.settings, 0, &second_env).await;
    // A new process starts, then the retry falls due: generous on a loaded machine.
    let got = wait_for_within(&hook, 2, 20).await;
    assert_eq!(got[1]["event"], "account.created");
    assert_eq!(got[0], got[1], "the same event, delivered at last");
}

both_stores!(an_undelivered_event_survives_the_process_being_killed);

/// Puts events straight into the outbox, as `emit` stores them: `(key, n)` each, in
/// that order (ids sort by the order stored).
async fn seed_outbox(app: &TestApp, events: &[(&str, &str)]) {
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    for (i, (key, n)) in events.iter().enumerate() {
        let body = json!({"event": "account.created", "instance": key, "n": n}).to_string();
        let doc = json!({"_id": format!("{:015}-{i:04}", base), "event": "account.created",
            "body": body, "signature": "sha256=0", "key": key, "attempts": 0, "next_at": 0});
        app.store
            .put(oauth_broker::store::WEBHOOK_OUTBOX_DB, &doc)
            .await
            .unwrap();
    }
}

/// A webhook endpoint that holds each delivery until `hold` are under way (or a second
/// has passed) and records the most it saw at once.
async fn holding_endpoint(hold: usize) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (now, most, done) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (most2, done2) = (most.clone(), done.clone());
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let (now, most, done) = (now.clone(), most.clone(), done.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                // The whole request: headers, then Content-Length bytes of body.
                loop {
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if seen.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(at_once, Ordering::SeqCst);
                for _ in 0..100 {
                    if now.load(Ordering::SeqCst) >= hold {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                // Let the others of this round see the count before it falls.
                tokio::time::sleep(Duration::from_millis(50)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
                let _ = sock
                    .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (url, most2, done2)
}

async fn webhook_deliveries_overlap_up_to_the_configured_limit(b: Backend) {
    let (url, most, done) = holding_endpoint(3).await;
    let app = spawn_app_with(b, move |s| {
        s.webhooks.url = Some(url);
        s.webhooks.secret = "whsec-0123456789abcdef".into();
        s.webhooks.retry_base_ms = 50;
        s.webhooks.concurrency = 3;
        s.couchdb.db_prefix = format!("{}_", unique("hooks"));
    })
    .await;
    let events: Vec<(String, String)> =
        (0..9).map(|i| (format!("acc{i}"), i.to_string())).collect();
    let events: Vec<(&str, &str)> = events
        .iter()
        .map(|(k, n)| (k.as_str(), n.as_str()))
        .collect();
    seed_outbox(&app, &events).await;
    for _ in 0..100 {
        if done.load(Ordering::SeqCst) >= 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done.load(Ordering::SeqCst), 9, "every event delivered");
    assert_eq!(most.load(Ordering::SeqCst), 3, "three at once, never more");
}

async fn one_accounts_events_arrive_in_order_even_across_a_retry(b: Backend) {
    let hook = MockServer::start().await;
    // The account's first event is refused once; its second is due meanwhile.
    Mock::given(method("POST"))
        .and(body_string_contains("\"n\":\"first\""))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&hook)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .with_priority(2)
        .mount(&hook)
        .await;
    let url = format!("{}/hook", hook.uri());
    let app = spawn_app_with(b, move |s| {
        s.webhooks.url = Some(url);
        s.webhooks.secret = "whsec-0123456789abcdef".into();
        s.webhooks.retry_base_ms = 50;
        s.couchdb.db_prefix = format!("{}_", unique("hooks"));
    })
    .await;
    seed_outbox(&app, &[("x", "first"), ("x", "second"), ("y", "other")]).await;
    let mut order = Vec::new();
    for _ in 0..100 {
        order = hook
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .filter(|b| b["instance"] == "x")
            .map(|b| b["n"].as_str().unwrap().to_owned())
            .collect();
        if order.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        order,
        ["first", "first", "second"],
        "retried first, then the next"
    );
}

both_stores!(
    webhook_deliveries_overlap_up_to_the_configured_limit,
    one_accounts_events_arrive_in_order_even_across_a_retry,
);
