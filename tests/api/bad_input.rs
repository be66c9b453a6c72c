//! Every public route against forged, replayed, expired, oversized and malformed input:
//! each case asserts the status, the error code, and that nothing in the store was
//! created, changed or lost (apart from the single-use state a provider refusal spends).

use crate::both_stores;
use crate::helpers::*;
use oauth_broker::domain::secret::sha256_hex;
use oauth_broker::domain::Instance;
use oauth_broker::store::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, path};
use wiremock::{Mock, ResponseTemplate};

/// Every document the broker may touch, by database and id.
async fn snapshot(app: &TestApp, instances: &[&Instance]) -> BTreeMap<String, String> {
    let mut dbs: Vec<String> = BROKER_DBS.iter().map(|d| d.to_string()).collect();
    dbs.extend(instances.iter().map(|i| i.accounts_db()));
    let mut all = BTreeMap::new();
    for db in dbs {
        let docs = match app.store.all_docs(&db).await {
            Err(StoreError::NoDatabase(_)) => vec![],
            other => other.unwrap(),
        };
        for d in docs {
            all.insert(
                format!("{db}/{}", d["_id"].as_str().unwrap()),
                d.to_string(),
            );
        }
    }
    all
}

/// The error code of an answer: JSON:API `code`, the HTML page's `error:`, or `?error=`.
async fn error_code(resp: reqwest::Response) -> String {
    if let Some(loc) = resp.headers().get("location") {
        return query_of(loc.to_str().unwrap())
            .get("error")
            .cloned()
            .unwrap_or_else(|| "(none)".into());
    }
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.text().await.unwrap();
    if ct.contains("json") {
        let v: Value = serde_json::from_str(&body).unwrap();
        return v["errors"][0]["code"]
            .as_str()
            .unwrap_or("(none)")
            .to_owned();
    }
    body.split("error: ")
        .nth(1)
        .and_then(|r| r.split(['<', ' ']).next())
        .unwrap_or("(none)")
        .to_owned()
}

struct Case {
    name: &'static str,
    method: reqwest::Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
    status: u16,
    code: &'static str,
    /// A document this case may legitimately change, and what it must then contain (the
    /// state a provider refusal spends; the mark on an account whose token died).
    may_change: Vec<(String, &'static str)>,
}

fn case(
    name: &'static str,
    method: reqwest::Method,
    path: String,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        method,
        path,
        headers: vec![],
        body: None,
        status,
        code,
        may_change: Vec::new(),
    }
}

impl Case {
    fn header(mut self, k: &'static str, v: impl Into<String>) -> Case {
        self.headers.push((k, v.into()));
        self
    }
    fn bearer(self, t: &str) -> Case {
        self.header("authorization", format!("Bearer {t}"))
    }
    fn admin(self) -> Case {
        self.bearer(ADMIN_TOKEN)
    }
    fn body(mut self, b: impl Into<String>) -> Case {
        self.body = Some(b.into());
        self
    }
    fn spends(mut self, state: &str) -> Case {
        self.may_change.push((
            format!("{FLOW_STATES_DB}/{}", sha256_hex(state)),
            "\"used\":true",
        ));
        self
    }
    fn marks(mut self, db: String, account: &str) -> Case {
        self.may_change
            .push((format!("{db}/{account}"), "\"reconnect_needed\""));
        self
    }

    /// The provider failed the refresh: the account's health record says so (and only it
    /// changes), for operators to see.
    fn records_failure(mut self, domain: &str, account: &str, cause: &'static str) -> Case {
        self.may_change.push((
            format!("{REFRESH_SCHEDULE_DB}/health/{domain}/{account}"),
            cause,
        ));
        self
    }
}

