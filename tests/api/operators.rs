//! What operators see: account and provider health, expiries inferred when a provider
//! tells none, narrowed grants, and the audit trail.

use crate::both_stores;
use crate::helpers::*;
use crate::refresher::account_from;
use crate::webhooks::{events, wait_for};
use base64::Engine;
use oauth_broker::domain::Instance;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const HOOK_SECRET: &str = "whsec-0123456789abcdef";

/// A broker telling `hook` its events, its refresher on when `refresher`.
async fn watched_app(b: Backend, hook: &MockServer, refresher: bool) -> TestApp {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(hook)
        .await;
    let url = format!("{}/hook", hook.uri());
    let namespace = format!("{}_", unique("ops"));
    spawn_app_with(b, move |s| {
        s.webhooks.url = Some(url);
        s.webhooks.secret = HOOK_SECRET.into();
        s.webhooks.retry_base_ms = 50;
        s.refresh.enabled = refresher;
        s.refresh.interval_secs = 1;
        // The margin alone decides (no share of the lifetime, no floor): tests need not wait.
        on_the_margin_alone(s);
        s.couchdb.db_prefix = namespace;
    })
    .await
}

async fn admin_json(app: &TestApp, path: &str) -> Value {
    let resp = app.admin(reqwest::Method::GET, path).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// The account's health record as `GET /admin/accounts` lists it.
async fn health_of(app: &TestApp, inst: &Instance, id: &str) -> Value {
    let page = admin_json(app, &format!("/admin/accounts?instance={}", inst.domain)).await;
    page["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account_id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {page}"))
        .clone()
}

async fn provider_row(app: &TestApp, t: &str) -> Value {
    let all = admin_json(app, "/admin/providers/health").await;
    all["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["account_type"] == t)
        .unwrap_or_else(|| panic!("{t} not in {all}"))
        .clone()
}

async fn a_failing_provider_that_recovers_moves_health_and_tells_the_app(b: Backend) {
    let hook = MockServer::start().await;
    let app = watched_app(b, &hook, false).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    let id = account_from(
        &app,
        &inst,
        &t,
        "c1",
        json!({"access_token": "a1", "refresh_token": "rt1", "expires_in": 3600}),
    )
    .await;
    wait_for(&hook, 1).await;
    let fresh = health_of(&app, &inst, &id).await;
    assert_eq!(fresh["consecutive_failures"], 0);
    assert!(fresh["last_success_at"].is_i64(), "{fresh}");

    // The provider goes down: the refresh fails, the account fails, the app hears once.
    Mock::given(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>down</html>"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&app.provider)
        .await;
    for _ in 0..2 {
        assert_ne!(app.refresh(&t, &id, Some(&token)).await.status(), 200);
    }
    let failing = health_of(&app, &inst, &id).await;
    assert_eq!(failing["consecutive_failures"], 2, "{failing}");
    assert_eq!(failing["reconnect_needed"], false);
    let listed = admin_json(
        &app,
        &format!("/admin/accounts?instance={}&failing=true", inst.domain),
    )
    .await;
    assert_eq!(listed["accounts"].as_array().unwrap().len(), 1);
    let row = provider_row(&app, &t).await;
    assert_eq!(
        (row["accounts"].clone(), row["failing"].clone()),
        (json!(1), json!(1))
    );
    assert!(row["last_error"].is_string(), "{row}");

    // It comes back: healthy again, and the app is told the account recovered.
    Mock::given(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "a2", "expires_in": 3600})),
        )
        .with_priority(2)
        .mount(&app.provider)
        .await;
    assert_eq!(app.refresh(&t, &id, Some(&token)).await.status(), 200);
    let got = wait_for(&hook, 3).await;
    let kinds: Vec<&str> = got.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["account.created", "refresh.failed", "account.recovered"]
    );
    assert_eq!(got[1]["account_id"], id.as_str());
    assert_eq!(got[2]["account_id"], id.as_str());
    let healthy = health_of(&app, &inst, &id).await;
    assert_eq!(healthy["consecutive_failures"], 0, "{healthy}");
    let row = provider_row(&app, &t).await;
    assert_eq!(
        (row["healthy"].clone(), row["failing"].clone()),
        (json!(1), json!(0))
    );
    assert!(row["p50_ms"].is_u64(), "token endpoint times kept: {row}");
}

