//! `GET /accounts/{type}/start`.

use crate::both_stores;
use crate::helpers::*;
use oauth_broker::domain::{Instance, Scheme};
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

async fn start_redirects_to_the_provider_with_the_exact_sorted_query(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let url = app.start_flow(&inst, &t).await;
    let state = TestApp::state_in(&url);
    // Version, 96-bit nonce, the sealed flow and its 128-bit tag, base64url.
    assert!(state.len() > 40, "{state}");
    assert!(state
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(
        url,
        format!(
            "{}/authorize?client_id=the-client-id&redirect_uri=https%3A%2F%2F{}%2Faccounts%2F{t}%2Fredirect&response_type=code&scope=the+world&state={state}",
            app.provider.uri(),
            inst.domain
        )
    );
}

async fn start_url_as_the_home_app_builds_it_is_understood(b: Backend) {
    // Harvest builds the URL with URLSearchParams, then decodeURIComponent()s it whole:
    // a string scope arrives with `+` for spaces, an array scope with literal `+`.
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let code = app.session_code(&inst).await;
    let q = format!(
        "state=0b7a3e2c-9d41-4f7e-8a7b-3c2d1e0f9a8b&nonce=1700000000123&scope=https://www.googleapis.com/auth/contacts+https://www.googleapis.com/auth/userinfo.email&slug=home&session_code={code}"
    );
    let resp = app.start_raw(&t, &q).await;
    assert_eq!(resp.status(), 303);
    let sent = query_of(&location(&resp));
    assert_eq!(
        sent["scope"],
        "https://www.googleapis.com/auth/contacts https://www.googleapis.com/auth/userinfo.email"
    );
    assert!(
        location(&resp).contains("scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcontacts+https")
    );
}

async fn start_url_for_each_grant_mode(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let p = app.provider.uri();
    for (mode, expect) in [
        (
            "authorization_code+secret",
            "client_id=the-client-id&redirect_uri=R&response_type=code&scope=the+world&state=S",
        ),
        (
            "token",
            "client_id=the-client-id&redirect_uri=R&response_type=token&scope=the+world&state=S",
        ),
        (
            "token_redirect_url",
            "redirect_url=R%3Fstate%3DS&response_type=token&scope=the+world&state=S",
        ),
    ] {
        let t = app
            .code_type(json!({"grant_mode": mode, "token_endpoint": null}))
            .await;
        let url = app.start_flow(&inst, &t).await;
        let state = TestApp::state_in(&url);
        let r = format!("https%3A%2F%2F{}%2Faccounts%2F{t}%2Fredirect", inst.domain);
        let expected = format!(
            "{p}/authorize?{}",
            expect.replace("=R", &format!("={r}")).replace("S", &state)
        );
        assert_eq!(url, expected, "{mode}");
    }
}

async fn start_adds_extras_and_honours_skip_redirect_uri(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app
        .code_type(json!({
            "auth_endpoint": format!("{}/authorize?audience=api", app.provider.uri()),
            "extras": {"access_type": "offline", "prompt": "consent", "scope": "extra"},
            "skip_redirect_uri_on_authorize": true,
            "redirect_uri": "https://oauthcallback.example/accounts/x/redirect"
        }))
        .await;
    let url = app.start_flow(&inst, &t).await;
    let state = TestApp::state_in(&url);
    assert_eq!(
        url,
        format!(
            "{}/authorize?access_type=offline&audience=api&client_id=the-client-id&prompt=consent&response_type=code&scope=the+world&scope=extra&state={state}",
            app.provider.uri()
        )
    );
}

async fn start_without_credentials_is_refused_with_a_page(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.code_type(json!({})).await;
    let resp = app.start_raw(&t, "state=x").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'"));
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let page = resp.text().await.unwrap();
    assert!(page.contains("session code"));
    assert!(
        page.contains(&format!("request {request_id}")),
        "the page names the request: {page}"
    );
}

async fn start_with_a_used_session_code_is_refused(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let code = app.session_code(&inst).await;
    assert_eq!(
        app.start_raw(&t, &format!("session_code={code}"))
            .await
            .status(),
        303
    );
    let again = app.start_raw(&t, &format!("session_code={code}")).await;
    assert_eq!(again.status(), 403);
    assert!(again.text().await.unwrap().contains("bad_credentials"));
}

async fn start_with_an_expired_session_code_is_refused(b: Backend) {
    let app = spawn_app_with(b, |s| s.session_code_ttl_secs = 0).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let code = app.session_code(&inst).await;
    assert_eq!(
        app.start_raw(&t, &format!("session_code={code}"))
            .await
            .status(),
        403
    );
}

async fn start_with_a_forged_session_code_or_token_is_refused(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.code_type(json!({})).await;
    assert_eq!(app.start_raw(&t, "session_code=forged").await.status(), 403);
    let resp = app
        .http
        .get(format!("{}/accounts/{t}/start", app.address))
        .bearer_auth("forged-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

async fn start_with_an_api_token_is_accepted(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let token = app.api_token(&inst).await;
    let resp = app
        .http
        .get(format!("{}/accounts/{t}/start?state=s", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
}

async fn start_with_an_unknown_account_type_is_404(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let code = app.session_code(&inst).await;
    let resp = app
        .start_raw(&unique("nope"), &format!("session_code={code}"))
        .await;
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("unknown_account_type"));
}

async fn start_with_an_invalid_account_type_document_names_the_field(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let id = unique("bad");
    // Written straight into the database, as `curl -X PUT` would: no validation on the way.
    app.store
        .put(
            oauth_broker::store::ACCOUNT_TYPES_DB,
            &json!({"_id": id, "grant_mode": "authorization_code", "client_id": "c",
                    "auth_endpoint": "https://p.example/a", "extras": {"display": 1}}),
        )
        .await
        .unwrap();
    let good = app.code_type(json!({})).await;
    let code = app.session_code(&inst).await;
    let resp = app.start_raw(&id, &format!("session_code={code}")).await;
    assert_eq!(resp.status(), 500);
    let body = resp.text().await.unwrap();
    assert!(body.contains("extras.display"), "{body}");
    // Other account types keep working.
    let code = app.session_code(&inst).await;
    assert_eq!(
        app.start_raw(&good, &format!("session_code={code}"))
            .await
            .status(),
        303
    );
}

async fn start_with_a_bad_slug_is_refused_and_keeps_the_session_code(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let code = app.session_code(&inst).await;
    let resp = app
        .start_raw(&t, &format!("slug=evil.com%2F&session_code={code}"))
        .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("invalid_slug"));
    assert_eq!(
        app.start_raw(&t, &format!("slug=drive&session_code={code}"))
            .await
            .status(),
        303
    );
}

async fn start_refuses_oversized_and_duplicated_parameters(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let code = app.session_code(&inst).await;
    let huge = "a".repeat(9000);
    assert_eq!(
        app.start_raw(&t, &format!("state={huge}&session_code={code}"))
            .await
            .status(),
        413
    );
    let long_state = "a".repeat(2000);
    assert_eq!(
        app.start_raw(&t, &format!("state={long_state}&session_code={code}"))
            .await
            .status(),
        400
    );
    assert_eq!(
        app.start_raw(&t, &format!("slug=a&slug=b&session_code={code}"))
            .await
            .status(),
        400
    );
    assert_eq!(
        app.start_raw(&t, &format!("session_code={code}"))
            .await
            .status(),
        303,
        "code not burnt"
    );
}

async fn start_refuses_a_secret_grant_mode(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let id = unique("sec");
    app.put_account_type(json!({"_id": id, "grant_mode": "secret", "secret": "s3cr3t"}))
        .await;
    let code = app.session_code(&inst).await;
    let resp = app.start_raw(&id, &format!("session_code={code}")).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("no_authorization_step"));
}

async fn start_uses_the_context_overload_of_the_instance(b: Backend) {
    let app = spawn_app(b).await;
    let ctx = unique("ctx");
    let inst = app.new_instance(Some(&ctx)).await;
    let plain = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    app.put_account_type(json!({
        "_id": format!("{ctx}/{t}"), "grant_mode": "authorization_code", "client_id": "context-client",
        "auth_endpoint": format!("{}/ctx-authorize", app.provider.uri()),
    }))
    .await;
    let url = app.start_flow(&inst, &t).await;
    assert!(
        url.contains("/ctx-authorize?client_id=context-client&"),
        "{url}"
    );
    assert!(
        url.contains(&format!("accounts%2F{t}%2Fredirect")),
        "service id, not ctx/id, in the default redirect URI: {url}"
    );
    let url = app.start_flow(&plain, &t).await;
    assert!(url.contains("/authorize?client_id=the-client-id&"), "{url}");
}

/// Harvest's start (a UUID state, a `Date.now()` nonce) with the longest scope `start`
/// takes: the state stays within 256 characters (cozy-stack's are 32; providers and
/// firewalls may cap it), and the flow completes. On the main of 2026-12-07 this state
/// was over 5,000 characters and `redirect` refused it after the user consented.
async fn a_long_scope_still_makes_a_state_of_at_most_256_characters(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "A", "token_type": "Bearer"})),
        )
        .mount(&app.provider)
        .await;
    for scope in [
        "",
        "the+world",
        &"https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fdrive+".repeat(70),
    ] {
        let code = app.session_code(&inst).await;
        let resp = app
            .start_raw(&t, &format!("state=0f8813fb-816d-4fe5-982f-86328b627cfb&nonce=1796671408740&slug=home&scope={scope}&session_code={code}"))
            .await;
        assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
        let state = TestApp::state_in(&location(&resp));
        assert!(state.len() <= 256, "{} characters", state.len());
        let done = app.redirect(&t, &[("code", "C"), ("state", &state)]).await;
        assert!(location(&done).contains("account="), "{}", location(&done));
    }
}

