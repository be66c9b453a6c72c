//! `POST /accounts/{type}/{id}/refresh`.

use crate::both_stores;
use crate::helpers::*;
use oauth_broker::domain::Instance;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{body_string, body_string_contains, header, method, path};
use wiremock::{Mock, ResponseTemplate};

struct Fixture {
    app: TestApp,
    inst: Instance,
    token: String,
    t: String,
    id: String,
}

async fn fixture(b: Backend, type_extra: Value) -> Fixture {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(type_extra).await;
    let id = app
        .seed_account(
            &inst,
            json!({
            "account_type": t, "name": "", "label": "my label", "auth": {"login": "alice"},
            "oauth": {"access_token": "old-at", "token_type": "Bearer",
                      "expires_at": "2020-01-01T00:00:00Z", "refresh_token": "the-refresh-token"},
            "oauth_callback_results": {"scope": "s"}}),
        )
        .await;
    Fixture {
        app,
        inst,
        token,
        t,
        id,
    }
}

fn refreshed() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"access_token": "new-at", "expires_in": 3600}))
}

async fn refresh_posts_the_form_and_answers_json_api(b: Backend) {
    let f = fixture(b, json!({})).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(
            "client_id=the-client-id&client_secret=the-client-secret&grant_type=refresh_token&refresh_token=the-refresh-token",
        ))
        .respond_with(refreshed())
        .expect(1)
        .mount(&f.app.provider)
        .await;
    let resp = f.app.refresh(&f.t, &f.id, Some(&f.token)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/vnd.api+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["type"], "io.cozy.accounts");
    assert_eq!(body["data"]["id"], f.id.as_str());
    assert_eq!(
        body["data"]["links"]["self"],
        format!("/data/io.cozy.accounts/{}", f.id)
    );
    let attrs = &body["data"]["attributes"];
    assert_eq!(attrs["oauth"]["access_token"], "new-at");
    assert_eq!(
        attrs["oauth"]["refresh_token"], "the-refresh-token",
        "kept when the reply has none"
    );
    assert!(attrs.get("_id").is_none() && attrs.get("_rev").is_none());
    let stored = f.app.account(&f.inst, &f.id).await;
    assert_eq!(body["data"]["meta"]["rev"], stored["_rev"]);
    assert_eq!(stored["label"], "my label", "foreign fields kept");
    assert_eq!(stored["auth"]["login"], "alice");
    assert_eq!(stored["oauth_callback_results"]["scope"], "s");
    assert_ne!(stored["oauth"]["expires_at"], "2020-01-01T00:00:00Z");
}

async fn refresh_request_for_each_token_mode(b: Backend) {
    for (mode, check) in [("basic", 0), ("get", 1), ("json", 2)] {
        let f = fixture(b, json!({"token_mode": mode})).await;
        let mock = match check {
            0 => Mock::given(method("POST"))
                .and(header(
                    "authorization",
                    "Basic dGhlLWNsaWVudC1pZDp0aGUtY2xpZW50LXNlY3JldA==",
                ))
                .and(header("accept", "application/json"))
                .and(body_string(
                    "grant_type=refresh_token&refresh_token=the-refresh-token",
                )),
            1 => Mock::given(method("GET")).and(|r: &wiremock::Request| {
                r.url.query()
                    == Some("client_id=the-client-id&client_secret=the-client-secret&grant_type=refresh_token&refresh_token=the-refresh-token")
                    && r.body.is_empty()
            }),
            _ => Mock::given(method("POST"))
                .and(header("content-type", "application/json"))
                .and(wiremock::matchers::body_json(
                    json!({"grant_type": "refresh_token",
                    "refresh_token": "the-refresh-token", "client_id": "the-client-id",
                    "client_secret": "the-client-secret"}),
                )),
        };
        mock.and(path("/token"))
            .respond_with(refreshed())
            .expect(1)
            .mount(&f.app.provider)
            .await;
        let resp = f.app.refresh(&f.t, &f.id, Some(&f.token)).await;
        assert_eq!(resp.status(), 200, "{mode}");
    }
}

