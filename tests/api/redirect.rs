//! `GET /accounts/{type}/redirect`: code exchange, account writing, and every failure path.

use crate::both_stores;
use crate::helpers::*;
use oauth_broker::domain::{Clock, Domain, Instance, Timestamp};
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{body_string, header, method, path};
use wiremock::MockServer;
use wiremock::{Mock, ResponseTemplate};

fn token_reply() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": "the-access-token", "refresh_token": "the-refresh-token",
        "expires_in": 3600, "token_type": "Bearer", "scope": "the world", "id_token": "the-id-token"
    }))
}

/// Runs start and returns (provider URL state, type id).
async fn started(app: &TestApp, inst: &Instance, extra: Value) -> (String, String) {
    let t = app.code_type(extra).await;
    let url = app.start_flow(inst, &t).await;
    (TestApp::state_in(&url), t)
}

fn account_id_in(loc: &str) -> String {
    query_of(loc)["account"].clone()
}

async fn code_flow_writes_the_account_in_cozy_shape_and_returns_home(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let (state, t) = started(&app, &inst, json!({})).await;
    let expected_form = format!(
        "client_id=the-client-id&client_secret=the-client-secret&code=myaccesscode&grant_type=authorization_code&nonce=1700000000000&redirect_uri=https%3A%2F%2F{}%2Faccounts%2F{t}%2Fredirect&state={state}", inst.domain
    );
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(header("accept", "application/json"))
        .and(body_string(expected_form))
        .respond_with(token_reply())
        .expect(1)
        .mount(&app.provider)
        .await;
    let before = chrono::Utc::now();
    let resp = app
        .redirect(&t, &[("code", "myaccesscode"), ("state", &state)])
        .await;
    assert_eq!(resp.status(), 303);
    let loc = location(&resp);
    let id = account_id_in(&loc);
    assert_eq!(
        loc,
        format!(
            "https://home.{}/?account={id}&state=client-state",
            inst.domain
        )
    );
    let doc = app.account(&inst, &id).await;
    let expires_at = doc["oauth"]["expires_at"].as_str().unwrap();
    let parsed = chrono::DateTime::parse_from_rfc3339(expires_at).unwrap();
    assert!(expires_at.ends_with('Z'), "UTC: {expires_at}");
    let delta = (parsed.with_timezone(&chrono::Utc) - before).num_seconds();
    assert!((3598..=3602).contains(&delta), "{delta}");
    let mut shape = doc.clone();
    shape.as_object_mut().unwrap().remove("_id");
    shape.as_object_mut().unwrap().remove("_rev");
    assert_eq!(
        shape,
        json!({"account_type": t, "name": "",
               "oauth": {"access_token": "the-access-token", "token_type": "Bearer",
                         "expires_at": expires_at, "refresh_token": "the-refresh-token"},
               "oauth_callback_results": {"scope": "the world", "id_token": "the-id-token"}})
    );
}

