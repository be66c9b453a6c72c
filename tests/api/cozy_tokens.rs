//! Beside cozy-stack, konnectors refresh with the JWT cozy-stack gave them, matched
//! against their permission set as cozy-stack's `Allow(GET, account)` (cozy-auth.md §4, §6).

use crate::both_stores;
use crate::common::cozy_stack::*;
use crate::helpers::*;
use oauth_broker::domain::Timestamp;
use serde_json::{json, Value};
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

/// A cozy-stack-made account of a new type on the mock provider, which refreshes it.
async fn account(c: &Cozy) -> (String, String) {
    let t = c.app.code_type(json!({})).await;
    let id = account_of(c, &t).await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "fresh-access-token", "refresh_token": "rt-2",
            "expires_in": 3600, "token_type": "Bearer"})))
        .mount(&c.app.provider)
        .await;
    (t, id)
}

/// An account of type `t` as cozy-stack writes it (tokens in clear under `oauth`).
async fn account_of(c: &Cozy, t: &str) -> String {
    c.app
        .seed_account(
            &c.inst,
            json!({"account_type": t, "name": "", "oauth": {"access_token": "old",
                   "refresh_token": "rt-1", "token_type": "Bearer",
                   "expires_at": "2023-11-14T22:00:00Z"},
                   "cozyMetadata": {"createdAt": go_time(IAT)}}),
        )
        .await
}

async fn cozy_refusal(resp: reqwest::Response, status: u16, error: &str) {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({ "error": error }));
}

async fn the_spec_konnector_token_refreshes_and_gets_the_account_as_json_api(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let (t, id) = account(&c).await;
    assert!(c.app.planned(&c.inst, &id).await.is_none());
    let resp = c.refresh(DOMAIN, &t, &id, KONN_TOKEN).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/vnd.api+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["type"], "io.cozy.accounts");
    assert_eq!(body["data"]["id"], id.as_str());
    assert_eq!(
        body["data"]["attributes"]["oauth"]["access_token"],
        "fresh-access-token"
    );
    assert_eq!(
        body["data"]["links"]["self"],
        format!("/data/io.cozy.accounts/{id}")
    );
    // cozy-stack made the account: the broker plans it on its first refresh.
    assert!(c.app.planned(&c.inst, &id).await.is_some());
}

async fn the_home_apps_token_is_refused_on_refresh(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let (t, id) = account(&c).await;
    let resp = c.refresh(DOMAIN, &t, &id, HOME_TOKEN).await;
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    cozy_refusal(resp, 400, "Invalid JWT token").await;
}

async fn a_konnector_token_past_thirty_minutes_is_expired(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let (t, id) = account(&c).await;
    c.clock.set(Timestamp::from_unix_secs(IAT + 30 * 60 + 1));
    cozy_refusal(
        c.refresh(DOMAIN, &t, &id, KONN_TOKEN).await,
        400,
        "Expired token",
    )
    .await;
}

async fn forged_and_foreign_tokens_are_refused(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let (t, id) = account(&c).await;
    let claims =
        |iss: &str, aud: Value| json!({"iss": iss, "sub": "google", "aud": aud, "iat": IAT});
    for (what, token) in [
        (
            "foreign issuer",
            Cozy::sign(claims("bob.cozy.example", json!(["konn"])), &session_key()),
        ),
        (
            "two audiences",
            Cozy::sign(claims(DOMAIN, json!(["app", "konn"])), &session_key()),
        ),
        (
            "key without 2:",
            Cozy::sign(claims(DOMAIN, json!(["konn"])), &session_secret()),
        ),
        (
            "konn signed with the OAuth secret",
            Cozy::sign(claims(DOMAIN, json!(["konn"])), &oauth_secret()),
        ),
        (
            "no iat",
            Cozy::sign(
                json!({"iss": DOMAIN, "sub": "google", "aud": ["konn"]}),
                &session_key(),
            ),
        ),
    ] {
        let resp = c.refresh(DOMAIN, &t, &id, &token).await;
        assert_eq!(resp.status(), 400, "{what}");
    }
    // Nothing reached the provider.
    assert!(c.app.provider.received_requests().await.unwrap().is_empty());
}

async fn a_konnector_without_permission_on_accounts_is_403(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let (t, id) = account(&c).await;
    c.write_permission(
        "konnector",
        "photos",
        json!({"files": {"type": "io.cozy.files"}, "contacts": {"type": "io.cozy.contacts"}}),
        None,
    )
    .await;
    let resp = c
        .refresh(DOMAIN, &t, &id, &Cozy::konnector_token("photos"))
        .await;
    cozy_refusal(resp, 403, "Forbidden").await;
    // A konnector with no permission set at all: not found, as cozy-stack.
    let resp = c
        .refresh(DOMAIN, &t, &id, &Cozy::konnector_token("ghost"))
        .await;
    assert_eq!(resp.status(), 404);
}

