//! Throughput of the broker's hot paths, against a broker on the embedded store and a
//! provider played by wiremock, all on loopback. Run: `cargo bench --bench flow`.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

#[path = "../tests/common/mod.rs"]
mod common;
use common::helpers;

use criterion::{criterion_group, criterion_main, Criterion};
use helpers::*;
use oauth_broker::domain::AccountType;
use oauth_broker::oauth::authorize::{authorization_url, AuthorizeParams};
use oauth_broker::oauth::token_reply::{grant_from_members, parse_members};
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

fn pure(c: &mut Criterion) {
    let at =
        AccountType::from_document(&json!({"_id": "google", "grant_mode": "authorization_code",
        "client_id": "cid", "auth_endpoint": "https://accounts.example/o/oauth2/v2/auth",
        "extras": {"access_type": "offline", "prompt": "consent"}}))
        .unwrap();
    let params = AuthorizeParams {
        scope: "email profile",
        redirect_uri: "https://b.example/accounts/google/redirect",
        state: "0123456789abcdef",
        code_challenge: None,
        login_hint: "",
    };
    c.bench_function("authorization_url", |b| {
        b.iter(|| authorization_url(&at, &params))
    });
    let body = br#"{"access_token":"ya29.a0","expires_in":3599,"refresh_token":"1//0g","scope":"email","token_type":"Bearer","id_token":"eyJ"}"#;
    c.bench_function("parse_token_reply", |b| {
        b.iter(|| {
            grant_from_members(
                parse_members(Some("application/json"), body).unwrap(),
                chrono::Utc::now(),
            )
        })
    });
}

fn http(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (app, inst, t, token) = rt.block_on(async {
        let app = spawn_app(Backend::Embedded).await;
        let inst = app.new_instance(None).await;
        let t = app.code_type(json!({})).await;
        let token = app.api_token(&inst).await;
        Mock::given(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "at", "refresh_token": "rt", "expires_in": 3600, "token_type": "Bearer"})))
            .mount(&app.provider)
            .await;
        (app, inst, t, token)
    });
    let start_url = format!(
        "{}/accounts/{t}/start?state=s&nonce=1&scope=a%20b",
        app.address
    );

    let mut group = c.benchmark_group("http");
    group.sample_size(30);
    group.bench_function("start", |b| {
        b.to_async(&rt).iter(|| async {
            let resp = app
                .http
                .get(&start_url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 303);
        })
    });
    group.bench_function("start_and_redirect", |b| {
        b.to_async(&rt).iter(|| async {
            let resp = app
                .http
                .get(&start_url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            app.keep_binding_cookie(&resp);
            let state = TestApp::state_in(&location(&resp));
            let done = app.redirect(&t, &[("code", "C"), ("state", &state)]).await;
            assert!(location(&done).contains("account="));
        })
    });
    let id = rt.block_on(app.seed_account(
        &inst,
        json!({"account_type": t, "name": "", "oauth": {"refresh_token": "rt"}}),
    ));
    group.bench_function("refresh", |b| {
        b.to_async(&rt).iter(|| async {
            assert_eq!(app.refresh(&t, &id, Some(&token)).await.status(), 200);
        })
    });
    group.finish();
}

criterion_group!(benches, pure, http);
criterion_main!(benches);