async fn code_exchange_request_for_each_token_mode(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    // basic: credentials in the header, form-encoded then base64 (RFC 6749 §2.3.1).
    let (state, t) = started(
        &app,
        &inst,
        json!({"token_mode": "basic", "token_endpoint": format!("{}/basic", app.provider.uri())}),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/basic"))
        .and(header("authorization", "Basic dGhlLWNsaWVudC1pZDp0aGUtY2xpZW50LXNlY3JldA=="))
        .and(body_string(format!(
            "code=C&grant_type=authorization_code&nonce=1700000000000&redirect_uri=https%3A%2F%2F{}%2Faccounts%2F{t}%2Fredirect&state={state}", inst.domain
        )))
        .respond_with(token_reply())
        .expect(1)
        .mount(&app.provider)
        .await;
    assert!(
        location(&app.redirect(&t, &[("code", "C"), ("state", &state)]).await).contains("account=")
    );

    // get: every parameter in the query, no body; skip_state_on_token drops `state`.
    let (state, t) = started(
        &app,
        &inst,
        json!({"token_mode": "get", "skip_state_on_token": true,
        "token_endpoint": format!("{}/get", app.provider.uri())}),
    )
    .await;
    let expected_query = format!(
        "client_id=the-client-id&client_secret=the-client-secret&code=C&grant_type=authorization_code&nonce=1700000000000&redirect_uri=https%3A%2F%2F{}%2Faccounts%2F{t}%2Fredirect", inst.domain
    );
    Mock::given(method("GET"))
        .and(path("/get"))
        .and(move |r: &wiremock::Request| r.url.query() == Some(expected_query.as_str()))
        .and(header("accept", "application/json"))
        .and(body_string(""))
        .respond_with(token_reply())
        .expect(1)
        .mount(&app.provider)
        .await;
    assert!(
        location(&app.redirect(&t, &[("code", "C"), ("state", &state)]).await).contains("account=")
    );

    // json: a JSON body with the credentials.
    let (state, t) = started(
        &app,
        &inst,
        json!({"token_mode": "json", "token_endpoint": format!("{}/json", app.provider.uri())}),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/json"))
        .and(header("content-type", "application/json"))
        .and(wiremock::matchers::body_json(json!({
            "grant_type": "authorization_code", "code": "C",
            "redirect_uri": format!("https://{}/accounts/{t}/redirect", inst.domain), "state": state,
            "nonce": "1700000000000", "client_id": "the-client-id", "client_secret": "the-client-secret"})))
        .respond_with(token_reply())
        .expect(1)
        .mount(&app.provider)
        .await;
    assert!(
        location(&app.redirect(&t, &[("code", "C"), ("state", &state)]).await).contains("account=")
    );
}

async fn reply_variants_are_understood(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    type Check = Box<dyn Fn(&Value)>;
    let cases: Vec<(ResponseTemplate, Check)> = vec![
        (
            ResponseTemplate::new(200).set_body_raw(
                "access_token=form-at&expires_in=120&token_type=bearer",
                "application/x-www-form-urlencoded",
            ),
            Box::new(|d: &Value| {
                assert_eq!(d["oauth"]["access_token"], "form-at");
                assert_ne!(d["oauth"]["expires_at"], "0001-01-01T00:00:00Z");
            }),
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "s", "expires_in": "3600"})),
            Box::new(|d: &Value| assert_ne!(d["oauth"]["expires_at"], "0001-01-01T00:00:00Z")),
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"access_token": "no-expiry"})),
            Box::new(|d: &Value| {
                assert_eq!(d["oauth"]["expires_at"], "0001-01-01T00:00:00Z");
                assert!(d["oauth"].get("refresh_token").is_none());
                assert!(d.get("oauth_callback_results").is_none());
            }),
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"id_token": "only-id-token"})),
            Box::new(|d: &Value| assert_eq!(d["oauth"]["access_token"], "only-id-token")),
        ),
    ];
    for (reply, check) in cases {
        let (state, t) = started(&app, &inst, json!({})).await;
        app.provider.reset().await;
        Mock::given(path("/token"))
            .respond_with(reply)
            .mount(&app.provider)
            .await;
        let loc = location(&app.redirect(&t, &[("code", "C"), ("state", &state)]).await);
        check(&app.account(&inst, &account_id_in(&loc)).await);
    }
}

/// Asserts the redirect went back to the app with `error` (the person's refusal directly,
/// any other failure through a page that shows it) and wrote nothing.
async fn assert_app_error(app: &TestApp, inst: &Instance, resp: reqwest::Response, error: &str) {
    if error == "access_denied" {
        assert_eq!(resp.status(), 303);
    } else {
        assert!(
            resp.status().is_client_error() || resp.status().is_server_error(),
            "{}",
            resp.status()
        );
    }
    let loc = app_return(resp).await;
    assert_eq!(
        loc,
        format!(
            "https://home.{}/?error={error}&state=client-state",
            inst.domain
        )
    );
    assert!(app.accounts(inst).await.is_empty(), "no account written");
}

async fn provider_failures_go_back_to_the_app_and_write_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let cases = [
        (
            ResponseTemplate::new(500).set_body_string("boom"),
            "server_error",
        ),
        (
            ResponseTemplate::new(200).set_body_raw("<html>maintenance</html>", "text/html"),
            "server_error",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"error": "invalid_grant", "access_token": "x"})),
            "invalid_grant",
        ),
        (
            ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})),
            "invalid_grant",
        ),
        (
            ResponseTemplate::new(400).set_body_json(json!({"error": "bad&evil=1"})),
            "server_error",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"token_type": "Bearer"})),
            "server_error",
        ),
        (
            ResponseTemplate::new(302).insert_header("location", "https://elsewhere.example/"),
            "server_error",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "late"}))
                .set_delay(Duration::from_secs(4)),
            "server_error",
        ),
    ];
    for (reply, error) in cases {
        let (state, t) = started(&app, &inst, json!({})).await;
        app.provider.reset().await;
        Mock::given(path("/token"))
            .respond_with(reply)
            .mount(&app.provider)
            .await;
        let resp = app.redirect(&t, &[("code", "C"), ("state", &state)]).await;
        assert_app_error(&app, &inst, resp, error).await;
    }
}

async fn provider_down_goes_back_to_the_app_as_server_error(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let (state, t) = started(
        &app,
        &inst,
        json!({"token_endpoint": "http://127.0.0.1:9/token"}),
    )
    .await;
    let resp = app.redirect(&t, &[("code", "C"), ("state", &state)]).await;
    assert_app_error(&app, &inst, resp, "server_error").await;
}

async fn every_provider_error_goes_back_to_the_app(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    for error in ["access_denied", "invalid_scope", "server_error"] {
        let (state, t) = started(&app, &inst, json!({})).await;
        let resp = app
            .redirect(
                &t,
                &[
                    ("error", error),
                    ("error_description", "no"),
                    ("state", &state),
                ],
            )
            .await;
        assert_app_error(&app, &inst, resp, error).await;
    }
    let (state, t) = started(&app, &inst, json!({})).await;
    let resp = app
        .redirect(&t, &[("error", "<script>"), ("state", &state)])
        .await;
    assert_app_error(&app, &inst, resp, "server_error").await;
}