async fn basic_mode_sends_the_client_raw_as_cozy_stack_and_rfc6749_on_request(b: Backend) {
    // cozy-stack's `SetBasicAuth(id, secret)` sends them raw; a provider comparing raw
    // values refuses the form-encoded ones. `basic_rfc6749` asks for RFC 6749 §2.3.1.
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for (mode, sent) in [
        ("basic", b64("the:id:s&cr+t/=%")),
        ("basic_rfc6749", b64("the%3Aid:s%26cr%2Bt%2F%3D%25")),
    ] {
        let f = fixture(
            b,
            json!({"token_mode": mode, "client_id": "the:id", "client_secret": "s&cr+t/=%"}),
        )
        .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(header("authorization", format!("Basic {sent}").as_str()))
            .respond_with(refreshed())
            .expect(1)
            .mount(&f.app.provider)
            .await;
        let resp = f.app.refresh(&f.t, &f.id, Some(&f.token)).await;
        assert_eq!(resp.status(), 200, "{mode}");
    }
}

async fn refresh_stores_a_rotated_refresh_token(b: Backend) {
    let f = fixture(b, json!({})).await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "a2", "refresh_token": "rotated"})),
        )
        .mount(&f.app.provider)
        .await;
    assert_eq!(
        f.app.refresh(&f.t, &f.id, Some(&f.token)).await.status(),
        200
    );
    let stored = f.app.account(&f.inst, &f.id).await;
    assert_eq!(stored["oauth"]["refresh_token"], "rotated");
    assert_eq!(
        stored["oauth"]["expires_at"], "0001-01-01T00:00:00Z",
        "no expires_in: unknown, not the stale one"
    );
}

async fn refresh_with_a_dead_refresh_token_is_401_as_cozy_stack(b: Backend) {
    let f = fixture(b, json!({})).await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": "invalid_token", "error_description": "refresh token rejected"}),
        ))
        .mount(&f.app.provider)
        .await;
    let resp = f.app.refresh(&f.t, &f.id, Some(&f.token)).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["content-type"], "application/vnd.api+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"errors": [{"status": "401", "title": "Unauthorized", "code": "oauth_refresh_invalid_token",
                           "detail": "OAuth refresh token is invalid or expired; reconnect account.", "source": {}}]})
    );
    assert_eq!(
        f.app.account(&f.inst, &f.id).await["oauth"]["access_token"],
        "old-at"
    );
}

async fn refresh_provider_failures_leave_the_account_untouched(b: Backend) {
    let f = fixture(b, json!({})).await;
    for (reply, status) in [
        (ResponseTemplate::new(503).set_body_string("down"), 502),
        (
            ResponseTemplate::new(200).set_body_raw("<html/>", "text/html"),
            502,
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "late"}))
                .set_delay(Duration::from_secs(4)),
            504,
        ),
        (
            ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_client"})),
            502,
        ),
    ] {
        f.app.provider.reset().await;
        Mock::given(path("/token"))
            .respond_with(reply)
            .mount(&f.app.provider)
            .await;
        let resp = f.app.refresh(&f.t, &f.id, Some(&f.token)).await;
        assert_eq!(resp.status(), status);
        assert_eq!(
            f.app.account(&f.inst, &f.id).await["oauth"]["access_token"],
            "old-at"
        );
    }
}

async fn refresh_with_the_provider_down_is_502(b: Backend) {
    let f = fixture(b, json!({"token_endpoint": "http://127.0.0.1:9/token"})).await;
    let resp = f.app.refresh(&f.t, &f.id, Some(&f.token)).await;
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "provider_error");
}