both_stores!(a_failing_provider_that_recovers_moves_health_and_tells_the_app);

async fn a_dead_refresh_token_lists_the_account_as_needing_reconnection(b: Backend) {
    let hook = MockServer::start().await;
    let app = watched_app(b, &hook, false).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    let id = account_from(
        &app,
        &inst,
        &t,
        "c1",
        json!({"access_token": "a1", "refresh_token": "dead", "expires_in": 3600}),
    )
    .await;
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=dead"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .mount(&app.provider)
        .await;
    assert_eq!(app.refresh(&t, &id, Some(&token)).await.status(), 401);
    let listed = admin_json(
        &app,
        &format!(
            "/admin/accounts?instance={}&reconnect_needed=true",
            inst.domain
        ),
    )
    .await;
    let accounts = listed["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 1, "{listed}");
    assert_eq!(accounts[0]["last_error"], "invalid_grant");
    assert_eq!(provider_row(&app, &t).await["reconnect_needed"], 1);
    let got = wait_for(&hook, 2).await;
    assert_eq!(got.len(), 2, "told once: {got:?}");
    assert_eq!(got[1]["event"], "refresh.failed");
}

both_stores!(a_dead_refresh_token_lists_the_account_as_needing_reconnection);

/// A JWT with only an `exp` claim (unsigned: the broker reads, never trusts, it).
fn jwt_expiring_at(exp: i64) -> String {
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.{}",
        b(r#"{"alg":"RS256"}"#),
        b(&format!(r#"{{"sub":"u","exp":{exp}}}"#)),
        b("sig")
    )
}

async fn a_jwt_access_token_without_expires_in_is_refreshed_before_its_exp(b: Backend) {
    let hook = MockServer::start().await;
    let app = watched_app(b, &hook, true).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    // Due once fewer than 10 minutes (the margin) are left: a few seconds from now.
    let exp = chrono::Utc::now().timestamp() + 600 + 3;
    let id = account_from(
        &app,
        &inst,
        &t,
        "jwt",
        json!({"access_token": jwt_expiring_at(exp), "refresh_token": "rt-jwt"}),
    )
    .await;
    let stored = app.account(&inst, &id).await;
    assert_eq!(
        stored["oauth"]["expires_at"],
        chrono::DateTime::from_timestamp(exp, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "the expiry is the token's own"
    );
    let (due, _) = app.planned(&inst, &id).await.expect("planned");
    assert_eq!(due, exp - 600, "planned from the inferred expiry");
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=rt-jwt"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "renewed"})))
        .mount(&app.provider)
        .await;
    for _ in 0..150 {
        if app.account(&inst, &id).await["oauth"]["access_token"] == "renewed" {
            assert!(chrono::Utc::now().timestamp() < exp, "renewed before exp");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not refreshed before its exp");
}

both_stores!(a_jwt_access_token_without_expires_in_is_refreshed_before_its_exp);

async fn a_narrowed_grant_sets_scope_missing_and_tells_the_app(b: Backend) {
    let hook = MockServer::start().await;
    let app = watched_app(b, &hook, false).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    // `start_flow` asks for "the world"; the provider grants "the" only.
    let id = account_from(
        &app,
        &inst,
        &t,
        "narrow",
        json!({"access_token": "a", "refresh_token": "r", "expires_in": 3600, "scope": "the"}),
    )
    .await;
    assert_eq!(
        app.account(&inst, &id).await["scope_missing"],
        json!(["world"])
    );
    assert_eq!(
        health_of(&app, &inst, &id).await["scope_missing"],
        json!(["world"])
    );
    let got = wait_for(&hook, 2).await;
    let told = got
        .iter()
        .find(|e| e["event"] == "account.scope_missing")
        .unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(told["account_id"], id.as_str());
    assert_eq!(told["error"], "world");

    // A full grant says nothing of the kind.
    let whole = account_from(
        &app,
        &inst,
        &t,
        "whole",
        json!({"access_token": "a", "expires_in": 3600, "scope": "the,world"}),
    )
    .await;
    assert!(app
        .account(&inst, &whole)
        .await
        .get("scope_missing")
        .is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let scope_events = events(&hook)
        .await
        .iter()
        .filter(|e| e["event"] == "account.scope_missing")
        .count();
    assert_eq!(scope_events, 1);
}

both_stores!(a_narrowed_grant_sets_scope_missing_and_tells_the_app);

async fn account_listings_page_through_every_account_once(b: Backend) {
    let hook = MockServer::start().await;
    let app = watched_app(b, &hook, false).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            account_from(
                &app,
                &inst,
                &t,
                &format!("p{i}"),
                json!({"access_token": "a", "refresh_token": "r", "expires_in": 3600}),
            )
            .await,
        );
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..5 {
        let mut q = format!("/admin/accounts?instance={}&limit=2", inst.domain);
        if let Some(a) = &after {
            q.push_str(&format!("&after={}", urlencoding(a)));
        }
        let page = admin_json(&app, &q).await;
        let got = page["accounts"].as_array().unwrap();
        assert!(got.len() <= 2);
        seen.extend(
            got.iter()
                .map(|a| a["account_id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids, "each account once");
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "failing=maybe",
        "limit=1&limit=2",
    ] {
        let resp = app
            .admin(reqwest::Method::GET, &format!("/admin/accounts?{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
    let resp = app
        .http
        .get(format!("{}/admin/accounts", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "operators only");
}

both_stores!(account_listings_page_through_every_account_once);

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn every_audited_action_leaves_one_entry_without_a_secret(b: Backend) {
    let hook = MockServer::start().await;
    let app = watched_app(b, &hook, false).await;
    let since = chrono::Utc::now().to_rfc3339();
    let t = unique("audited");
    let secret = "client-secret-that-must-not-leak-0123";
    let put = app
        .admin(reqwest::Method::PUT, &format!("/admin/account_types/{t}"))
        .json(
            &json!({"grant_mode": "authorization_code", "client_id": "c", "client_secret": secret,
            "auth_endpoint": format!("{}/authorize", app.provider.uri()),
            "token_endpoint": format!("{}/token", app.provider.uri())}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let put_request_id = put.headers()["x-request-id"].to_str().unwrap().to_owned();
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let code = app.session_code(&inst).await;
    let revoked_token = app.api_token(&inst).await;
    let revoke = app
        .admin(reqwest::Method::POST, "/admin/tokens/revoke")
        .json(&json!({"token": revoked_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    let id = account_from(
        &app,
        &inst,
        &t,
        "audited",
        json!({"access_token": "at-must-not-leak", "refresh_token": "rt-must-not-leak"}),
    )
    .await;
    let deleted = app
        .http
        .delete(format!("{}/accounts/{t}/{id}", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let gone = app
        .admin(
            reqwest::Method::DELETE,
            &format!("/admin/account_types/{t}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 200);
    // A refused action changes nothing, so it records nothing.
    let refused = app
        .admin(
            reqwest::Method::DELETE,
            &format!("/admin/account_types/{t}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);

    let trail = admin_json(&app, &format!("/admin/audit?since={}", urlencoding(&since))).await;
    let entries: Vec<&Value> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let target = e["target"].as_str().unwrap();
            target == t || target.contains(inst.domain.as_str()) || target.starts_with("token:")
        })
        .collect();
    let count = |action: &str| entries.iter().filter(|e| e["action"] == action).count();
    for action in [
        "account_type.put",
        "instance.add",
        "api_token.revoke",
        "account.delete",
        "account_type.delete",
    ] {
        assert_eq!(count(action), 1, "{action}: {entries:?}");
    }
    // `start_flow` issues a session code of its own.
    assert_eq!(count("api_token.issue"), 2);
    assert_eq!(count("session_code.issue"), 2);
    let put_entry = entries
        .iter()
        .find(|e| e["action"] == "account_type.put")
        .unwrap();
    assert_eq!(put_entry["request_id"], put_request_id.as_str());
    assert!(put_entry["actor"].as_str().unwrap().starts_with("admin:"));
    let by_konnector = entries
        .iter()
        .find(|e| e["action"] == "account.delete")
        .unwrap();
    assert_eq!(
        by_konnector["actor"],
        format!("konnector:{}", inst.domain).as_str()
    );
    let all = serde_json::to_string(&trail).unwrap();
    for leak in [
        secret,
        token.as_str(),
        revoked_token.as_str(),
        code.as_str(),
        ADMIN_TOKEN,
        "at-must-not-leak",
        "rt-must-not-leak",
    ] {
        assert!(!all.contains(leak), "the audit trail holds a secret");
    }
}

both_stores!(every_audited_action_leaves_one_entry_without_a_secret);

#[tokio::test]
async fn operator_listings_say_the_store_is_down_and_the_metrics_count_it() {
    let Some(relay) = CouchRelay::start().await else {
        return;
    };
    let app = spawn_relayed_app(&relay).await;
    let bad_since = app
        .admin(reqwest::Method::GET, "/admin/audit?since=yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_since.status(), 400);
    relay.set_down(true).await;
    for path in ["/admin/accounts", "/admin/providers/health", "/admin/audit"] {
        let resp = app.admin(reqwest::Method::GET, path).send().await.unwrap();
        assert_eq!(resp.status(), 503, "{path}");
        let body = resp.text().await.unwrap();
        assert!(body.contains("store_unavailable"), "{path}: {body}");
    }
    relay.set_down(false).await;
    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("broker_store_errors_total{op=\"docs_in_range\"}")),
        "{metrics}"
    );
}

/// Entries older than `audit.keep_days` go at the sweeper's first pass (at start-up);
/// newer ones stay, and `broker_audit_entries_pruned_total` counts what went.
async fn audit_entries_past_their_retention_are_removed_and_counted(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.audit.keep_days = 30;
        s.couchdb.db_prefix = format!("{}_", unique("audit"));
    })
    .await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 86_400_000i64;
    let entry = |ms: i64, n: usize| {
        json!({"_id": format!("{ms:015}-old{n:03}"), "at": "then", "actor": "cli:test",
            "action": "instance.add", "target": format!("t{n}")})
    };
    let old: Vec<_> = (0..7)
        .map(|n| entry(now_ms - 40 * day - n as i64, n))
        .collect();
    let recent: Vec<_> = (0..3).map(|n| entry(now_ms - 2 * day, 100 + n)).collect();
    for doc in old.iter().chain(&recent) {
        app.store
            .put(oauth_broker::store::AUDIT_DB, doc)
            .await
            .unwrap();
    }
    // The sweeper of a broker started now makes its first pass at once.
    let address = restarted(&app.settings).await.unwrap();
    let mut left = Vec::new();
    for _ in 0..50 {
        left = app
            .store
            .all_docs(oauth_broker::store::AUDIT_DB)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|d| d["target"].as_str().map(str::to_owned))
            .filter(|t| t.starts_with('t'))
            .collect();
        if left.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        left,
        ["t100", "t101", "t102"],
        "the old entries went, the recent stayed"
    );
    // Whichever broker's sweeper got there first counted them, once.
    let mut pruned = 0;
    for base in [&app.address, &address] {
        let metrics = app
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        pruned += metrics
            .lines()
            .find_map(|l| l.strip_prefix("broker_audit_entries_pruned_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("the counter is exported");
    }
    assert_eq!(pruned, 7);
}

both_stores!(audit_entries_past_their_retention_are_removed_and_counted);