/// An app state that cannot fit is refused at `start`, with a page that says so, before
/// the user is sent to consent; nothing is spent (the session code still works).
async fn a_start_whose_state_cannot_fit_is_refused_before_consent(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let code = app.session_code(&inst).await;
    let resp = app
        .start_raw(
            &t,
            &format!("state={}&session_code={code}", "s".repeat(300)),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("state_too_long") && page.contains("256"),
        "{page}"
    );
    let resp = app
        .start_raw(&t, &format!("state=short&session_code={code}"))
        .await;
    assert_eq!(resp.status(), 303);
}

/// Beside a development cozy-stack (`cozy.instance_scheme = "http"`), the default
/// redirect URI and the app the browser goes back to are `http://`, as cozy-stack's
/// dev builds make them. On the main of 2026-12-07 they were always `https://`.
async fn a_development_stack_gets_http_urls(b: Backend) {
    let app = spawn_app_with(b, |s| s.cozy.instance_scheme = Scheme::Http).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "A", "token_type": "Bearer"})),
        )
        .mount(&app.provider)
        .await;
    let url = app.start_flow(&inst, &t).await;
    assert!(
        url.contains(&format!(
            "redirect_uri=http%3A%2F%2F{}%2Faccounts",
            inst.domain
        )),
        "{url}"
    );
    let state = TestApp::state_in(&url);
    let done = app.redirect(&t, &[("code", "C"), ("state", &state)]).await;
    assert!(
        location(&done).starts_with(&format!("http://home.{}/?account=", inst.domain)),
        "{}",
        location(&done)
    );
}