async fn refresh_needs_a_token_of_the_accounts_instance(b: Backend) {
    let f = fixture(b, json!({})).await;
    assert_eq!(f.app.refresh(&f.t, &f.id, None).await.status(), 401);
    assert_eq!(
        f.app.refresh(&f.t, &f.id, Some("forged")).await.status(),
        403
    );
    let other = f.app.new_instance(None).await;
    let other_token = f.app.api_token(&other).await;
    assert_eq!(
        f.app
            .refresh(&f.t, &f.id, Some(&other_token))
            .await
            .status(),
        404
    );
    assert_eq!(
        f.app
            .refresh(&f.t, "no-such-account", Some(&f.token))
            .await
            .status(),
        404
    );
    assert_eq!(
        f.app
            .refresh(&f.t, "_design", Some(&f.token))
            .await
            .status(),
        404
    );
}

async fn refresh_takes_the_token_in_each_form_cozy_stack_takes(b: Backend) {
    // cozy-stack's GetRequestToken: `Authorization: Bearer`, the password of
    // `Authorization: Basic`, else `?bearer_token=`.
    use base64::Engine;
    let f = fixture(b, json!({})).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(refreshed())
        .mount(&f.app.provider)
        .await;
    let url = format!("{}/accounts/{}/{}/refresh", f.app.address, f.t, f.id);
    let basic = |user: &str, pass: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    };
    let force = format!("{url}?force=true");
    let as_query = f
        .app
        .http
        .post(format!("{force}&bearer_token={}", f.token))
        .send()
        .await
        .unwrap();
    assert_eq!(as_query.status(), 200, "?bearer_token=");
    let as_basic = f
        .app
        .http
        .post(&force)
        .header("authorization", basic("", &f.token))
        .send()
        .await
        .unwrap();
    assert_eq!(as_basic.status(), 200, "Basic with the token as password");
    let as_basic_user = f
        .app
        .http
        .post(&force)
        .header("authorization", basic("konnector", &f.token))
        .send()
        .await
        .unwrap();
    assert_eq!(as_basic_user.status(), 200, "Basic with a user name");
    // Forged in each form: refused as a forged bearer token is.
    for forged in [
        f.app.http.post(format!("{url}?bearer_token=forged")),
        f.app
            .http
            .post(&url)
            .header("authorization", basic("", "forged")),
        f.app
            .http
            .post(&url)
            .header("authorization", "Basic !!not-base64"),
    ] {
        assert_eq!(forged.send().await.unwrap().status(), 403);
    }
    // Two tokens in the query are refused, not guessed between.
    let twice = f
        .app
        .http
        .post(format!("{url}?bearer_token={0}&bearer_token={0}", f.token))
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
}

async fn refresh_without_a_refresh_token_answers_the_account_as_it_is(b: Backend) {
    // cozy-stack answers 200 with the account (toutatice refreshes on every run and
    // fails with VENDOR_DOWN on anything but oauth_refresh_invalid_token).
    let f = fixture(b, json!({})).await;
    let id = f
        .app
        .seed_account(
            &f.inst,
            json!({"account_type": f.t, "name": "", "label": "mine", "oauth": {"access_token": "x"}}),
        )
        .await;
    let before = f.app.account(&f.inst, &id).await;
    let resp = f.app.refresh(&f.t, &id, Some(&f.token)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let attributes = &body["data"]["attributes"];
    assert_eq!(attributes["oauth"]["access_token"], "x");
    assert_eq!(attributes["label"], "mine");
    // Unlike cozy-stack, no client secret is copied into the account.
    assert!(attributes["oauth"].get("client_secret").is_none(), "{body}");
    assert!(attributes["oauth"].get("client_id").is_none(), "{body}");
    // Nothing written, no provider call.
    assert_eq!(f.app.account(&f.inst, &id).await, before);
    assert!(f.app.provider.received_requests().await.unwrap().is_empty());
    // An account with no OAuth tokens at all is still not refreshable.
    let bare = f
        .app
        .seed_account(&f.inst, json!({"account_type": f.t, "name": ""}))
        .await;
    let resp = f.app.refresh(&f.t, &bare, Some(&f.token)).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "not_refreshable");
}