async fn a_permission_restricted_by_account_type_covers_that_type_only(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let (t, id) = account(&c).await;
    let other = c.app.code_type(json!({})).await;
    let other_id = account_of(&c, &other).await;
    c.write_permission(
        "konnector",
        "narrow",
        json!({"accounts": {"type": "io.cozy.accounts", "verbs": ["GET"],
                            "selector": "account_type", "values": [t]}}),
        None,
    )
    .await;
    let token = Cozy::konnector_token("narrow");
    assert_eq!(c.refresh(DOMAIN, &t, &id, &token).await.status(), 200);
    cozy_refusal(
        c.refresh(DOMAIN, &other, &other_id, &token).await,
        403,
        "Forbidden",
    )
    .await;
    // By id, too.
    c.write_permission(
        "konnector",
        "one",
        json!({"accounts": {"type": "io.cozy.accounts", "values": [other_id]}}),
        None,
    )
    .await;
    let one = Cozy::konnector_token("one");
    assert_eq!(
        c.refresh(DOMAIN, &other, &other_id, &one).await.status(),
        200
    );
    assert_eq!(c.refresh(DOMAIN, &t, &id, &one).await.status(), 403);
}

async fn an_expired_permission_set_is_refused(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let (t, id) = account(&c).await;
    c.write_permission(
        "konnector",
        "lapsed",
        json!({"accounts": {"type": "io.cozy.accounts"}}),
        Some("2023-11-14T22:13:00Z"),
    )
    .await;
    let resp = c
        .refresh(DOMAIN, &t, &id, &Cozy::konnector_token("lapsed"))
        .await;
    cozy_refusal(resp, 400, "Expired token").await;
}

async fn a_service_token_and_an_oauth_clients_token_refresh_too(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let (t, id) = account(&c).await;
    c.write_permission(
        "app",
        "banks",
        json!({"a": {"type": "io.cozy.accounts", "verbs": ["ALL"]}}),
        None,
    )
    .await;
    let service = Cozy::sign(
        json!({"iss": DOMAIN, "sub": "banks", "aud": ["app"], "iat": IAT}),
        &session_key(),
    );
    assert_eq!(c.refresh(DOMAIN, &t, &id, &service).await.status(), 200);
    // An OAuth client's access token, with its scope in the token.
    put(
        &c.app,
        &c.db("io.cozy.oauth.clients"),
        json!({"_id": "client-1",
        "client_name": "dev", "redirect_uris": ["http://localhost/"]}),
    )
    .await;
    let access = |sub: &str, scope: &str| {
        Cozy::sign(
            json!({"iss": DOMAIN, "sub": sub, "aud": ["access"], "iat": IAT, "scope": scope}),
            &oauth_secret(),
        )
    };
    assert_eq!(
        c.refresh(DOMAIN, &t, &id, &access("client-1", "io.cozy.accounts:GET"))
            .await
            .status(),
        200
    );
    assert_eq!(
        c.refresh(DOMAIN, &t, &id, &access("client-1", "io.cozy.files"))
            .await
            .status(),
        403
    );
    // `*` is the flagship app's only; a deleted client's tokens are dead.
    assert_eq!(
        c.refresh(DOMAIN, &t, &id, &access("client-1", "*"))
            .await
            .status(),
        400
    );
    assert_eq!(
        c.refresh(DOMAIN, &t, &id, &access("gone", "io.cozy.accounts"))
            .await
            .status(),
        400
    );
}

async fn tokens_on_unknown_and_moved_hosts(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let (t, id) = account(&c).await;
    assert_eq!(
        c.refresh("bob.cozy.example", &t, &id, KONN_TOKEN)
            .await
            .status(),
        404
    );
    c.update_instance(json!({"old_domain": "alice.oldcozy.example"}))
        .await;
    let resp = c
        .refresh("alice.oldcozy.example", &t, &id, KONN_TOKEN)
        .await;
    assert_eq!(resp.status(), 308);
    assert_eq!(
        location(&resp),
        format!("https://{DOMAIN}/accounts/{t}/{id}/refresh")
    );
    // A token issued before the move names the old domain: still good on the new one.
    let before_move = Cozy::sign(
        json!({"iss": "alice.oldcozy.example", "sub": "google", "aud": ["konn"], "iat": IAT}),
        &session_key(),
    );
    assert_eq!(c.refresh(DOMAIN, &t, &id, &before_move).await.status(), 200);
}

