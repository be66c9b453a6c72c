//! The whole Home app path beside cozy-stack: the popup starts on the instance host with
//! the session cookie, the provider sends the browser to the callback host with only the
//! cookies a browser sends there, the popup lands on the Home app, and the konnector
//! refreshes with its JWT (cozy-auth.md §5, §6).

use crate::both_stores;
use crate::common::cozy_stack::*;
use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

/// The cookies a browser holds after `resp`, as (name=value, Domain) pairs.
fn cookies_set(resp: &reqwest::Response) -> Vec<(String, String)> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap().trim().to_owned();
            let domain = v
                .split(';')
                .find_map(|a| a.trim().strip_prefix("Domain="))
                .unwrap_or_default()
                .trim_start_matches('.')
                .to_owned();
            (pair, domain)
        })
        .collect()
}

/// What a browser sends to `host` of the cookies it holds (domain match only).
fn sent_to(host: &str, jar: &[(String, String)]) -> String {
    jar.iter()
        .filter(|(_, d)| !d.is_empty() && (host == d || host.ends_with(&format!(".{d}"))))
        .map(|(p, _)| p.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn the_home_app_popup_connects_an_account_the_konnector_then_refreshes(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let t = c.app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "first-access-token", "refresh_token": "rt-1",
            "expires_in": 3600, "token_type": "Bearer"})))
        .up_to_n_times(1)
        .mount(&c.app.provider)
        .await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "refreshed-access-token", "expires_in": 3600,
            "token_type": "Bearer"})))
        .mount(&c.app.provider)
        .await;

    // 1. The popup, on the instance host, with the session cookie only.
    let client_state = "0b7a3e2c-9d41-4f7e-8a7b-3c2d1e0f9a8b";
    let resp = c
        .request(
            reqwest::Method::GET,
            DOMAIN,
            &format!("/accounts/{t}/start?state={client_state}&nonce=1700000000123&scope=contacts+email&slug=home"),
        )
        .header("cookie", format!("cozysessid={NESTED_COOKIE}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let provider_url = location(&resp);
    let mut jar = cookies_set(&resp);
    jar.push((format!("cozysessid={NESTED_COOKIE}"), DOMAIN.to_owned()));
    let state = TestApp::state_in(&provider_url);
    assert_eq!(query_of(&provider_url)["scope"], "contacts email");

    // 2. The provider sends the browser to the callback host: the session cookie of the
    // instance host does not go there, the flow binding cookie (parent domain) does.
    let callback = "oauthcallback.cozy.example";
    let cookies = sent_to(callback, &jar);
    assert!(!cookies.contains("cozysessid"), "{cookies}");
    assert!(cookies.contains("oauth_broker_flow_"), "{cookies}");
    let redirect = |cookies: String| {
        c.request(
            reqwest::Method::GET,
            callback,
            &format!("/accounts/{t}/redirect?code=the-code&state={state}"),
        )
        .header("cookie", cookies)
        .send()
    };
    let resp = redirect(cookies.clone()).await.unwrap();
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());

    // 3. The popup lands on the Home app, logged in by the instance's session cookie.
    let home = location(&resp);
    assert!(
        home.starts_with("https://home.alice.cozy.example/?account="),
        "{home}"
    );
    let q = query_of(&home);
    assert_eq!(q["state"], client_state);
    let account = q["account"].clone();

    // The state is single use.
    assert_ne!(redirect(cookies).await.unwrap().status(), 303);

    // 4. The konnector refreshes with its COZY_CREDENTIALS and reads the token.
    let resp = c.refresh(DOMAIN, &t, &account, KONN_TOKEN).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["data"]["attributes"]["oauth"]["access_token"],
        "refreshed-access-token"
    );
}

async fn a_callback_without_the_browsers_binding_cookie_never_connects_silently(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let t = c.app.code_type(json!({})).await;
    let resp = c
        .start(&t, Some(&format!("cozysessid={NESTED_COOKIE}")), "")
        .await;
    assert_eq!(resp.status(), 303);
    let state = TestApp::state_in(&location(&resp));
    // Another browser (the victim's, lured to the attacker's provider URL) has no cookie:
    // sent on to the attacker's instance host, where it has none either, it is asked to
    // confirm a connection that names that instance. Nothing is written meanwhile.
    let query = format!("code=the-code&state={state}");
    let resp = c
        .request(
            reqwest::Method::GET,
            "oauthcallback.cozy.example",
            &format!("/accounts/{t}/redirect?{query}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        location(&resp),
        format!("https://{DOMAIN}/accounts/{t}/redirect?{query}")
    );
    let resp = c
        .request(
            reqwest::Method::GET,
            DOMAIN,
            &format!("/accounts/{t}/redirect?{query}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains(&format!("Connect {t} to {DOMAIN}?")),
        "{page}"
    );
    assert!(c.app.accounts(&c.inst).await.is_empty());
}

both_stores!(
    the_home_app_popup_connects_an_account_the_konnector_then_refreshes,
    a_callback_without_the_browsers_binding_cookie_never_connects_silently,
);