async fn refresh_that_loses_a_write_conflict_keeps_both_writes(b: Backend) {
    let f = fixture(b, json!({})).await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "new-at", "refresh_token": "rotated"}))
                .set_delay(Duration::from_millis(800)),
        )
        .mount(&f.app.provider)
        .await;
    let app = &f.app;
    let concurrent = async {
        // While the provider holds the refresh (it answers in 0.8 s).
        provider_has(&app.provider, 1).await;
        let mut doc = app.account(&f.inst, &f.id).await;
        doc["label"] = "renamed meanwhile".into();
        app.store.put(&f.inst.accounts_db(), &doc).await.unwrap();
    };
    let (resp, ()) = tokio::join!(app.refresh(&f.t, &f.id, Some(&f.token)), concurrent);
    assert_eq!(resp.status(), 200);
    let stored = app.account(&f.inst, &f.id).await;
    assert_eq!(stored["label"], "renamed meanwhile");
    assert_eq!(
        stored["oauth"]["refresh_token"], "rotated",
        "the rotated token is not lost"
    );
    assert!(stored["_rev"].as_str().unwrap().starts_with("3-"));
}

async fn refresh_of_a_type_without_token_endpoint_hands_the_client_to_the_konnector(b: Backend) {
    let f = fixture(b, json!({"token_endpoint": null})).await;
    let resp = f.app.refresh(&f.t, &f.id, Some(&f.token)).await;
    assert_eq!(resp.status(), 200);
    let stored = f.app.account(&f.inst, &f.id).await;
    assert_eq!(stored["oauth"]["client_id"], "the-client-id");
}

both_stores!(
    refresh_posts_the_form_and_answers_json_api,
    refresh_request_for_each_token_mode,
    basic_mode_sends_the_client_raw_as_cozy_stack_and_rfc6749_on_request,
    refresh_stores_a_rotated_refresh_token,
    refresh_with_a_dead_refresh_token_is_401_as_cozy_stack,
    refresh_provider_failures_leave_the_account_untouched,
    refresh_with_the_provider_down_is_502,
    refresh_needs_a_token_of_the_accounts_instance,
    refresh_without_a_refresh_token_answers_the_account_as_it_is,
    refresh_takes_the_token_in_each_form_cozy_stack_takes,
    refresh_that_loses_a_write_conflict_keeps_both_writes,
    refresh_of_a_type_without_token_endpoint_hands_the_client_to_the_konnector,
);

#[tokio::test]
async fn refresh_with_the_store_down_is_503() {
    let Some(relay) = CouchRelay::start().await else {
        return;
    };
    let app = spawn_relayed_app(&relay).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    relay.set_down(true).await;
    let resp = app.refresh("x", "y", Some(&token)).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "store_unavailable");
}

/// A second broker on the first one's store (and data directory), its own provider unused.
async fn second_broker(a: &TestApp) -> TestApp {
    let mut settings = a.settings.clone();
    settings.listen = "127.0.0.1:0".into();
    spawn_with_settings(
        settings,
        a._dir.clone(),
        wiremock::MockServer::start().await,
    )
    .await
}

async fn concurrent_refreshes_on_two_brokers_make_one_provider_call(b: Backend) {
    let a = spawn_app(b).await;
    let other = second_broker(&a).await;
    let inst = a.new_instance(None).await;
    let token = a.api_token(&inst).await;
    let t = a.code_type(json!({})).await;
    let id = a
        .seed_account(
            &inst,
            json!({"account_type": t, "name": "",
            "oauth": {"access_token": "at-1", "refresh_token": "rt-1"}}),
        )
        .await;
    rotating_provider(&a.provider).await;
    // Every caller is sent at once (a barrier), half through each broker.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let calls = (0..50).map(|i| {
        let address = if i % 2 == 0 {
            &a.address
        } else {
            &other.address
        };
        let url = format!("{address}/accounts/{t}/{id}/refresh");
        let (http, token, barrier) = (a.http.clone(), token.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            http.post(url).bearer_auth(token).send().await.unwrap()
        })
    });
    let answers = futures::future::join_all(calls).await;
    for resp in answers {
        let resp = resp.unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["data"]["attributes"]["oauth"]["access_token"], "at-2");
    }
    assert_eq!(presented(&a.provider, "rt-1").await, 1, "one provider call");
    let stored = a.account(&inst, &id).await;
    assert_eq!(stored["oauth"]["refresh_token"], "rt-2");
    // Every lease was released.
    let leases = a
        .store
        .all_docs(oauth_broker::store::REFRESH_LEASES_DB)
        .await
        .unwrap();
    assert!(
        leases
            .iter()
            .all(|l| !l["_id"].as_str().unwrap().ends_with(&id)),
        "{leases:?}"
    );
}