async fn redirect_without_code_goes_back_as_invalid_request(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let (state, t) = started(&app, &inst, json!({})).await;
    let resp = app.redirect(&t, &[("state", &state)]).await;
    assert_app_error(&app, &inst, resp, "invalid_request").await;
}

async fn redirect_with_a_replayed_state_is_refused(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let (state, t) = started(&app, &inst, json!({})).await;
    Mock::given(path("/token"))
        .respond_with(token_reply())
        .expect(1)
        .mount(&app.provider)
        .await;
    assert_eq!(
        app.redirect(&t, &[("code", "C"), ("state", &state)])
            .await
            .status(),
        303
    );
    let replay = app.redirect(&t, &[("code", "C"), ("state", &state)]).await;
    assert_eq!(replay.status(), 400);
    assert!(replay.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(replay.text().await.unwrap().contains("state_replayed"));
    assert_eq!(app.accounts(&inst).await.len(), 1, "one account, not two");
}

async fn two_redirects_racing_with_one_state_complete_once(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let (state, t) = started(&app, &inst, json!({})).await;
    Mock::given(path("/token"))
        .respond_with(token_reply())
        .expect(1)
        .mount(&app.provider)
        .await;
    let pairs = [("code", "C"), ("state", state.as_str())];
    let race: Vec<reqwest::Response> =
        futures::future::join_all((0..8).map(|_| app.redirect(&t, &pairs))).await;
    let statuses: Vec<u16> = race.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(app.accounts(&inst).await.len(), 1, "one account, not two");
}

async fn concurrent_flows_each_get_their_refresh_plan(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .respond_with(token_reply())
        .mount(&app.provider)
        .await;
    let mut states = Vec::new();
    for _ in 0..24 {
        states.push(TestApp::state_in(&app.start_flow(&inst, &t).await));
    }
    // Plans of concurrent flows are written in groups; each flow answers once its own is in.
    let pairs: Vec<[(&str, &str); 2]> = states
        .iter()
        .map(|s| [("code", "C"), ("state", s.as_str())])
        .collect();
    let done = futures::future::join_all(pairs.iter().map(|p| app.redirect(&t, p))).await;
    for resp in &done {
        let id = account_id_in(&location(resp));
        let (due_at, attempts) = app
            .planned(&inst, &id)
            .await
            .unwrap_or_else(|| panic!("account {id} has no plan"));
        assert_eq!(attempts, 0);
        assert!(due_at > 0);
    }
    assert_eq!(app.accounts(&inst).await.len(), 24);
}

async fn redirect_with_an_expired_state_is_refused(b: Backend) {
    let app = spawn_app_with(b, |s| s.flow_ttl_secs = 0).await;
    let inst = app.new_instance(None).await;
    let (state, t) = started(&app, &inst, json!({})).await;
    let resp = app.redirect(&t, &[("code", "C"), ("state", &state)]).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("state_expired"));
    assert!(app.accounts(&inst).await.is_empty());
}

async fn redirect_with_a_forged_or_missing_state_is_refused(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.code_type(json!({})).await;
    let forged = "ab".repeat(32);
    for (pairs, code) in [
        (
            vec![("code", "C"), ("state", forged.as_str())],
            "state_unknown",
        ),
        (
            vec![("code", "C"), ("state", "'; DROP TABLE")],
            "state_unknown",
        ),
        (vec![("code", "C")], "state_missing"),
        (
            vec![("code", "C"), ("state", "a"), ("state", "b")],
            "duplicate_parameter",
        ),
    ] {
        let resp = app.redirect(&t, &pairs).await;
        assert_eq!(resp.status(), 400);
        assert!(resp.text().await.unwrap().contains(code), "{code}");
    }
}

async fn redirect_with_a_state_of_another_type_is_refused_and_the_state_survives(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let (state, t) = started(&app, &inst, json!({})).await;
    let other = app.code_type(json!({})).await;
    let resp = app
        .redirect(&other, &[("code", "C"), ("state", &state)])
        .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("state_mismatch"));
    Mock::given(path("/token"))
        .respond_with(token_reply())
        .mount(&app.provider)
        .await;
    assert!(
        location(&app.redirect(&t, &[("code", "C"), ("state", &state)]).await).contains("account=")
    );
}

async fn type_without_token_endpoint_hands_the_code_to_the_konnector(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let (state, t) = started(&app, &inst, json!({"token_endpoint": null})).await;
    let loc = location(
        &app.redirect(
            &t,
            &[("code", "C"), ("state", &state), ("id_connection", "9")],
        )
        .await,
    );
    let doc = app.account(&inst, &account_id_in(&loc)).await;
    assert_eq!(
        doc["oauth"],
        json!({"expires_at": "0001-01-01T00:00:00Z", "client_id": "the-client-id",
               "client_secret": "the-client-secret", "query": {"code": ["C"], "id_connection": ["9"]}})
    );
}