/// Starts a flow in a binding broker; returns (state, cookie header).
async fn bound_flow(app: &TestApp, token: &str, t: &str) -> (String, String) {
    let resp = app
        .http
        .get(format!("{}/accounts/{t}/start?state=cs", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (TestApp::state_in(&location(&resp)), cookie)
}

async fn every_route_refuses_bad_input_and_changes_nothing(b: Backend) {
    use reqwest::Method;
    let namespace = format!("{}_", unique("bad"));
    let app = spawn_app_with(b, move |s| {
        s.flow_binding = true;
        s.couchdb.db_prefix = namespace;
    })
    .await;
    let p = app.provider.uri();
    let inst = app.new_instance(None).await;
    let other = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let other_token = app.api_token(&other).await;
    let revoked = app.api_token(&inst).await;
    let resp = app
        .admin(Method::POST, "/admin/tokens/revoke")
        .json(&json!({"token": revoked}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let t = app.code_type(json!({})).await;
    let t2 = app.code_type(json!({})).await;
    let pkce = app
        .code_type(json!({"pkce": true, "token_endpoint": format!("{p}/pkce-token")}))
        .await;
    let secret_type = unique("secret");
    app.put_account_type(json!({"_id": secret_type, "grant_mode": "secret", "secret": "s"}))
        .await;
    let broken = unique("broken");
    app.store
        .put(
            ACCOUNT_TYPES_DB,
            &json!({"_id": broken, "grant_mode": "authorization_code", "client_id": "c",
            "auth_endpoint": "https://a.example", "extras": {"n": 1}}),
        )
        .await
        .unwrap();

    // Provider: code exchanges succeed; refresh tokens `dead`, `garbage`, `slow` fail their way.
    Mock::given(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "at", "refresh_token": "rt"})),
        )
        .mount(&app.provider)
        .await;
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=dead"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .mount(&app.provider)
        .await;
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=garbage"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("<html>", "text/html"))
        .mount(&app.provider)
        .await;
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "x"}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&app.provider)
        .await;
    // PKCE: the provider holds a code issued to another flow (its challenge), so this flow's verifier fails.
    Mock::given(path("/pkce-token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .mount(&app.provider)
        .await;

    let account = |rt: &str| json!({"account_type": t, "name": "", "oauth": {"access_token": "a", "refresh_token": rt}});
    let dead = app.seed_account(&inst, account("dead")).await;
    let garbage = app.seed_account(&inst, account("garbage")).await;
    let slow = app.seed_account(&inst, account("slow")).await;
    let no_oauth = app
        .seed_account(&inst, json!({"account_type": t, "name": ""}))
        .await;

    // States: one completed (replay), one expired, one bound to a cookie we do not send, one PKCE.
    let (used_state, used_cookie) = bound_flow(&app, &token, &t).await;
    let done = app
        .http
        .get(format!(
            "{}/accounts/{t}/redirect?code=c&state={used_state}",
            app.address
        ))
        .header("cookie", &used_cookie)
        .send()
        .await
        .unwrap();
    assert!(location(&done).contains("account="));
    let (bound_state, bound_cookie) = bound_flow(&app, &token, &t).await;
    let (pkce_state, pkce_cookie) = bound_flow(&app, &token, &pkce).await;
    // A replica whose states expire at once, sharing the store (and so the flow key).
    let mut instant = app.settings.clone();
    instant.listen = "127.0.0.1:0".into();
    instant.flow_ttl_secs = 0;
    let expiring = spawn_with_settings(
        instant,
        app._dir.clone(),
        wiremock::MockServer::start().await,
    )
    .await;
    let (expired_state, _) = bound_flow(&expiring, &token, &t).await;
    let used_code = app.session_code(&inst).await;
    assert_eq!(
        app.start_raw(&t, &format!("session_code={used_code}"))
            .await
            .status(),
        303
    );
    let expired_code = "c".repeat(64);
    app.store
        .put(SESSION_CODES_DB, &json!({"_id": sha256_hex(&expired_code), "instance": inst.domain.as_str(), "expires_at": 1}))
        .await
        .unwrap();
    let forged_state = "ab".repeat(32);
    let long = "x".repeat(9000);
    let start = |q: &str| format!("/accounts/{t}/start?{q}");
    let redirect = |ty: &str, q: &str| format!("/accounts/{ty}/redirect?{q}");
    let refresh = |id: &str| format!("/accounts/{t}/{id}/refresh");
    let at_doc = format!("/admin/account_types/{}", unique("new"));
    let g = Method::GET;
    let post = Method::POST;
    let put = Method::PUT;

    let cases = vec![
        // start
        case("start without credentials", g.clone(), start("state=s"), 403, "login_required"),
        case("start with a forged session code", g.clone(), start("session_code=forged"), 403, "bad_credentials"),
        case("start with a used session code", g.clone(), start(&format!("session_code={used_code}")), 403, "bad_credentials"),
        case("start with an expired session code", g.clone(), start(&format!("session_code={expired_code}")), 403, "bad_credentials"),
        case("start with a forged token", g.clone(), start(""), 403, "bad_credentials").bearer("forged"),
        case("start with a revoked token", g.clone(), start(""), 403, "bad_credentials").bearer(&revoked),
        case("start with a Basic header", g.clone(), start(""), 403, "login_required").header("authorization", "Basic YTpi"),
        case("start of an unknown type", g.clone(), format!("/accounts/{}/start", unique("nope")), 404, "unknown_account_type").bearer(&token),
        case("start of a type with a path trick", g.clone(), "/accounts/..%2F..%2Fetc/start".into(), 404, "unknown_account_type").bearer(&token),
        case("start of an invalid type document", g.clone(), format!("/accounts/{broken}/start"), 500, "invalid_account_type").bearer(&token),
        case("start of a secret type", g.clone(), format!("/accounts/{secret_type}/start"), 400, "no_authorization_step").bearer(&token),
        case("start with a host in the slug", g.clone(), start("slug=evil.com"), 400, "invalid_slug").bearer(&token),
        case("start with an uppercase slug", g.clone(), start("slug=Home"), 400, "invalid_slug").bearer(&token),
        case("start with a CRLF in the slug", g.clone(), start("slug=home%0D%0ALocation:%20x"), 400, "invalid_parameter").bearer(&token),
        case("start with a CRLF in the state", g.clone(), start("state=a%0D%0ASet-Cookie:%20x"), 400, "invalid_parameter").bearer(&token),
        case("start with two states", g.clone(), start("state=a&state=b"), 400, "duplicate_parameter").bearer(&token),
        case("start with two session codes", g.clone(), start(&format!("session_code={used_code}&session_code=x")), 400, "duplicate_parameter"),
        case("start with a long state", g.clone(), start(&format!("state={}", "s".repeat(2000))), 400, "parameter_too_long").bearer(&token),
        case("start with a long nonce", g.clone(), start(&format!("nonce={}", "n".repeat(300))), 400, "parameter_too_long").bearer(&token),
        case("start with a long scope", g.clone(), start(&format!("scope={}", "s".repeat(5000))), 400, "parameter_too_long").bearer(&token),
        case("start with an oversized query", g.clone(), start(&format!("x={long}")), 413, "too_large").bearer(&token),
        // redirect
        case("redirect without state", g.clone(), redirect(&t, "code=c"), 400, "state_missing"),
        case("redirect with a forged state", g.clone(), redirect(&t, &format!("code=c&state={forged_state}")), 400, "state_unknown"),
        case("redirect with a short state", g.clone(), redirect(&t, "code=c&state=abc"), 400, "state_unknown"),
        case("redirect with a CRLF state", g.clone(), redirect(&t, "code=c&state=a%0D%0AX:%20y"), 400, "state_unknown"),
        case("redirect with a replayed state", g.clone(), redirect(&t, &format!("code=c&state={used_state}")), 400, "state_replayed").header("cookie", used_cookie.clone()),
        case("redirect with an expired state", g.clone(), redirect(&t, &format!("code=c&state={expired_state}")), 400, "state_expired"),
        case("redirect with a state of another type", g.clone(), redirect(&t2, &format!("code=c&state={bound_state}")), 400, "state_mismatch").header("cookie", bound_cookie.clone()),
        // Without the binding cookie (none, another flow's, forged) a flow is not refused
        // but confirmed by the person: tests/api/redirect.rs. The confirmation's form:
        case("confirmation without a query", reqwest::Method::POST, format!("/accounts/{t}/redirect"), 400, "state_missing").body("nothing=here"),
        case("confirmation with a forged state", reqwest::Method::POST, format!("/accounts/{t}/redirect"), 400, "state_unknown").body(format!("query=code%3Dc%26state%3D{forged_state}")),
        case("confirmation with a replayed state", reqwest::Method::POST, format!("/accounts/{t}/redirect"), 400, "state_replayed").body(format!("query=code%3Dc%26state%3D{used_state}")),
        case("confirmation of a state of another type", reqwest::Method::POST, format!("/accounts/{t2}/redirect"), 400, "state_mismatch").body(format!("query=code%3Dc%26state%3D{bound_state}")),
        case("confirmation with an oversized form", reqwest::Method::POST, format!("/accounts/{t}/redirect"), 413, "too_large").body("q".repeat(70 * 1024)),
        case("redirect with two states", g.clone(), redirect(&t, &format!("state={bound_state}&state={bound_state}")), 400, "duplicate_parameter"),
        case("redirect with an oversized query", g.clone(), redirect(&t, &format!("x={long}")), 413, "too_large"),
        case("redirect with a long connection_id", g.clone(), redirect(&t, &format!("state={bound_state}&connection_id={}", "1".repeat(300))), 400, "parameter_too_long"),
        case("redirect with a PKCE mismatch", g.clone(), redirect(&pkce, &format!("code=someone-elses&state={pkce_state}")), 502, "invalid_grant").header("cookie", pkce_cookie.clone()).spends(&pkce_state),
        // refresh
        case("refresh without a token", post.clone(), refresh(&dead), 401, "no_credentials"),
        case("refresh with a forged token", post.clone(), refresh(&dead), 403, "bad_credentials").bearer("forged"),
        case("refresh with a revoked token", post.clone(), refresh(&dead), 403, "bad_credentials").bearer(&revoked),
        case("refresh with the admin token", post.clone(), refresh(&dead), 403, "bad_credentials").admin(),
        case("refresh with another instance's token", post.clone(), refresh(&dead), 404, "not_found").bearer(&other_token),
        case("refresh of an unknown account", post.clone(), refresh("nope"), 404, "not_found").bearer(&token),
        case("refresh of a design document", post.clone(), refresh("_design"), 404, "not_found").bearer(&token),
        case("refresh of an account without tokens", post.clone(), refresh(&no_oauth), 400, "not_refreshable").bearer(&token),
        case("refresh with a dead refresh token", post.clone(), refresh(&dead), 401, "oauth_refresh_invalid_token").bearer(&token)
        .marks(inst.accounts_db(), &dead)
        .records_failure(inst.domain.as_str(), &dead, "\"last_error\":\"invalid_grant\""),
        case("refresh with a provider answering HTML", post.clone(), refresh(&garbage), 502, "provider_error").bearer(&token)
        .records_failure(inst.domain.as_str(), &garbage, "\"consecutive_failures\":1"),
        case("refresh with a slow provider", post.clone(), refresh(&slow), 504, "provider_timeout").bearer(&token)
        .records_failure(inst.domain.as_str(), &slow, "\"consecutive_failures\":1"),
        case("refresh with a malformed force", post.clone(), format!("{}?force=maybe", refresh(&garbage)), 400, "invalid_parameter").bearer(&token),
        // admin
        case("admin without a token", g.clone(), "/admin/account_types".into(), 401, "admin_unauthorized"),
        case("admin with a wrong token", g.clone(), "/admin/account_types".into(), 401, "admin_unauthorized").bearer("nope"),
        case("admin with an instance token", g.clone(), "/admin/instances".into(), 401, "admin_unauthorized").bearer(&token),
        case("admin put of broken JSON", put.clone(), at_doc.clone(), 400, "invalid_json").admin().body("{"),
        case("admin put of a non-object", put.clone(), at_doc.clone(), 400, "invalid_json").admin().body("[]"),
        case("admin put with a numeric extra", put.clone(), at_doc.clone(), 400, "invalid_account_type").admin()
            .body(json!({"grant_mode": "authorization_code", "client_id": "c", "auth_endpoint": "https://a.example", "extras": {"x": 1}}).to_string()),
        case("admin put of a banking mode", put.clone(), at_doc.clone(), 400, "invalid_account_type").admin().body(r#"{"grant_mode":"bi_webauth"}"#),
        case("admin put with another _id", put.clone(), at_doc.clone(), 400, "id_mismatch").admin().body(r#"{"_id":"other"}"#),
        case("admin put of an oversized body", put.clone(), at_doc.clone(), 413, "too_large").admin().body(long.repeat(10)),
        case("admin put with a stale _rev", put.clone(), format!("/admin/account_types/{t}"), 409, "conflict").admin()
            .body(json!({"grant_mode": "secret", "_rev": "1-00000000000000000000000000000000"}).to_string()),
        case("admin put of a bad id", put.clone(), "/admin/account_types/_design".into(), 400, "invalid_account_type").admin().body(r#"{"grant_mode":"secret"}"#),
        case("admin get of an unknown type", g.clone(), at_doc.clone(), 404, "not_found").admin(),
        case("admin delete of an unknown type", Method::DELETE, at_doc.clone(), 404, "not_found").admin(),
        case("admin add of a bad domain", post.clone(), "/admin/instances".into(), 400, "invalid_domain").admin().body(r#"{"domain":"a b"}"#),
        case("admin add of an existing instance", post.clone(), "/admin/instances".into(), 409, "conflict").admin()
            .body(json!({"domain": inst.domain.as_str()}).to_string()),
        case("admin session code of an unknown instance", post.clone(), "/admin/instances/nobody.example/session_codes".into(), 404, "unknown_instance").admin(),
        case("admin token of a bad domain", post.clone(), "/admin/instances/a%20b/tokens".into(), 400, "invalid_domain").admin(),
        case("admin revoke of an unknown token", post.clone(), "/admin/tokens/revoke".into(), 404, "not_found").admin().body(r#"{"token":"nope"}"#),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());

    let instances = [&inst, &other];
    for c in cases {
        let before = snapshot(&app, &instances).await;
        let mut req = app
            .http
            .request(c.method.clone(), format!("{}{}", app.address, c.path));
        for (k, v) in &c.headers {
            req = req.header(*k, v);
        }
        if let Some(body) = &c.body {
            req = req
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), c.status, "{}", c.name);
        assert_eq!(error_code(resp).await, c.code, "{}", c.name);
        let mut after = snapshot(&app, &instances).await;
        for (key, mark) in &c.may_change {
            assert!(after[key].contains(mark), "{}: {key} has {mark}", c.name);
            match before.get(key) {
                Some(was) => after.insert(key.clone(), was.clone()),
                None => after.remove(key),
            };
        }
        assert_eq!(before, after, "{}: the store changed", c.name);
    }
}

both_stores!(every_route_refuses_bad_input_and_changes_nothing);