async fn a_late_caller_on_another_broker_gets_the_fresh_tokens_without_a_provider_call(b: Backend) {
    let a = spawn_app(b).await;
    let other = second_broker(&a).await;
    let inst = a.new_instance(None).await;
    let token = a.api_token(&inst).await;
    let t = a.code_type(json!({})).await;
    let id = a
        .seed_account(
            &inst,
            json!({"account_type": t, "name": "",
            "oauth": {"access_token": "at-1", "refresh_token": "rt-1"}}),
        )
        .await;
    rotating_provider(&a.provider).await;
    assert_eq!(a.refresh(&t, &id, Some(&token)).await.status(), 200);
    // The first refresh is over; a konnector on the other broker asks a moment later.
    let late = other.refresh(&t, &id, Some(&token)).await;
    assert_eq!(late.status(), 200);
    let body: Value = late.json().await.unwrap();
    assert_eq!(body["data"]["attributes"]["oauth"]["access_token"], "at-2");
    assert_eq!(presented(&a.provider, "rt-1").await, 1);
    assert_eq!(presented(&a.provider, "rt-2").await, 0, "no second refresh");
}

async fn a_forced_refresh_calls_the_provider_however_new_the_tokens(b: Backend) {
    let f = fixture(b, json!({})).await;
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=the-refresh-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3600}),
        ))
        .mount(&f.app.provider)
        .await;
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=rt-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "at-3", "refresh_token": "rt-3", "expires_in": 3600}),
        ))
        .mount(&f.app.provider)
        .await;
    assert_eq!(
        f.app.refresh(&f.t, &f.id, Some(&f.token)).await.status(),
        200
    );
    let again = f.app.refresh(&f.t, &f.id, Some(&f.token)).await;
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["data"]["attributes"]["oauth"]["access_token"], "at-2");
    let forced = f.app.refresh_forced(&f.t, &f.id, &f.token).await;
    assert_eq!(forced.status(), 200);
    let body: Value = forced.json().await.unwrap();
    assert_eq!(body["data"]["attributes"]["oauth"]["access_token"], "at-3");
    assert_eq!(presented(&f.app.provider, "rt-2").await, 1);
}

async fn a_token_that_dies_within_the_window_is_refreshed_again(b: Backend) {
    let f = fixture(b, json!({})).await;
    // Lives 2 s, less than the 5 s window: a refresh asked now must reach the provider.
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "short", "expires_in": 2})),
        )
        .expect(2)
        .mount(&f.app.provider)
        .await;
    assert_eq!(
        f.app.refresh(&f.t, &f.id, Some(&f.token)).await.status(),
        200
    );
    assert_eq!(
        f.app.refresh(&f.t, &f.id, Some(&f.token)).await.status(),
        200
    );
}

async fn a_refresh_after_the_window_calls_the_provider(b: Backend) {
    use oauth_broker::domain::{Clock, Timestamp};
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let clock = Clock::fixed(Timestamp::from_unix_secs(1_900_000_000));
    let app = spawn_with_clock(
        test_settings(b, dir.path()),
        dir.clone(),
        wiremock::MockServer::start().await,
        clock.clone(),
    )
    .await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    let id = app
        .seed_account(
            &inst,
            json!({"account_type": t, "name": "",
            "oauth": {"access_token": "at-1", "refresh_token": "rt-1"}}),
        )
        .await;
    Mock::given(path("/token"))
        .respond_with(refreshed())
        .expect(2)
        .mount(&app.provider)
        .await;
    assert_eq!(app.refresh(&t, &id, Some(&token)).await.status(), 200);
    clock.set(Timestamp::from_unix_secs(1_900_000_004));
    assert_eq!(
        app.refresh(&t, &id, Some(&token)).await.status(),
        200,
        "within: no call"
    );
    assert_eq!(app.provider.received_requests().await.unwrap().len(), 1);
    clock.set(Timestamp::from_unix_secs(1_900_000_006));
    assert_eq!(
        app.refresh(&t, &id, Some(&token)).await.status(),
        200,
        "past: a call"
    );
}