async fn access_token_on_the_redirect_is_stored(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let (state, t) = started(
        &app,
        &inst,
        json!({"grant_mode": "token_redirect_url", "token_endpoint": null}),
    )
    .await;
    let loc = location(
        &app.redirect(
            &t,
            &[("access_token", "the-access-token2"), ("state", &state)],
        )
        .await,
    );
    let doc = app.account(&inst, &account_id_in(&loc)).await;
    assert_eq!(
        doc["oauth"],
        json!({"access_token": "the-access-token2", "expires_at": "0001-01-01T00:00:00Z"})
    );
    assert_eq!(doc["name"], "");
}

async fn a_known_connection_id_updates_the_existing_account(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let (state, t) = started(&app, &inst, json!({})).await;
    let existing = app
        .seed_account(&inst, json!({"account_type": t, "name": "", "label": "kept",
            "oauth": {"access_token": "old", "refresh_token": "old-rt", "query": {"connection_id": ["1750"]}}}))
        .await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "new"})))
        .mount(&app.provider)
        .await;
    let loc = location(
        &app.redirect(
            &t,
            &[("code", "C"), ("state", &state), ("connection_id", "1750")],
        )
        .await,
    );
    assert_eq!(
        loc,
        format!(
            "https://home.{}/?account={existing}&connection_id=1750&state=client-state",
            inst.domain
        )
    );
    assert_eq!(app.accounts(&inst).await.len(), 1);
    let doc = app.account(&inst, &existing).await;
    assert_eq!(doc["oauth"]["access_token"], "new");
    assert_eq!(doc["oauth"]["refresh_token"], "old-rt");
    assert_eq!(doc["label"], "kept");
}

async fn flat_subdomains_and_custom_slug_shape_the_app_url(b: Backend) {
    let app = spawn_app_with(b, |s| s.subdomains = oauth_broker::domain::Subdomains::Flat).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({"token_endpoint": null})).await;
    let code = app.session_code(&inst).await;
    let url = location(
        &app.start_raw(&t, &format!("state=cs&slug=drive&session_code={code}"))
            .await,
    );
    let state = TestApp::state_in(&url);
    let loc = location(&app.redirect(&t, &[("code", "C"), ("state", &state)]).await);
    let (user, rest) = inst.domain.as_str().split_once('.').unwrap();
    assert!(
        loc.starts_with(&format!("https://{user}-drive.{rest}/?account=")),
        "{loc}"
    );
}

async fn a_hyphenated_app_slug_is_taken_as_cozy_stack_takes_it(b: Backend) {
    // cozy-stack's app slugs are `[a-z0-9-]+`; Harvest sends the embedding app's own.
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({"token_endpoint": null})).await;
    let code = app.session_code(&inst).await;
    let start = app
        .start_raw(&t, &format!("state=cs&slug=my-banks&session_code={code}"))
        .await;
    assert_eq!(start.status(), 303);
    let state = TestApp::state_in(&location(&start));
    let loc = location(&app.redirect(&t, &[("code", "C"), ("state", &state)]).await);
    assert!(
        loc.starts_with(&format!("https://my-banks.{}/?account=", inst.domain)),
        "{loc}"
    );
}

async fn a_flow_started_on_one_broker_completes_on_another(b: Backend) {
    let a = spawn_app(b).await;
    let mut settings = a.settings.clone();
    settings.listen = "127.0.0.1:0".into();
    let mut other = spawn_with_settings(
        settings,
        a._dir.clone(),
        wiremock::MockServer::start().await,
    )
    .await;
    // One browser, two replicas behind one name: the same cookies reach both.
    other.cookies = a.cookies.clone();
    let inst = a.new_instance(None).await;
    let (state, t) = started(&a, &inst, json!({})).await;
    Mock::given(path("/token"))
        .respond_with(token_reply())
        .expect(1)
        .mount(&a.provider)
        .await;
    let loc = location(
        &other
            .redirect(&t, &[("code", "C"), ("state", &state)])
            .await,
    );
    assert!(loc.contains("account="), "{loc}");
    assert_eq!(
        a.redirect(&t, &[("code", "C"), ("state", &state)])
            .await
            .status(),
        400,
        "single use across brokers"
    );
}

both_stores!(
    two_redirects_racing_with_one_state_complete_once,
    concurrent_flows_each_get_their_refresh_plan,
    code_flow_writes_the_account_in_cozy_shape_and_returns_home,
    code_exchange_request_for_each_token_mode,
    reply_variants_are_understood,
    provider_failures_go_back_to_the_app_and_write_nothing,
    provider_down_goes_back_to_the_app_as_server_error,
    every_provider_error_goes_back_to_the_app,
    redirect_without_code_goes_back_as_invalid_request,
    redirect_with_a_replayed_state_is_refused,
    redirect_with_an_expired_state_is_refused,
    redirect_with_a_forged_or_missing_state_is_refused,
    redirect_with_a_state_of_another_type_is_refused_and_the_state_survives,
    type_without_token_endpoint_hands_the_code_to_the_konnector,
    access_token_on_the_redirect_is_stored,
    a_known_connection_id_updates_the_existing_account,
    flat_subdomains_and_custom_slug_shape_the_app_url,
    a_hyphenated_app_slug_is_taken_as_cozy_stack_takes_it,
    a_flow_started_on_one_broker_completes_on_another,
);

