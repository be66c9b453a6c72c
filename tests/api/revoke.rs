//! `DELETE /accounts/{type}/{id}`: RFC 7009 revocation, then deletion.

use crate::both_stores;
use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, ResponseTemplate};

async fn deleting_an_account_revokes_its_refresh_token_first(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app
        .code_type(json!({"token_mode": "basic", "revocation_endpoint": format!("{}/revoke", app.provider.uri())}))
        .await;
    let id = app
        .seed_account(&inst, json!({"account_type": t, "name": "", "oauth": {"access_token": "at", "refresh_token": "rt"}}))
        .await;
    let keep = app
        .seed_account(
            &inst,
            json!({"account_type": t, "name": "", "oauth": {"access_token": "other"}}),
        )
        .await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .and(header(
            "authorization",
            "Basic dGhlLWNsaWVudC1pZDp0aGUtY2xpZW50LXNlY3JldA==",
        ))
        .and(body_string("token=rt&token_type_hint=refresh_token"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&app.provider)
        .await;
    let url = format!("{}/accounts/{t}/{id}", app.address);
    assert_eq!(app.http.delete(&url).send().await.unwrap().status(), 401);
    let other = app.new_instance(None).await;
    let other_token = app.api_token(&other).await;
    assert_eq!(
        app.http
            .delete(&url)
            .bearer_auth(&other_token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let resp = app
        .http
        .delete(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["revoked"], true);
    let left: Vec<Value> = app.accounts(&inst).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["_id"], keep.as_str());
    assert_eq!(
        app.http
            .delete(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

async fn a_failed_revocation_keeps_the_account(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app
        .code_type(json!({"revocation_endpoint": format!("{}/revoke", app.provider.uri())}))
        .await;
    let id = app
        .seed_account(
            &inst,
            json!({"account_type": t, "name": "", "oauth": {"access_token": "at"}}),
        )
        .await;
    Mock::given(path("/revoke"))
        .and(body_string("client_id=the-client-id&client_secret=the-client-secret&token=at&token_type_hint=access_token"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&app.provider)
        .await;
    let resp = app
        .http
        .delete(format!("{}/accounts/{t}/{id}", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(app.account(&inst, &id).await["oauth"]["access_token"], "at");
}

async fn without_a_revocation_endpoint_the_account_is_just_deleted(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    let id = app
        .seed_account(
            &inst,
            json!({"account_type": t, "name": "", "oauth": {"refresh_token": "r"}}),
        )
        .await;
    let resp = app
        .http
        .delete(format!("{}/accounts/{t}/{id}", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["revoked"], false);
    assert!(app.accounts(&inst).await.is_empty());
}

both_stores!(
    deleting_an_account_revokes_its_refresh_token_first,
    a_failed_revocation_keeps_the_account,
    without_a_revocation_endpoint_the_account_is_just_deleted,
);