both_stores!(
    concurrent_refreshes_on_two_brokers_make_one_provider_call,
    a_late_caller_on_another_broker_gets_the_fresh_tokens_without_a_provider_call,
    a_forced_refresh_calls_the_provider_however_new_the_tokens,
    a_token_that_dies_within_the_window_is_refreshed_again,
    a_refresh_after_the_window_calls_the_provider,
);

/// A provider that rotates `rt-1` into `rt-2` once, slowly, and says how often each
/// refresh token was presented.
async fn slow_rotating_provider(server: &wiremock::MockServer) {
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=rt-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3600}),
                )
                .set_delay(std::time::Duration::from_millis(800)),
        )
        .mount(server)
        .await;
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=rt-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "at-3", "refresh_token": "rt-3", "expires_in": 3600}),
        ))
        .mount(server)
        .await;
}

async fn presented(server: &wiremock::MockServer, token: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains(&format!("refresh_token={token}")))
        .count()
}

/// A broker on CouchDB through a relay the test can cut, and an account whose refresh
/// token `rt-1` a slow provider rotates.
async fn rotating_account_behind_a_relay(
) -> Option<(CouchRelay, TestApp, Instance, String, String, String)> {
    let relay = CouchRelay::start().await?;
    let app = spawn_relayed_app(&relay).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    let id = app
        .seed_account(
            &inst,
            json!({"account_type": t, "name": "", "oauth": {"access_token": "at-1", "refresh_token": "rt-1"}}),
        )
        .await;
    slow_rotating_provider(&app.provider).await;
    Some((relay, app, inst, token, t, id))
}