both_stores!(
    a_long_scope_still_makes_a_state_of_at_most_256_characters,
    a_start_whose_state_cannot_fit_is_refused_before_consent,
    a_development_stack_gets_http_urls,
    start_redirects_to_the_provider_with_the_exact_sorted_query,
    start_url_as_the_home_app_builds_it_is_understood,
    start_url_for_each_grant_mode,
    start_adds_extras_and_honours_skip_redirect_uri,
    start_without_credentials_is_refused_with_a_page,
    start_with_a_used_session_code_is_refused,
    start_with_an_expired_session_code_is_refused,
    start_with_a_forged_session_code_or_token_is_refused,
    start_with_an_api_token_is_accepted,
    start_with_an_unknown_account_type_is_404,
    start_with_an_invalid_account_type_document_names_the_field,
    start_with_a_bad_slug_is_refused_and_keeps_the_session_code,
    start_refuses_oversized_and_duplicated_parameters,
    start_refuses_a_secret_grant_mode,
    start_uses_the_context_overload_of_the_instance,
);

async fn a_client_over_its_rate_is_told_to_wait_and_creates_nothing(b: Backend) {
    let namespace = format!("{}_", unique("limit"));
    let app = spawn_app_with(b, move |s| {
        s.couchdb.db_prefix = namespace;
        s.rate_limit.per_minute = 60;
        s.rate_limit.burst = 3;
    })
    .await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let token = app.api_token(&inst).await;
    let start = || {
        app.http
            .get(format!("{}/accounts/{t}/start", app.address))
            .bearer_auth(&token)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(start().await.unwrap().status(), 303);
    }
    let before = everything(&app, &inst).await;
    let limited = start().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert!(limited.text().await.unwrap().contains("rate_limited"));
    assert_eq!(everything(&app, &inst).await, before);
    // Other route groups have their own budget.
    let redirect = app.redirect(&t, &[("state", "x")]).await;
    assert_eq!(redirect.status(), 400);
}

both_stores!(a_client_over_its_rate_is_told_to_wait_and_creates_nothing);

/// Every document of the broker's databases and of the instance's accounts.
async fn everything(app: &TestApp, inst: &Instance) -> Vec<String> {
    let mut dbs: Vec<String> = oauth_broker::store::BROKER_DBS
        .iter()
        .map(|d| d.to_string())
        .collect();
    dbs.push(inst.accounts_db());
    let mut all = Vec::new();
    for db in dbs {
        if let Ok(docs) = app.store.all_docs(&db).await {
            all.extend(docs.iter().map(|d| format!("{db}: {d}")));
        }
    }
    all.sort();
    all
}

async fn start_writes_nothing_to_the_store(b: Backend) {
    // A database namespace of its own: other tests write to the shared CouchDB meanwhile.
    let namespace = format!("{}_", unique("nowrite"));
    let app = spawn_app_with(b, move |s| s.couchdb.db_prefix = namespace).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({"pkce": true})).await;
    let token = app.api_token(&inst).await;
    let before = everything(&app, &inst).await;
    let mut states = std::collections::HashSet::new();
    for i in 0..5 {
        let resp = app
            .http
            .get(format!("{}/accounts/{t}/start?state=s{i}", app.address))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        states.insert(TestApp::state_in(&location(&resp)));
    }
    assert_eq!(states.len(), 5, "every flow has its own state");
    assert_eq!(
        everything(&app, &inst).await,
        before,
        "start wrote something"
    );
}

both_stores!(start_writes_nothing_to_the_store);
