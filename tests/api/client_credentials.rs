//! `client_credentials` account types: tokens from the type's own credentials, renewed
//! before they expire (there is no refresh token).

use crate::both_stores;
use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::matchers::{body_string, method, path};
use wiremock::{Mock, ResponseTemplate};

async fn a_client_credentials_account_is_created_and_renewed(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({"grant_mode": "client_credentials", "scope": "read write", "auth_endpoint": null})).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string("client_id=the-client-id&client_secret=the-client-secret&grant_type=client_credentials&scope=read+write"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "cc-1", "expires_in": 3600, "token_type": "Bearer"})))
        .up_to_n_times(1)
        .expect(1)
        .with_priority(1)
        .mount(&app.provider)
        .await;
    let resp = app
        .http
        .post(format!("{}/accounts/{t}", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["content-type"], "application/vnd.api+json");
    let body: Value = resp.json().await.unwrap();
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let doc = app.account(&inst, &id).await;
    assert_eq!(doc["oauth"]["access_token"], "cc-1");
    assert!(doc["oauth"].get("refresh_token").is_none());
    let (due, _) = app.planned(&inst, &id).await.expect("renewal planned");
    let now = chrono::Utc::now().timestamp();
    assert!((now + 3000 - 5..=now + 3000 + 5).contains(&due));
    // Renewal asks again with the credentials.
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "cc-2", "expires_in": 3600})),
        )
        .expect(1)
        .with_priority(2)
        .mount(&app.provider)
        .await;
    let renewed = app.refresh(&t, &id, Some(&token)).await;
    assert_eq!(renewed.status(), 200);
    assert_eq!(
        app.account(&inst, &id).await["oauth"]["access_token"],
        "cc-2"
    );
}

async fn only_client_credentials_types_create_accounts_this_way(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    let resp = app
        .http
        .post(format!("{}/accounts/{t}", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["errors"][0]["code"],
        "not_client_credentials"
    );
    let unauthenticated = app
        .http
        .post(format!("{}/accounts/{t}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let code = app.session_code(&inst).await;
    let cc = app
        .code_type(json!({"grant_mode": "client_credentials"}))
        .await;
    assert_eq!(
        app.start_raw(&cc, &format!("session_code={code}"))
            .await
            .status(),
        400,
        "no authorization step"
    );
    assert!(app.accounts(&inst).await.is_empty());
}

both_stores!(
    a_client_credentials_account_is_created_and_renewed,
    only_client_credentials_types_create_accounts_this_way,
);

async fn a_client_credentials_provider_down_or_refusing_creates_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let down = app
        .code_type(json!({"grant_mode": "client_credentials", "token_endpoint": "http://127.0.0.1:9/token"}))
        .await;
    let resp = app
        .http
        .post(format!("{}/accounts/{down}", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let refused = app
        .code_type(json!({"grant_mode": "client_credentials"}))
        .await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .mount(&app.provider)
        .await;
    let resp = app
        .http
        .post(format!("{}/accounts/{refused}", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["errors"][0]["code"],
        "provider_error"
    );
    assert!(app.accounts(&inst).await.is_empty());
}

both_stores!(a_client_credentials_provider_down_or_refusing_creates_nothing);
