//! No client secret, token, code, state or session code appears in any log line, at any
//! level, on the success path or the failure paths. Its own test binary, because it
//! installs a process-wide TRACE subscriber that captures every line.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

mod common;
use common::{helpers, registering_provider};

use helpers::*;
use oauth_broker::domain::secret::random_hex;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_writer(move || Capture(sink.clone()))
            .with_ansi(false)
            .init();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn secrets_stay_out_of_the_logs(b: Backend) {
    let logs = captured();
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let client_secret = format!("cs-{}", random_hex(8));
    let access_token = format!("at-{}", random_hex(8));
    let refresh_token = format!("rt-{}", random_hex(8));
    let rotated = format!("rt2-{}", random_hex(8));
    let code = format!("code-{}", random_hex(8));
    let t = app
        .code_type(json!({"client_secret": client_secret, "token_mode": "get", "secret": "konnector-secret-value", "pkce": true}))
        .await;
    let api_token = app.api_token(&inst).await;

    // Success: start, exchange (GET mode puts the secret in the URL), refresh.
    let session_code = app.session_code(&inst).await;
    let url = location(
        &app.start_raw(&t, &format!("state=cs&session_code={session_code}"))
            .await,
    );
    let state = TestApp::state_in(&url);
    let verifier = Arc::new(Mutex::new(String::new()));
    let seen = verifier.clone();
    Mock::given(path("/token"))
        .and(wiremock::matchers::query_param(
            "grant_type",
            "authorization_code",
        ))
        .and(move |r: &wiremock::Request| {
            let v = r
                .url
                .query_pairs()
                .find(|(k, _)| k == "code_verifier")
                .map(|(_, v)| v.into_owned());
            *seen.lock().unwrap() = v.unwrap_or_default();
            true
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": access_token, "refresh_token": refresh_token, "expires_in": 60})))
        .mount(&app.provider)
        .await;
    Mock::given(path("/token"))
        .and(wiremock::matchers::query_param(
            "grant_type",
            "refresh_token",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "at-refreshed", "refresh_token": rotated})),
        )
        .mount(&app.provider)
        .await;
    let loc = location(
        &app.redirect(&t, &[("code", &code), ("state", &state)])
            .await,
    );
    let id = query_of(&loc)["account"].clone();
    assert_eq!(app.refresh(&t, &id, Some(&api_token)).await.status(), 200);

    // Failures: replayed state, a provider echoing the request back, a dead refresh token.
    assert_eq!(
        app.redirect(&t, &[("code", &code), ("state", &state)])
            .await
            .status(),
        400
    );
    app.provider.reset().await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_string(format!("bad request: {client_secret} {code} {rotated}")),
        )
        .mount(&app.provider)
        .await;
    let session_code2 = app.session_code(&inst).await;
    let url = location(
        &app.start_raw(&t, &format!("session_code={session_code2}"))
            .await,
    );
    let state2 = TestApp::state_in(&url);
    // A failure after consent: a page, whose link back tells the app.
    let failed = app_return(
        app.redirect(&t, &[("code", &code), ("state", &state2)])
            .await,
    )
    .await;
    assert!(failed.contains("error=server_error"));
    // Forced: the tokens are seconds old, and a plain refresh would answer them as they are.
    assert_eq!(app.refresh_forced(&t, &id, &api_token).await.status(), 502);
    let _ = app
        .admin(reqwest::Method::GET, &format!("/admin/account_types/{t}"))
        .send()
        .await
        .unwrap();

    // Registration: register, exchange, user info, introspection, rotate, unregister.
    let registering = registering_provider::RegisteringProvider::mount(&app.provider).await;
    let base = app.provider.uri();
    let r = format!("reg{}", random_hex(4));
    app.put_account_type(json!({"_id": r, "grant_mode": "authorization_code",
        "auth_endpoint": format!("{base}/auth/authorize"), "token_endpoint": format!("{base}/auth/access_token"),
        "registration_endpoint": format!("{base}/auth/register"), "userinfo_endpoint": format!("{base}/auth/userinfo"),
        "introspection_endpoint": format!("{base}/auth/introspect"),
        "client_metadata": {"client_name": "logs", "software_id": "logs"}}))
    .await;
    let session_code3 = app.session_code(&inst).await;
    let url = location(
        &app.start_raw(&r, &format!("session_code={session_code3}"))
            .await,
    );
    let state3 = TestApp::state_in(&url);
    let loc = location(
        &app.redirect(&r, &[("code", "the-code"), ("state", &state3)])
            .await,
    );
    let rid = query_of(&loc)["account"].clone();
    let status = app
        .http
        .get(format!("{}/accounts/{r}/{rid}/status", app.address))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    let rotate = app
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/registered_clients/{r}"),
        )
        .json(&json!({"reset_secret": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(rotate.status(), 200);
    let gone = app
        .admin(
            reqwest::Method::DELETE,
            &format!("/admin/registered_clients/{r}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    assert_eq!(
        registering.with(|s| s.deletions),
        1,
        "{:?}",
        registering.with(|s| s.complaints.clone())
    );

    let verifier = verifier.lock().unwrap().clone();
    assert_eq!(verifier.len(), 43, "the provider saw a PKCE verifier");
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        text.contains("flow completed") && text.contains("account refreshed"),
        "the capture works"
    );
    for secret in [
        client_secret.as_str(),
        "konnector-secret-value",
        &access_token,
        &refresh_token,
        &rotated,
        &code,
        &state,
        &state2,
        &session_code,
        &session_code2,
        &api_token,
        &verifier,
        ADMIN_TOKEN,
        &state3,
        &session_code3,
        "secret-1-a",
        "rat-1",
        "access-for-client-1",
    ] {
        if let Some(at) = text.find(secret) {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!(
                "secret found in a log line: {}",
                &text[line_start..line_end]
            );
        }
    }
}

#[tokio::test]
async fn secrets_stay_out_of_the_logs_on_couchdb() {
    if !Backend::Couch.available() {
        return;
    }
    secrets_stay_out_of_the_logs(Backend::Couch).await
}

#[tokio::test]
async fn secrets_stay_out_of_the_logs_on_the_embedded_store() {
    secrets_stay_out_of_the_logs(Backend::Embedded).await
}

/// Beside cozy-stack: session cookies, the session created for the popup, JWTs (accepted
/// and refused), session codes and the instance's secrets never reach a log line.
async fn cozy_credentials_stay_out_of_the_logs(b: Backend) {
    use base64::Engine;
    use common::cozy_stack::*;
    let logs = captured();
    let redis = std::env::var("BROKER_TEST_REDIS_URL").ok();
    let c = spawn_cozy(b, move |s| s.cozy.redis_url = redis).await;
    let t = c.app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "cozy-at-7f3e", "refresh_token": "cozy-rt-7f3e", "expires_in": 60})))
        .mount(&c.app.provider)
        .await;
    c.write_session("short-one", IAT, true).await;
    let short =
        oauth_broker::domain::cozy::cookie::encode("cozysessid", &session_key(), "short-one", IAT);
    let resp = c.start(&t, Some(&format!("cozysessid={short}")), "").await;
    assert_eq!(resp.status(), 303);
    let new_session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.strip_prefix("cozysessid="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .next()
        .expect("a short-run session cookie");
    assert_eq!(
        c.start(&t, Some(&format!("cozysessid={NESTED_COOKIE}")), "")
            .await
            .status(),
        303
    );
    let code = "abcdefghijABCDEFGHIJ0123456789xy";
    let _ = c.start(&t, None, &format!("&session_code={code}")).await;
    let id = c
        .app
        .seed_account(&c.inst, json!({"account_type": t, "oauth": {"access_token": "a", "refresh_token": "cozy-rt-0"}}))
        .await;
    assert_eq!(c.refresh(DOMAIN, &t, &id, KONN_TOKEN).await.status(), 200);
    assert_eq!(c.refresh(DOMAIN, &t, &id, HOME_TOKEN).await.status(), 400);
    let forged = Cozy::sign(
        json!({"iss": DOMAIN, "sub": "google", "aud": ["konn"], "iat": IAT}),
        &oauth_secret(),
    );
    assert_eq!(c.refresh(DOMAIN, &t, &id, &forged).await.status(), 400);

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let session_secret = base64::engine::general_purpose::STANDARD.encode(session_secret());
    for secret in [
        NESTED_COOKIE,
        short.as_str(),
        new_session.as_str(),
        KONN_TOKEN,
        HOME_TOKEN,
        forged.as_str(),
        code,
        session_secret.as_str(),
        "cozy-at-7f3e",
        "cozy-rt-7f3e",
    ] {
        assert!(
            !text.contains(secret),
            "a cozy credential reached the logs: {secret}"
        );
    }
}

#[tokio::test]
async fn cozy_credentials_stay_out_of_the_logs_on_couchdb() {
    if !Backend::Couch.available() {
        return;
    }
    cozy_credentials_stay_out_of_the_logs(Backend::Couch).await
}

#[tokio::test]
async fn cozy_credentials_stay_out_of_the_logs_on_the_embedded_store() {
    cozy_credentials_stay_out_of_the_logs(Backend::Embedded).await
}