async fn a_valid_token_for_a_missing_account_is_404(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let (t, _) = account(&c).await;
    assert_eq!(
        c.refresh(DOMAIN, &t, "no-such-account", KONN_TOKEN)
            .await
            .status(),
        404
    );
}

async fn status_and_delete_follow_the_same_rules(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let (t, id) = account(&c).await;
    c.write_permission(
        "konnector",
        "reader",
        json!({"accounts": {"type": "io.cozy.accounts", "verbs": ["GET"]}}),
        None,
    )
    .await;
    let reader = Cozy::konnector_token("reader");
    let status = c
        .request(
            reqwest::Method::GET,
            DOMAIN,
            &format!("/accounts/{t}/{id}/status"),
        )
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    let delete = |token: String| {
        c.request(
            reqwest::Method::DELETE,
            DOMAIN,
            &format!("/accounts/{t}/{id}"),
        )
        .bearer_auth(token)
        .send()
    };
    // GET only: no delete.
    assert_eq!(delete(reader).await.unwrap().status(), 403);
    assert_eq!(delete(KONN_TOKEN.to_owned()).await.unwrap().status(), 200);
}

async fn the_brokers_api_tokens_keep_working_beside_cozy_tokens(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let (t, id) = account(&c).await;
    let token = c.app.api_token(&c.inst).await;
    assert_eq!(c.refresh(DOMAIN, &t, &id, &token).await.status(), 200);
    // On the broker's own host too (an installation without cozy-stack).
    assert_eq!(c.app.refresh(&t, &id, Some(&token)).await.status(), 200);
    // Another instance's token is no good on this instance's host.
    let other = c.app.new_instance(None).await;
    let foreign = c.app.api_token(&other).await;
    assert_eq!(c.refresh(DOMAIN, &t, &id, &foreign).await.status(), 403);
}

async fn a_token_made_under_an_old_security_stamp_is_refused(b: Backend) {
    let c = spawn_cozy(b, |_| {}).await;
    let (t, id) = account(&c).await;
    put(
        &c.app,
        &c.db("io.cozy.settings"),
        json!({"_id": "io.cozy.settings.bitwarden", "security_stamp": "stamp-2"}),
    )
    .await;
    let with_stamp = |stamp: &str| {
        Cozy::sign(
            json!({"iss": DOMAIN, "sub": "google", "aud": ["konn"], "iat": IAT, "stamp": stamp}),
            &session_key(),
        )
    };
    assert_eq!(
        c.refresh(DOMAIN, &t, &id, &with_stamp("stamp-2"))
            .await
            .status(),
        200
    );
    cozy_refusal(
        c.refresh(DOMAIN, &t, &id, &with_stamp("stamp-1")).await,
        400,
        "Invalid JWT token",
    )
    .await;
}

/// The store cut while a konnector refreshes with its JWT: 503 (a retry helps), never a
/// 400 that would tell it its token is bad, nor a 500; back when the store is.
#[tokio::test]
async fn store_down_answers_503_to_a_cozy_token_and_recovers() {
    if !Backend::Couch.available() {
        return;
    }
    let Some(relay) = CouchRelay::start().await else {
        return;
    };
    let url = relay.url.clone();
    let c = spawn_cozy(Backend::Couch, move |s| {
        s.couchdb.url = Some(url);
        s.couchdb.timeout_secs = 2;
    })
    .await;
    let (t, id) = account(&c).await;
    relay.set_down(true).await;
    let resp = c.refresh(DOMAIN, &t, &id, KONN_TOKEN).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "store_unavailable");
    relay.set_down(false).await;
    assert_eq!(c.refresh(DOMAIN, &t, &id, KONN_TOKEN).await.status(), 200);
}

both_stores!(
    a_token_made_under_an_old_security_stamp_is_refused,
    the_spec_konnector_token_refreshes_and_gets_the_account_as_json_api,
    the_home_apps_token_is_refused_on_refresh,
    a_konnector_token_past_thirty_minutes_is_expired,
    forged_and_foreign_tokens_are_refused,
    a_konnector_without_permission_on_accounts_is_403,
    a_permission_restricted_by_account_type_covers_that_type_only,
    an_expired_permission_set_is_refused,
    a_service_token_and_an_oauth_clients_token_refresh_too,
    tokens_on_unknown_and_moved_hosts,
    a_valid_token_for_a_missing_account_is_404,
    status_and_delete_follow_the_same_rules,
    the_brokers_api_tokens_keep_working_beside_cozy_tokens,
);
