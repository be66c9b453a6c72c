//! Budget Insight types beside cozy-stack, with the shipped routing (all of `/accounts/`
//! to the broker): the broker hands their requests to cozy-stack (`cozy.stack_url`)
//! unchanged and gives its answers back unchanged. cozy-stack is played by a server that
//! records what reaches it (it cannot be built here).

use crate::both_stores;
use crate::common::cozy_stack::*;
use crate::helpers::*;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A BI type as cozy's secrets hold it, written there by cozy's own tooling (the
/// broker's admin API refuses a type it does not run).
async fn bi_type(c: &Cozy) -> String {
    let t = unique("bibank");
    put(
        &c.app,
        "secrets/io-cozy-account_types",
        json!({"_id": t, "grant_mode": "bi_webview",
            "client_id": "bi-client", "client_secret": "bi-secret",
            "auth_endpoint": "https://bi.example/webview", "token_endpoint": "https://bi.example/token"}),
    )
    .await;
    t
}

/// What cozy-stack answers for a BI start: a redirect to Budget Insight's webview, and
/// a short-run session cookie.
async fn played_stack() -> MockServer {
    let stack = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(303)
                .insert_header(
                    "location",
                    "https://bi.example/webview?client_id=bi-client&state=abc",
                )
                .insert_header("set-cookie", "cozysessid=short; Path=/; HttpOnly"),
        )
        .mount(&stack)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"id": "acc"}})))
        .mount(&stack)
        .await;
    stack
}

/// Connect, reconnect, manage and redirect of a BI type reach cozy-stack as the browser
/// sent them (method, path, query, `Host`, cookies), and its answer comes back as is.
/// On the main of 2026-12-07 each was a 400 or 500 page from the broker.
async fn a_budget_insight_type_is_handed_to_cozy_stack_unchanged(b: Backend) {
    let stack = played_stack().await;
    let url = stack.uri();
    let c = spawn_cozy(b, move |s| s.cozy.stack_url = url).await;
    let t = bi_type(&c).await;
    let cookie = format!("cozysessid={NESTED_COOKIE}");
    let calls = [
        (DOMAIN, format!("/accounts/{t}/start?state=s&nonce=1&slug=home&token=bi-temp-token&connector_uuids=u-1")),
        (DOMAIN, format!("/accounts/{t}/acc-1/reconnect?state=s&code=c&connection_id=42")),
        (DOMAIN, format!("/accounts/{t}/acc-1/manage?state=s&code=c&connection_id=42")),
        ("oauthcallback.cozy.example", format!("/accounts/{t}/redirect?state=abc&connection_id=42")),
    ];
    for (host, path) in &calls {
        let resp = c
            .request(reqwest::Method::GET, host, path)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{path}");
        assert_eq!(
            location(&resp),
            "https://bi.example/webview?client_id=bi-client&state=abc"
        );
        assert_eq!(
            resp.headers()["set-cookie"],
            "cozysessid=short; Path=/; HttpOnly"
        );
    }
    let resp = c
        .refresh(DOMAIN, &t, "acc-1", &Cozy::konnector_token("bankkonn"))
        .await;
    assert_eq!(resp.status(), 200);
    let seen = stack.received_requests().await.unwrap();
    assert_eq!(seen.len(), calls.len() + 1);
    for (req, (host, path)) in seen.iter().zip(&calls) {
        assert_eq!(req.method.as_str(), "GET");
        assert_eq!(
            format!("{}?{}", req.url.path(), req.url.query().unwrap_or_default()),
            *path
        );
        assert_eq!(req.headers["host"], *host);
        assert_eq!(req.headers["cookie"], cookie.as_str());
    }
    assert_eq!(seen[4].method.as_str(), "POST");
    assert!(seen[4].headers["authorization"]
        .to_str()
        .unwrap()
        .starts_with("Bearer "));
    // Nothing of the broker's was written for them.
    assert!(c.app.accounts(&c.inst).await.is_empty());
}

/// Types the broker runs are never handed over.
async fn other_types_stay_with_the_broker(b: Backend) {
    let stack = played_stack().await;
    let url = stack.uri();
    let c = spawn_cozy(b, move |s| s.cozy.stack_url = url).await;
    let t = c.app.code_type(json!({})).await;
    let resp = c
        .start(&t, Some(&format!("cozysessid={NESTED_COOKIE}")), "")
        .await;
    assert_eq!(resp.status(), 303);
    assert!(location(&resp).starts_with(&c.app.provider.uri()));
    let resp = c
        .request(reqwest::Method::GET, DOMAIN, "/accounts/unknown-type/start")
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), 303);
    assert!(stack.received_requests().await.unwrap().is_empty());
}

/// cozy-stack down: a page that says so (502 `stack_unavailable`); without
/// `cozy.stack_url`, a page that says the type is cozy-stack's.
async fn a_budget_insight_type_without_a_reachable_stack_gets_a_clear_page(b: Backend) {
    let c = spawn_cozy(b, |s| s.cozy.stack_url = "http://127.0.0.1:9".into()).await;
    let t = bi_type(&c).await;
    let resp = c
        .start(&t, Some(&format!("cozysessid={NESTED_COOKIE}")), "")
        .await;
    assert_eq!(resp.status(), 502);
    assert!(resp.text().await.unwrap().contains("stack_unavailable"));
    let c = spawn_cozy(b, |_| {}).await;
    let t = bi_type(&c).await;
    let resp = c
        .start(&t, Some(&format!("cozysessid={NESTED_COOKIE}")), "")
        .await;
    assert!(resp.status().is_client_error() || resp.status().is_server_error());
    assert!(resp.text().await.unwrap().contains("Budget Insight"));
}

both_stores!(
    a_budget_insight_type_is_handed_to_cozy_stack_unchanged,
    other_types_stay_with_the_broker,
    a_budget_insight_type_without_a_reachable_stack_gets_a_clear_page,
);