#[tokio::test]
async fn store_down_during_redirect_answers_503_and_loses_nothing() {
    let Some(relay) = CouchRelay::start().await else {
        return;
    };
    let app = spawn_relayed_app(&relay).await;
    let inst = app.new_instance(None).await;
    let (state, t) = started(&app, &inst, json!({})).await;
    Mock::given(path("/token"))
        .respond_with(token_reply())
        .expect(1)
        .mount(&app.provider)
        .await;
    relay.set_down(true).await;
    let resp = app.redirect(&t, &[("code", "C"), ("state", &state)]).await;
    assert_eq!(resp.status(), 503, "{:?}", resp.headers().get("location"));
    assert!(resp.text().await.unwrap().contains("store_unavailable"));
    relay.set_down(false).await;
    // The state was not consumed: the user reloads the page and the flow completes.
    let loc = location(&app.redirect(&t, &[("code", "C"), ("state", &state)]).await);
    assert!(loc.contains("account="), "{loc}");
}

/// Starts a flow through a relay to CouchDB whose provider answers after `delay`.
async fn relayed_flow(relay: &CouchRelay, delay: Duration) -> (TestApp, Instance, String, String) {
    let app = spawn_relayed_app(relay).await;
    let inst = app.new_instance(None).await;
    let (state, t) = started(&app, &inst, json!({})).await;
    Mock::given(path("/token"))
        .respond_with(token_reply().set_delay(delay))
        .expect(1)
        .mount(&app.provider)
        .await;
    (app, inst, state, t)
}

#[tokio::test]
async fn an_account_write_during_a_store_blip_is_retried() {
    let Some(relay) = CouchRelay::start().await else {
        return;
    };
    let (app, inst, state, t) = relayed_flow(&relay, Duration::from_millis(600)).await;
    let blip = async {
        // The provider has the code (it answers in 0.6 s): the account write comes next.
        provider_has(&app.provider, 1).await;
        relay.set_down(true).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        relay.set_down(false).await;
    };
    let pairs = [("code", "C"), ("state", state.as_str())];
    let (resp, ()) = tokio::join!(app.redirect(&t, &pairs), blip);
    let loc = location(&resp);
    let id = account_id_in(&loc);
    assert_eq!(
        app.account(&inst, &id).await["oauth"]["access_token"],
        "the-access-token"
    );
    assert_eq!(app.accounts(&inst).await.len(), 1);
}

#[tokio::test]
async fn an_account_write_with_the_store_gone_is_reported_to_the_app() {
    let Some(relay) = CouchRelay::start().await else {
        return;
    };
    let (app, inst, state, t) = relayed_flow(&relay, Duration::from_millis(400)).await;
    let outage = async {
        provider_has(&app.provider, 1).await;
        relay.set_down(true).await;
    };
    let pairs = [("code", "C"), ("state", state.as_str())];
    let (resp, ()) = tokio::join!(app.redirect(&t, &pairs), outage);
    assert_eq!(
        app_return(resp).await,
        format!(
            "https://home.{}/?error=server_error&state=client-state",
            inst.domain
        )
    );
    relay.set_down(false).await;
    assert!(app.accounts(&inst).await.is_empty());
}

/// A token endpoint that accepts only the verifier of `challenge` (RFC 7636 S256).
async fn pkce_provider(app: &TestApp, challenge: String) {
    use base64::Engine;
    use sha2::Digest;
    Mock::given(path("/token"))
        .and(move |r: &wiremock::Request| {
            let form: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            form.get("code_verifier").is_some_and(|v| {
                let digest = sha2::Sha256::digest(v.as_bytes());
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) == challenge
            })
        })
        .respond_with(token_reply())
        .with_priority(1)
        .mount(&app.provider)
        .await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .with_priority(2)
        .mount(&app.provider)
        .await;
}

async fn pkce_sends_the_challenge_and_its_verifier_only_to_the_token_endpoint(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({"pkce": true})).await;
    let url = app.start_flow(&inst, &t).await;
    let q = query_of(&url);
    assert_eq!(q["code_challenge_method"], "S256");
    let challenge = q["code_challenge"].clone();
    assert_eq!(challenge.len(), 43);
    assert!(!q.contains_key("code_verifier"));
    pkce_provider(&app, challenge).await;
    let loc = location(
        &app.redirect(&t, &[("code", "C"), ("state", &TestApp::state_in(&url))])
            .await,
    );
    assert!(loc.contains("account="), "{loc}");
}