#[tokio::test]
async fn a_rotated_pair_survives_a_store_cut_right_after_the_provider_answers() {
    let Some((relay, app, inst, token, t, id)) = rotating_account_behind_a_relay().await else {
        return;
    };
    let refreshing = app.refresh(&t, &id, Some(&token));
    let cut = async {
        while presented(&app.provider, "rt-1").await == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // The provider has the request and rotates; the store goes before it answers.
        relay.set_down(true).await;
    };
    let (resp, ()) = tokio::join!(refreshing, cut);
    assert_eq!(resp.status(), 503, "{}", resp.text().await.unwrap());
    // A konnector asking again during the outage does not spend rt-1 a second time.
    let again = app.refresh(&t, &id, Some(&token)).await;
    assert_eq!(again.status(), 503);
    relay.set_down(false).await;
    let mut waited = 0;
    while app.account(&inst, &id).await["oauth"]["refresh_token"] != "rt-2" {
        assert!(waited < 100, "the rotated pair never reached the account");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(
        app.account(&inst, &id).await["oauth"]["access_token"],
        "at-2"
    );
    // Forced: the pair is seconds old, and an ordinary refresh would answer it as it is.
    let next = app.refresh_forced(&t, &id, &token).await;
    assert_eq!(next.status(), 200);
    assert_eq!(
        presented(&app.provider, "rt-1").await,
        1,
        "rt-1 was presented again"
    );
    assert_eq!(presented(&app.provider, "rt-2").await, 1);
}

#[tokio::test]
async fn a_background_pass_cut_from_the_store_after_the_provider_answers_loses_nothing() {
    if !Backend::Couch.available() {
        return;
    }
    let Some(relay) = CouchRelay::start().await else {
        return;
    };
    // A namespace of its own: the pass takes every due account of its store.
    let (url, namespace) = (relay.url.clone(), format!("{}_", unique("cutpass")));
    let app = spawn_app_with(Backend::Couch, move |s| {
        s.couchdb.url = Some(url);
        s.couchdb.timeout_secs = 2;
        s.couchdb.db_prefix = namespace;
        // The cut pass cannot release its lease: let it expire soon.
        s.refresh.lease_secs = 2;
    })
    .await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let id = app
        .seed_account(
            &inst,
            json!({"account_type": t, "name": "", "oauth": {"access_token": "at-1", "refresh_token": "rt-1", "expires_at": "2020-01-01T00:00:00Z"}}),
        )
        .await;
    oauth_broker::store::schedule::Schedule::new(app.store.clone())
        .set(
            &inst.domain,
            &id,
            0,
            0,
            Some(&oauth_broker::domain::account_health::AccountHealth::new(
                inst.domain.as_str(),
                &id,
                &t,
            )),
        )
        .await
        .unwrap();
    slow_rotating_provider(&app.provider).await;
    let pass = tokio::spawn({
        let services = app.services.clone();
        async move { services.refresh_due_once().await }
    });
    let mut waited = 0;
    while presented(&app.provider, "rt-1").await == 0 {
        assert!(
            waited < 250 && !pass.is_finished(),
            "the pass never asked the provider"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
    }
    // The provider rotates; the store goes before it answers.
    relay.set_down(true).await;
    assert_eq!(pass.await.unwrap(), 1);
    relay.set_down(false).await;
    waited = 0;
    while app.account(&inst, &id).await["oauth"]["refresh_token"] != "rt-2" {
        assert!(waited < 100, "the rotated pair never reached the account");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    // The plan the cut pass could not write is still due. Once the lease it could not
    // release expires, a pass reads the settled account, finds it fresh, and plans it from
    // the rotated token without presenting any refresh token again.
    let (due_at, attempts) = loop {
        assert_eq!(app.services.refresh_due_once().await, 1);
        let (due_at, attempts) = app.planned(&inst, &id).await.unwrap();
        if due_at > chrono::Utc::now().timestamp() {
            break (due_at, attempts);
        }
        assert!(waited < 200, "never planned again: {due_at}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    };
    assert!(due_at > 0);
    assert_eq!(attempts, 0);
    assert_eq!(
        presented(&app.provider, "rt-1").await,
        1,
        "rt-1 was presented again"
    );
    assert_eq!(presented(&app.provider, "rt-2").await, 0);
}

#[tokio::test]
async fn a_rotated_pair_survives_the_process_killed_before_the_write() {
    let Some((relay, app, inst, token, t, id)) = rotating_account_behind_a_relay().await else {
        return;
    };
    // The process keeps its journal in a directory of its own.
    let own_dir = tempfile::tempdir().unwrap();
    let mut settings = app.settings.clone();
    settings.data_dir = own_dir.path().to_path_buf();
    let mut broker = spawn_process(&settings, 0).await;
    let refreshing = app
        .http
        .post(format!("{}/accounts/{t}/{id}/refresh", broker.address))
        .bearer_auth(&token)
        .send();
    let cut_and_kill = async {
        while presented(&app.provider, "rt-1").await == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        relay.set_down(true).await;
        // The provider answers in 0.8 s; the process then fails to write and is killed.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        broker.child.kill().unwrap();
        broker.child.wait().unwrap();
    };
    let (_, ()) = tokio::join!(refreshing, cut_and_kill);
    relay.set_down(false).await;
    assert_eq!(
        app.account(&inst, &id).await["oauth"]["refresh_token"],
        "rt-1",
        "the killed process wrote nothing"
    );
    let _restarted = spawn_process(&settings, 0).await;
    let mut waited = 0;
    while app.account(&inst, &id).await["oauth"]["refresh_token"] != "rt-2" {
        assert!(
            waited < 100,
            "the restarted process did not write the rotated pair"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(
        presented(&app.provider, "rt-1").await,
        1,
        "rt-1 was presented again"
    );
}
