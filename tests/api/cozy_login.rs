//! Beside cozy-stack, `start` logs in as cozy-stack's `checkLogin` does: the instance from
//! the host, its session cookie, a session code in cozy-stack's Redis (cozy-auth.md §1-3).

use crate::both_stores;
use crate::common::cozy_stack::*;
use crate::common::idp;
use crate::helpers::*;
use oauth_broker::config::OidcContext;
use oauth_broker::domain::cozy::cookie;
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

fn nested_cookie() -> String {
    format!("cozysessid={NESTED_COOKIE}")
}

/// The `Set-Cookie` headers of an answer.
fn set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

async fn start_with_the_cozy_session_cookie_goes_to_the_provider(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let t = c.app.code_type(json!({})).await;
    let resp = c.start(&t, Some(&nested_cookie()), "").await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    assert!(location(&resp).starts_with(&c.app.provider.uri()));
    // A long session needs no new one: only the flow binding cookie is set.
    let cookies = set_cookies(&resp);
    assert!(
        cookies.iter().all(|s| !s.starts_with("cozysessid=")),
        "{cookies:?}"
    );
}

async fn start_on_an_alias_host_finds_the_instance(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    c.update_instance(json!({"domain_aliases": ["alice.example.org"]}))
        .await;
    let t = c.app.code_type(json!({})).await;
    // Nested subdomains: the cookie of the alias host is still `cozysessid`.
    let resp = c
        .request(
            reqwest::Method::GET,
            "Alice.Example.Org:443",
            &format!("/accounts/{t}/start?state=s&slug=home"),
        )
        .header("cookie", nested_cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
}

async fn a_new_alias_is_in_force_within_a_second(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let t = c.app.code_type(json!({})).await;
    let on_alias = || async {
        c.request(
            reqwest::Method::GET,
            "new-alias.example.org",
            &format!("/accounts/{t}/start?state=s&slug=home"),
        )
        .header("cookie", nested_cookie())
        .send()
        .await
        .unwrap()
        .status()
    };
    // Unknown (and remembered as such) before the alias exists.
    assert_eq!(on_alias().await, 404);
    c.update_instance(json!({"domain_aliases": ["new-alias.example.org"]}))
        .await;
    let mut status = on_alias().await;
    for _ in 0..30 {
        if status == 303 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = on_alias().await;
    }
    assert_eq!(status, 303, "the changes feed did not bring the alias");
}

async fn start_on_the_old_domain_answers_308_to_the_new_one(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    c.update_instance(json!({"old_domain": "alice.oldcozy.example"}))
        .await;
    let resp = c
        .request(
            reqwest::Method::GET,
            "alice.oldcozy.example",
            "/accounts/google/start?state=s&slug=home",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(
        location(&resp),
        format!("https://{DOMAIN}/accounts/google/start?state=s&slug=home")
    );
}

async fn a_cozy_cookie_on_an_unknown_host_is_404(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let resp = c
        .request(
            reqwest::Method::GET,
            "bob.cozy.example",
            "/accounts/google/start?state=s&slug=home",
        )
        .header("cookie", nested_cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

async fn a_stray_sess_cookie_does_not_stop_a_broker_code_on_the_brokers_host(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let t = c.app.code_type(json!({})).await;
    let code = c.app.session_code(&c.inst).await;
    // Another application under the same parent domain named its cookie `sess-...`.
    let resp = c
        .request(
            reqwest::Method::GET,
            "broker.example",
            &format!("/accounts/{t}/start?state=s&slug=home&session_code={code}"),
        )
        .header("cookie", "sess-shop=abc123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
}

async fn start_without_a_session_is_403(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let t = c.app.code_type(json!({})).await;
    let resp = c.start(&t, None, "").await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("not logged in"));
}

async fn forged_cookies_are_refused(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let t = c.app.code_type(json!({})).await;
    let raw_secret_cookie = cookie::encode("cozysessid", &session_secret(), SID, IAT);
    let padded = format!("{}A=", &NESTED_COOKIE[..NESTED_COOKIE.len() - 1]);
    let over_long = cookie::encode("cozysessid", &session_key(), &"a".repeat(200), IAT);
    assert!(over_long.len() > 256);
    // A gorilla/securecookie value: padded base64 of `ts|value|mac`.
    let gorilla =
        "MTcwMDAwMDAwMHxCZ3dBSURWa01tWTJZekZsTUdFMFlqUmpNMlE1WlRobVkyRTJZalZqTkdRelpUSm18Zm9yZ2Vk";
    for (what, value) in [
        (
            "the flat mode's cookie under the nested name",
            FLAT_COOKIE.to_owned(),
        ),
        ("a cookie signed without 2:", raw_secret_cookie),
        ("a padded cookie", padded),
        (
            "an over-long cookie (its session exists)",
            over_long.clone(),
        ),
        ("a gorilla securecookie", gorilla.to_owned()),
    ] {
        let resp = c.start(&t, Some(&format!("cozysessid={value}")), "").await;
        assert_eq!(resp.status(), 403, "{what}");
    }
    // The over-long cookie names a real session: only its length refuses it.
    c.write_session(&"a".repeat(200), IAT, false).await;
    let resp = c
        .start(&t, Some(&format!("cozysessid={over_long}")), "")
        .await;
    assert_eq!(resp.status(), 403);
}

async fn flat_subdomains_read_the_sess_prefix_cookie_only(b: Backend) {
    let c = spawn_cozy(b, |s| s.subdomains = oauth_broker::domain::Subdomains::Flat).await;
    let t = c.app.code_type(json!({})).await;
    let flat = format!("sess-{}={FLAT_COOKIE}", c.inst.prefix);
    assert_eq!(c.start(&t, Some(&flat), "").await.status(), 303);
    assert_eq!(c.start(&t, Some(&nested_cookie()), "").await.status(), 403);
    // `alice-home.cozy.example` is an app host in flat mode, never an instance.
    c.update_instance(json!({"domain_aliases": ["alice-home.cozy.example"]}))
        .await;
    let on_app_host = c
        .request(
            reqwest::Method::GET,
            "alice-home.cozy.example",
            &format!("/accounts/{t}/start?state=s&slug=home"),
        )
        .header("cookie", flat.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(on_app_host.status(), 404);
    // The cozysessid value under the flat name: its MAC covers the other name.
    let swapped = format!("sess-{}={NESTED_COOKIE}", c.inst.prefix);
    assert_eq!(c.start(&t, Some(&swapped), "").await.status(), 403);
}

async fn a_session_unseen_for_thirty_days_is_refused(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let t = c.app.code_type(json!({})).await;
    let now = IAT + 60;
    c.write_session("stale", now - 30 * 24 * 3600 - 1, false)
        .await;
    c.write_session("edge", now - 30 * 24 * 3600, false).await;
    let cookie_for = |sid: &str| {
        format!(
            "cozysessid={}",
            cookie::encode("cozysessid", &session_key(), sid, IAT)
        )
    };
    assert_eq!(
        c.start(&t, Some(&cookie_for("stale")), "").await.status(),
        403
    );
    assert_eq!(
        c.start(&t, Some(&cookie_for("edge")), "").await.status(),
        303
    );
    // A deleted (logged out) session is no session.
    assert_eq!(
        c.start(&t, Some(&cookie_for("gone")), "").await.status(),
        403
    );
}

async fn a_short_run_session_gets_a_new_short_run_session_cookie(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let t = c.app.code_type(json!({})).await;
    c.write_session("short", IAT, true).await;
    let value = cookie::encode("cozysessid", &session_key(), "short", IAT);
    let resp = c.start(&t, Some(&format!("cozysessid={value}")), "").await;
    assert_eq!(resp.status(), 303);
    let new = set_cookies(&resp)
        .into_iter()
        .find(|s| s.starts_with("cozysessid="))
        .expect("a new session cookie");
    for attr in [
        "Max-Age=300",
        "Domain=.alice.cozy.example",
        "Path=/",
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
    ] {
        assert!(new.contains(attr), "{attr} missing in {new}");
    }
    // It names a new short-run session document, signed as cozy-stack signs it.
    let value = new["cozysessid=".len()..].split(';').next().unwrap();
    let id = cookie::decode("cozysessid", &session_key(), value).unwrap();
    assert_ne!(id, "short");
    let doc = c
        .app
        .store
        .get(&c.db("io.cozy.sessions"), &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc["short_run"], true);
    assert_eq!(doc["long_run"], false);
    // And it logs the popup in on its own.
    let resp = c.start(&t, Some(&format!("cozysessid={value}")), "").await;
    assert_eq!(resp.status(), 303);
}

async fn without_redis_a_cozy_session_code_gets_a_page_that_says_so(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let t = c.app.code_type(json!({})).await;
    let resp = c
        .start(&t, None, "&session_code=abcdefghijABCDEFGHIJ0123456789xy")
        .await;
    assert_eq!(resp.status(), 403);
    let page = resp.text().await.unwrap();
    assert!(page.contains("cozy.redis_url"), "{page}");
}

async fn a_session_cookie_wins_over_an_unusable_session_code(b: Backend) {
    // The mobile app's in-app browser may send a cozy-stack code this broker cannot spend
    // (no Redis) beside the user's live session cookie: cozy-stack ignores the code then.
    let c = spawn_cozy(b, |_| {}).await;
    let t = c.app.code_type(json!({})).await;
    let cozy_code = "&session_code=abcdefghijABCDEFGHIJ0123456789xy";
    let resp = c.start(&t, Some(&nested_cookie()), cozy_code).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    assert!(location(&resp).starts_with(&c.app.provider.uri()));
    // A code of the broker's that is spent or unknown is ignored the same way.
    let resp = c
        .start(&t, Some(&nested_cookie()), "&session_code=not-a-known-code")
        .await;
    assert_eq!(resp.status(), 303);
    // Without the cookie the code still decides.
    let resp = c.start(&t, None, cozy_code).await;
    assert_eq!(resp.status(), 403);
}

async fn the_brokers_own_session_code_still_works_on_the_instance_host(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let t = c.app.code_type(json!({})).await;
    // The admin API issues codes for instances it knows: cozy-stack's are found by domain.
    let code = c.app.session_code(&c.inst).await;
    let resp = c.start(&t, None, &format!("&session_code={code}")).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    // Spent: a second use is refused.
    let again = c.start(&t, None, &format!("&session_code={code}")).await;
    assert_eq!(again.status(), 403);
}

async fn manage_is_logged_in_then_says_budget_insight_is_not_run_here(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let path = "/accounts/google/0123/manage?state=s&slug=home";
    let anonymous = c
        .request(reqwest::Method::GET, DOMAIN, path)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);
    let resp = c
        .request(reqwest::Method::GET, DOMAIN, path)
        .header("cookie", nested_cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("Budget Insight"));
}

both_stores!(
    manage_is_logged_in_then_says_budget_insight_is_not_run_here,
    start_with_the_cozy_session_cookie_goes_to_the_provider,
    start_on_an_alias_host_finds_the_instance,
    a_new_alias_is_in_force_within_a_second,
    start_on_the_old_domain_answers_308_to_the_new_one,
    a_cozy_cookie_on_an_unknown_host_is_404,
    a_stray_sess_cookie_does_not_stop_a_broker_code_on_the_brokers_host,
    start_without_a_session_is_403,
    forged_cookies_are_refused,
    flat_subdomains_read_the_sess_prefix_cookie_only,
    a_session_unseen_for_thirty_days_is_refused,
    a_short_run_session_gets_a_new_short_run_session_cookie,
    without_redis_a_cozy_session_code_gets_a_page_that_says_so,
    a_session_cookie_wins_over_an_unusable_session_code,
    the_brokers_own_session_code_still_works_on_the_instance_host,
);

/// cozy-stack's Redis, started by `scripts/test.sh`.
fn redis_url() -> String {
    std::env::var("BROKER_TEST_REDIS_URL").expect(
        "BROKER_TEST_REDIS_URL is not set: run the tests with scripts/test.sh, which starts redis-server",
    )
}

/// Stores a session code as cozy-stack does: `SET <prefix>:sessioncode:<code> 1 EX 7d`.
async fn cozy_stack_issues_code(prefix: &str) -> String {
    let code: String = oauth_broker::domain::secret::random_hex(16);
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:sessioncode:{code}"))
        .arg("1")
        .arg("EX")
        .arg(7 * 24 * 3600)
        .query_async(&mut conn)
        .await
        .unwrap();
    code
}

async fn code_exists(prefix: &str, code: &str) -> bool {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("EXISTS")
        .arg(format!("{prefix}:sessioncode:{code}"))
        .query_async::<i64>(&mut conn)
        .await
        .unwrap()
        == 1
}

async fn a_cozy_session_code_works_once_through_redis(b: Backend) {
    let Some(url) = crate::common::needs::env("BROKER_TEST_REDIS_URL", "Redis") else {
        return;
    };
    let c = spawn_cozy(b, move |s| s.cozy.redis_url = Some(url)).await;
    let t = c.app.code_type(json!({})).await;
    let code = cozy_stack_issues_code(&c.inst.prefix).await;
    let resp = c.start(&t, None, &format!("&session_code={code}")).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    // Logged in by a code: the popup gets a short-run session, as from cozy-stack.
    assert!(set_cookies(&resp)
        .iter()
        .any(|s| s.starts_with("cozysessid=") && s.contains("Max-Age=300")));
    assert!(
        !code_exists(&c.inst.prefix, &code).await,
        "the code is spent"
    );
    let again = c.start(&t, None, &format!("&session_code={code}")).await;
    assert_eq!(again.status(), 403);
}

async fn a_code_is_spent_even_when_the_cookie_logs_in(b: Backend) {
    let Some(url) = crate::common::needs::env("BROKER_TEST_REDIS_URL", "Redis") else {
        return;
    };
    let c = spawn_cozy(b, move |s| s.cozy.redis_url = Some(url)).await;
    let t = c.app.code_type(json!({})).await;
    let code = cozy_stack_issues_code(&c.inst.prefix).await;
    let resp = c
        .start(&t, Some(&nested_cookie()), &format!("&session_code={code}"))
        .await;
    assert_eq!(resp.status(), 303);
    assert!(!code_exists(&c.inst.prefix, &code).await);
}

async fn redis_down_is_a_clear_503_not_a_500(b: Backend) {
    // Nothing listens on port 9 of the loopback.
    let c = spawn_cozy(b, |s| {
        s.cozy.redis_url = Some("redis://127.0.0.1:9/3".into())
    })
    .await;
    let t = c.app.code_type(json!({})).await;
    let resp = c
        .start(&t, None, "&session_code=abcdefghijABCDEFGHIJ0123456789xy")
        .await;
    assert_eq!(resp.status(), 503);
    let page = resp.text().await.unwrap();
    assert!(page.contains("Redis"), "{page}");
    // The cookie path does not need Redis.
    assert_eq!(c.start(&t, Some(&nested_cookie()), "").await.status(), 303);
}

both_stores!(
    a_cozy_session_code_works_once_through_redis,
    a_code_is_spent_even_when_the_cookie_logs_in,
    redis_down_is_a_clear_503_not_a_500,
);

/// A broker whose instance's context lets an `id_token` log `start` in, its identity
/// provider's key set on the played provider; the instance's `oidc_id` is `alice-sub`.
async fn spawn_oidc(b: Backend, jwks: ResponseTemplate) -> Cozy {
    let idp = wiremock::MockServer::start().await;
    Mock::given(path("/jwks"))
        .respond_with(jwks)
        .mount(&idp)
        .await;
    let url = format!("{}/jwks", idp.uri());
    let c = spawn_cozy(b, move |s| {
        s.cozy.oidc.insert(
            "default".into(),
            OidcContext {
                allow_oauth_token: true,
                id_token_jwk_url: url,
            },
        );
    })
    .await;
    c.update_instance(json!({"oidc_id": "alice-sub"})).await;
    // Kept alive with the broker.
    std::mem::forget(idp);
    c
}

fn claims(sub: &str, exp: i64) -> serde_json::Value {
    json!({"iss": "https://idp.example", "sub": sub, "aud": "partner-app", "exp": exp,
           "iat": chrono::Utc::now().timestamp()})
}

fn in_an_hour() -> i64 {
    chrono::Utc::now().timestamp() + 3600
}

/// cozy-stack's `checkIDToken`: an app embedding Harvest with `tokenParamName:
/// 'id_token'` starts a flow with the user's `id_token`; a short-run session is opened
/// as for a session code. On the main of 2026-12-07 this was a 403.
async fn an_id_token_of_the_instances_user_logs_start_in(b: Backend) {
    let c = spawn_oidc(b, ResponseTemplate::new(200).set_body_json(idp::jwks())).await;
    let t = c.app.code_type(json!({})).await;
    let token = idp::id_token(&claims("alice-sub", in_an_hour()), idp::IDP_KEY);
    let resp = c.start(&t, None, &format!("&id_token={token}")).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    assert!(
        set_cookies(&resp)
            .iter()
            .any(|c| c.starts_with("cozysessid=")),
        "a short-run session"
    );
}

/// What is not the instance's user's live token signed by the context's identity
/// provider is refused with a page: another subject, an expired token, another key,
/// an unsigned or HMAC token (algorithm confusion), garbage; and a context that does not
/// allow `id_token`s refuses a good one.
async fn a_forged_or_foreign_id_token_is_refused(b: Backend) {
    let c = spawn_oidc(b, ResponseTemplate::new(200).set_body_json(idp::jwks())).await;
    let t = c.app.code_type(json!({})).await;
    let unsigned = {
        use base64::Engine;
        let e = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.",
            e(json!({"alg": "none", "typ": "JWT"})),
            e(claims("alice-sub", in_an_hour()))
        )
    };
    let hmac = Cozy::sign(claims("alice-sub", in_an_hour()), idp::IDP_N.as_bytes());
    for (what, token) in [
        (
            "another subject",
            idp::id_token(&claims("bob-sub", in_an_hour()), idp::IDP_KEY),
        ),
        (
            "expired",
            idp::id_token(
                &claims("alice-sub", chrono::Utc::now().timestamp() - 60),
                idp::IDP_KEY,
            ),
        ),
        (
            "another key",
            idp::id_token(&claims("alice-sub", in_an_hour()), idp::OTHER_KEY),
        ),
        ("unsigned", unsigned),
        ("HMAC with the public modulus", hmac),
        ("garbage", "not.a.jwt".into()),
    ] {
        let resp = c.start(&t, None, &format!("&id_token={token}")).await;
        assert_eq!(resp.status(), 403, "{what}");
        assert!(set_cookies(&resp).is_empty(), "{what}: no session");
    }
    // A context without `allow_oauth_token`.
    let plain = spawn_cozy(b, |_| {}).await;
    plain.update_instance(json!({"oidc_id": "alice-sub"})).await;
    let t = plain.app.code_type(json!({})).await;
    let token = idp::id_token(&claims("alice-sub", in_an_hour()), idp::IDP_KEY);
    let resp = plain.start(&t, None, &format!("&id_token={token}")).await;
    assert_eq!(resp.status(), 403);
}

/// The identity provider's key set unreachable or garbage: a page that says so (502),
/// no session, and a second attempt works once it is back.
async fn an_id_token_whose_keys_cannot_be_read_gets_a_clear_page(b: Backend) {
    let c = spawn_oidc(b, ResponseTemplate::new(200).set_body_string("<html>oops")).await;
    let t = c.app.code_type(json!({})).await;
    let token = idp::id_token(&claims("alice-sub", in_an_hour()), idp::IDP_KEY);
    let resp = c.start(&t, None, &format!("&id_token={token}")).await;
    assert_eq!(resp.status(), 502);
    assert!(set_cookies(&resp).is_empty());
    let page = resp.text().await.unwrap();
    assert!(page.contains("provider"), "{page}");
}

both_stores!(
    an_id_token_of_the_instances_user_logs_start_in,
    a_forged_or_foreign_id_token_is_refused,
    an_id_token_whose_keys_cannot_be_read_gets_a_clear_page,
);