async fn pkce_mismatch_is_refused_by_the_provider_and_writes_nothing(b: Backend) {
    // A code obtained in one flow, injected into another: the verifiers differ.
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({"pkce": true})).await;
    let victim = app.start_flow(&inst, &t).await;
    let attacker = app.start_flow(&inst, &t).await;
    pkce_provider(&app, query_of(&attacker)["code_challenge"].clone()).await;
    let resp = app
        .redirect(
            &t,
            &[
                ("code", "attackers-code"),
                ("state", &TestApp::state_in(&victim)),
            ],
        )
        .await;
    assert_app_error(&app, &inst, resp, "invalid_grant").await;
}

both_stores!(
    pkce_sends_the_challenge_and_its_verifier_only_to_the_token_endpoint,
    pkce_mismatch_is_refused_by_the_provider_and_writes_nothing,
);

async fn flow_binding_needs_the_cookie_set_at_start(b: Backend) {
    let app = spawn_app_with(b, |s| s.flow_binding = true).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let code = app.session_code(&inst).await;
    let resp = app
        .start_raw(&t, &format!("state=client-state&session_code={code}"))
        .await;
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/accounts",
        "Max-Age=900",
    ] {
        assert!(set_cookie.contains(attr), "{attr} in {set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let state = TestApp::state_in(&location(&resp));
    Mock::given(path("/token"))
        .respond_with(token_reply())
        .expect(1)
        .mount(&app.provider)
        .await;
    let url = format!("{}/accounts/{t}/redirect?code=C&state={state}", app.address);
    let name = cookie.split('=').next().unwrap();
    // The attack binding stops: the code comes back in a browser that did not start the
    // flow (no cookie, a forged one, another flow's). It never connects silently: the
    // instance's host shows which instance and service it would go to, spending nothing.
    for presented in [
        None,
        Some(format!("{name}=forged")),
        Some(format!(
            "oauth_broker_flow_0000000000000000={}",
            cookie.split('=').nth(1).unwrap()
        )),
    ] {
        let mut req = app.http.get(&url).header("host", inst.domain.as_str());
        if let Some(c) = &presented {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{presented:?}");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let page = resp.text().await.unwrap();
        assert!(
            page.contains(&format!("Connect {t} to {}?", inst.domain)),
            "{page}"
        );
        assert!(page.contains("method=\"post\""), "{page}");
    }
    assert!(app.accounts(&inst).await.is_empty());
    let done = app
        .http
        .get(&url)
        .header("host", inst.domain.as_str())
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.status(),
        303,
        "the refused attempts did not burn the state"
    );
    assert!(location(&done).contains("account="));
    assert!(
        done.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"),
        "cookie removed"
    );
}

/// A flow back in another browser, confirmed there: completed once, without the cookie;
/// the same confirmation posted again is a replay, a forged or expired state is refused
/// with a page, and a malformed form is a 400.
async fn a_confirmed_return_leg_completes_once(b: Backend) {
    let clock = Clock::fixed(Timestamp::from_unix_secs(1_700_000_000));
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_with_clock(
        test_settings(b, dir.path()),
        dir,
        MockServer::start().await,
        clock.clone(),
    )
    .await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .respond_with(token_reply())
        .expect(1)
        .mount(&app.provider)
        .await;
    let url = format!("{}/accounts/{t}/redirect", app.address);
    let post = |query: String| {
        app.http
            .post(&url)
            .header("host", inst.domain.as_str())
            .form(&[("query", query)])
            .send()
    };
    let state = TestApp::state_in(&app.start_flow(&inst, &t).await);
    let confirmed = post(format!("code=C&state={state}")).await.unwrap();
    assert_eq!(confirmed.status(), 303);
    assert!(location(&confirmed).contains("account="));
    assert_eq!(app.accounts(&inst).await.len(), 1);
    let replayed = post(format!("code=C&state={state}")).await.unwrap();
    assert_eq!(replayed.status(), 400);
    assert!(replayed.text().await.unwrap().contains("state_replayed"));
    let forged = post("code=C&state=AAAAforged".into()).await.unwrap();
    assert_eq!(forged.status(), 400);
    assert!(forged.text().await.unwrap().contains("state_unknown"));
    let late = TestApp::state_in(&app.start_flow(&inst, &t).await);
    clock.set(Timestamp::from_unix_secs(1_700_000_000 + 3600));
    let expired = post(format!("code=C&state={late}")).await.unwrap();
    assert_eq!(expired.status(), 400);
    assert!(expired.text().await.unwrap().contains("state_expired"));
    let malformed = app
        .http
        .post(&url)
        .header("host", inst.domain.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("nothing=here")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(app.accounts(&inst).await.len(), 1);
}

/// An instance outside the cookie parent (a custom domain): a `Domain=` the browser
/// would refuse is not sent, the cookie is host-only, and the redirect on the instance's
/// host completes with it.
async fn a_start_on_a_custom_domain_sets_a_host_only_binding_cookie(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.public_url = "https://oauthcallback.mycozy.cloud".into();
        s.flow_binding_cookie_domain = "mycozy.cloud".into();
    })
    .await;
    let host = format!("{}.alice.example", unique("cozy"));
    let resp = app
        .admin(reqwest::Method::POST, "/admin/instances")
        .json(&json!({ "domain": host }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let inst = Instance::new(Domain::parse(&host).unwrap(), None);
    let t = app.code_type(json!({})).await;
    let code = app.session_code(&inst).await;
    let resp = app
        .http
        .get(format!(
            "{}/accounts/{t}/start?session_code={code}",
            app.address
        ))
        .header("host", host.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(!set.contains("Domain="), "{set}");
    Mock::given(path("/token"))
        .respond_with(token_reply())
        .mount(&app.provider)
        .await;
    let state = TestApp::state_in(&location(&resp));
    let done = app
        .http
        .get(format!(
            "{}/accounts/{t}/redirect?code=C&state={state}",
            app.address
        ))
        .header("host", host.as_str())
        .header("cookie", set.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert!(location(&done).contains("account="), "{}", location(&done));
    let removal = done.headers()["set-cookie"].to_str().unwrap();
    assert!(!removal.contains("Domain="), "{removal}");
}

async fn flow_binding_is_on_by_default_and_can_be_turned_off(b: Backend) {
    for (binding, cookie) in [(None, true), (Some(false), false)] {
        let app = spawn_app_with(b, |s| {
            if let Some(on) = binding {
                s.flow_binding = on;
            }
        })
        .await;
        let inst = app.new_instance(None).await;
        let t = app.code_type(json!({})).await;
        let code = app.session_code(&inst).await;
        let resp = app.start_raw(&t, &format!("session_code={code}")).await;
        assert_eq!(resp.status(), 303);
        assert_eq!(
            resp.headers().get("set-cookie").is_some(),
            cookie,
            "{binding:?}"
        );
    }
}

async fn the_binding_cookie_reaches_a_redirect_host_under_the_same_parent(b: Backend) {
    // Beside cozy-stack: start on the instance host, redirect on oauthcallback.<domain>.
    let app = spawn_app_with(b, |s| {
        s.public_url = "https://oauthcallback.mycozy.cloud".into();
        s.flow_binding_cookie_domain = "mycozy.cloud".into();
    })
    .await;
    let inst = app.new_instance(None).await;
    // As cozy's own types: the redirect URI on the callback host.
    let t = unique("svc");
    app.code_type(json!({"_id": t,
        "redirect_uri": format!("https://oauthcallback.mycozy.cloud/accounts/{t}/redirect")}))
        .await;
    let code = app.session_code(&inst).await;
    let resp = app
        .http
        .get(format!(
            "{}/accounts/{t}/start?session_code={code}",
            app.address
        ))
        .header("host", "alice.mycozy.cloud")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("Domain=mycozy.cloud"), "{set}");
    let provider_url = location(&resp);
    assert!(
        provider_url.contains("oauthcallback.mycozy.cloud%2Faccounts"),
        "the provider sends the browser to the callback host: {provider_url}"
    );
    let state = TestApp::state_in(&provider_url);
    Mock::given(path("/token"))
        .respond_with(token_reply())
        .mount(&app.provider)
        .await;
    let url = format!("{}/accounts/{t}/redirect?code=C&state={state}", app.address);
    // Without the cookie (another browser), on to the instance's own host, the query
    // unchanged (there the cookie of a custom-domain start is, or the confirmation page);
    // with it (the browser that started), done.
    let elsewhere = app
        .http
        .get(&url)
        .header("host", "oauthcallback.mycozy.cloud")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 303);
    assert_eq!(
        location(&elsewhere),
        format!(
            "https://{}/accounts/{t}/redirect?code=C&state={state}",
            inst.domain
        )
    );
    let done = app
        .http
        .get(&url)
        .header("host", "oauthcallback.mycozy.cloud")
        .header("cookie", set.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert!(location(&done).contains("account="), "{}", location(&done));
    let removal = done.headers()["set-cookie"].to_str().unwrap();
    assert!(
        removal.contains("Domain=mycozy.cloud") && removal.contains("Max-Age=0"),
        "{removal}"
    );
}

#[tokio::test]
async fn a_cookie_domain_that_misses_the_redirect_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = test_settings(Backend::Embedded, dir.path());
    s.public_url = "https://broker.example.org".into();
    s.flow_binding_cookie_domain = "mycozy.cloud".into();
    let refused = oauth_broker::startup::Application::build(&s).await;
    let e = format!("{:#}", refused.err().expect("refused"));
    assert!(e.contains("flow_binding_cookie_domain"), "{e}");
}

/// An instance under `domain`, added through the admin API.
async fn instance_at(app: &TestApp, domain: &str) -> Instance {
    let resp = app
        .admin(reqwest::Method::POST, "/admin/instances")
        .json(&json!({"domain": domain}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    Instance::new(
        oauth_broker::domain::instance::Domain::parse(domain).unwrap(),
        None,
    )
}

async fn an_unset_cookie_domain_is_inferred_from_the_instance_hosts(b: Backend) {
    // Beside cozy-stack, the operator left flow_binding_cookie_domain unset.
    let app = spawn_app_with(b, |s| {
        s.public_url = "https://oauthcallback.mycozy.cloud".into();
        // Its own instances: the suite's others live under other domains.
        s.couchdb.db_prefix = format!("{}_", unique("cookie"));
    })
    .await;
    let domain = format!("{}.mycozy.cloud", unique("alice"));
    let inst = instance_at(&app, &domain).await;
    let t = app.code_type(json!({})).await;
    let start = |address: String, code: String| {
        let (http, t, domain) = (app.http.clone(), t.clone(), domain.clone());
        async move {
            let resp = http
                .get(format!("{address}/accounts/{t}/start?session_code={code}"))
                .header("host", domain)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 303);
            resp.headers()["set-cookie"].to_str().unwrap().to_owned()
        }
    };
    // Started when no instance was known: a host-only cookie.
    let before = start(app.address.clone(), app.session_code(&inst).await).await;
    assert!(!before.contains("Domain="), "{before}");
    // Started again with the instance known: its host and the callback host share
    // `mycozy.cloud`, so the cookie is scoped there and comes back to the redirect.
    let address = restarted(&app.settings).await.unwrap();
    let after = start(address, app.session_code(&inst).await).await;
    assert!(after.contains("Domain=mycozy.cloud"), "{after}");
}

async fn a_cookie_domain_that_misses_an_instance_host_is_a_warning_naming_it(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.public_url = "https://oauthcallback.mycozy.cloud".into();
        s.flow_binding_cookie_domain = "mycozy.cloud".into();
        s.couchdb.db_prefix = format!("{}_", unique("cookie"));
    })
    .await;
    let elsewhere = format!("{}.other-cloud.example", unique("bob"));
    instance_at(&app, &elsewhere).await;
    let report = oauth_broker::app::doctor::examine(&app.settings).await;
    let cookie = report
        .findings
        .iter()
        .find(|f| f.check == "flow binding cookie")
        .unwrap();
    assert_eq!(
        cookie.severity,
        oauth_broker::app::doctor::Severity::Warning
    );
    assert_eq!(cookie.setting, Some("flow_binding_cookie_domain"));
    assert!(cookie.detail.contains(&elsewhere), "{}", cookie.detail);
    // It starts all the same: other instances' sign-ins work.
    restarted(&app.settings).await.unwrap();
}

both_stores!(
    an_unset_cookie_domain_is_inferred_from_the_instance_hosts,
    a_cookie_domain_that_misses_an_instance_host_is_a_warning_naming_it,
    flow_binding_needs_the_cookie_set_at_start,
    flow_binding_is_on_by_default_and_can_be_turned_off,
    the_binding_cookie_reaches_a_redirect_host_under_the_same_parent,
    a_confirmed_return_leg_completes_once,
    a_start_on_a_custom_domain_sets_a_host_only_binding_cookie,
);

async fn reconnect_updates_the_same_account_in_place(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let id = app
        .seed_account(
            &inst,
            json!({"account_type": t, "name": "", "label": "kept",
            "oauth": {"access_token": "old", "refresh_token": "dead"}}),
        )
        .await;
    Mock::given(path("/token"))
        .respond_with(token_reply())
        .expect(1)
        .mount(&app.provider)
        .await;
    let code = app.session_code(&inst).await;
    let resp = app
        .http
        .get(format!(
            "{}/accounts/{t}/{id}/reconnect?state=client-state&session_code={code}",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    app.keep_binding_cookie(&resp);
    let state = TestApp::state_in(&location(&resp));
    let loc = location(&app.redirect(&t, &[("code", "C"), ("state", &state)]).await);
    assert_eq!(
        loc,
        format!(
            "https://home.{}/?account={id}&state=client-state",
            inst.domain
        )
    );
    let doc = app.account(&inst, &id).await;
    assert_eq!(doc["oauth"]["access_token"], "the-access-token");
    assert_eq!(doc["oauth"]["refresh_token"], "the-refresh-token");
    assert_eq!(doc["label"], "kept");
    assert_eq!(app.accounts(&inst).await.len(), 1);
}

async fn reconnect_of_an_unknown_or_foreign_account_is_404(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let other_type = app.code_type(json!({})).await;
    let foreign = app
        .seed_account(&inst, json!({"account_type": other_type, "name": ""}))
        .await;
    let token = app.api_token(&inst).await;
    for id in ["nope", foreign.as_str()] {
        let resp = app
            .http
            .get(format!("{}/accounts/{t}/{id}/reconnect", app.address))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{id}");
    }
}

both_stores!(
    reconnect_updates_the_same_account_in_place,
    reconnect_of_an_unknown_or_foreign_account_is_404,
);
