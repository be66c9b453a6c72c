//! An account has several writers: when one of them saves an older copy over the
//! account after a background refresh rotated its refresh token (Harvest's conflict
//! merge, a konnector saving its account with the `oauth` it read), the broker puts the
//! newest grant back before it refreshes, instead of spending the revoked token and
//! losing the user's grant. The provider here revokes every refresh token it replaced.

use crate::both_stores;
use crate::common::cozy_stack::*;
use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, path};
use wiremock::{Mock, ResponseTemplate};

/// A provider that rotates `rt-1` → `rt-2` → `rt-3`, once each, and answers
/// `invalid_grant` to any refresh token it already replaced.
async fn revoking_provider(server: &wiremock::MockServer) {
    for (used, next, at) in [("rt-1", "rt-2", "at-2"), ("rt-2", "rt-3", "at-3")] {
        Mock::given(path("/token"))
            .and(body_string_contains(format!("refresh_token={used}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": at, "refresh_token": next, "expires_in": 3600,
                "token_type": "Bearer"})))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(server)
            .await;
    }
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .with_priority(2)
        .mount(server)
        .await;
}

/// An account of type `t` holding the provider's first grant (`at-1`, `rt-1`).
async fn first_grant(c: &Cozy, t: &str) -> String {
    c.app
        .seed_account(
            &c.inst,
            json!({"account_type": t, "oauth": {"access_token": "at-1",
                   "refresh_token": "rt-1", "token_type": "Bearer",
                   "expires_at": "2023-11-14T22:00:00Z"}}),
        )
        .await
}

/// A konnector (or any writer of the user's database) saves the account with the
/// `oauth` it read before the broker's refresh: the next refresh puts the newest grant
/// back and succeeds; it is counted and audited. On the main of 2026-12-07 the refresh
/// spent the revoked token and answered 401 `oauth_refresh_invalid_token`.
async fn an_older_copy_saved_over_the_account_does_not_cost_the_grant(b: Backend) {
    let c = spawn_cozy(b, |s| s.refresh.fresh_window_secs = 0).await;
    let t = c.app.code_type(json!({})).await;
    revoking_provider(&c.app.provider).await;
    let id = first_grant(&c, &t).await;
    let stale = c.app.account(&c.inst, &id).await;
    let first = c.refresh(DOMAIN, &t, &id, KONN_TOKEN).await;
    assert_eq!(first.status(), 200);
    // The other writer saves its copy, with the `oauth` it read, over the new revision.
    let mut older = c.app.account(&c.inst, &id).await;
    older["oauth"] = stale["oauth"].clone();
    older["konnector_state"] = json!({"last_run": "ok"});
    c.app
        .store
        .put(&c.inst.accounts_db(), &older)
        .await
        .unwrap();

    let second = c.refresh(DOMAIN, &t, &id, KONN_TOKEN).await;
    assert_eq!(second.status(), 200, "{}", second.text().await.unwrap());
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["data"]["attributes"]["oauth"]["access_token"], "at-3");
    let stored = c.app.account(&c.inst, &id).await;
    assert_eq!(stored["oauth"]["refresh_token"], "rt-3");
    assert_eq!(
        stored["konnector_state"]["last_run"], "ok",
        "the other writer's fields stay"
    );
    let metrics = c.app.metrics_text().await;
    assert!(
        metrics.contains(&format!(
            "broker_grants_restored_total{{account_type=\"{t}\"}} 1"
        )),
        "{metrics}"
    );
    let audit: Value = c
        .app
        .admin(reqwest::Method::GET, "/admin/audit?since=3650d")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        audit.to_string().contains("account.grant_restored"),
        "{audit}"
    );
    // The grant kept aside goes with its account.
    let key = format!("{DOMAIN}/{id}");
    let kept = c.app.store.get("broker/newest_grants", &key).await.unwrap();
    assert!(kept.is_some());
    let deleted = c
        .request(
            reqwest::Method::DELETE,
            DOMAIN,
            &format!("/accounts/{t}/{id}"),
        )
        .bearer_auth(KONN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let kept = c.app.store.get("broker/newest_grants", &key).await.unwrap();
    assert!(kept.is_none(), "{kept:?}");
}

/// A grant the broker never saw (another writer reconnected the account) is taken as
/// the newest, not replaced by the broker's older one.
async fn a_new_grant_from_another_writer_is_adopted(b: Backend) {
    let c = spawn_cozy(b, |s| s.refresh.fresh_window_secs = 0).await;
    let t = c.app.code_type(json!({})).await;
    revoking_provider(&c.app.provider).await;
    let id = first_grant(&c, &t).await;
    assert_eq!(c.refresh(DOMAIN, &t, &id, KONN_TOKEN).await.status(), 200);
    // cozy-stack reconnects it: a grant the broker never issued.
    let mut doc = c.app.account(&c.inst, &id).await;
    doc["oauth"]["refresh_token"] = "rt-elsewhere".into();
    c.app.store.put(&c.inst.accounts_db(), &doc).await.unwrap();
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=rt-elsewhere"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-x", "refresh_token": "rt-x", "expires_in": 3600})))
        .with_priority(1)
        .mount(&c.app.provider)
        .await;
    let resp = c.refresh(DOMAIN, &t, &id, KONN_TOKEN).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        c.app.account(&c.inst, &id).await["oauth"]["refresh_token"],
        "rt-x"
    );
}

both_stores!(
    an_older_copy_saved_over_the_account_does_not_cost_the_grant,
    a_new_grant_from_another_writer_is_adopted,
);
