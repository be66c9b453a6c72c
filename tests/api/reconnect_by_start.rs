//! Harvest never calls `reconnect` for an ordinary OAuth konnector: it runs `start` again
//! (`cozy-clients.md` §1.7). A sign-in of the same user at the provider (user info `sub`,
//! or the `id_token`'s) renews the account of that user waiting to be reconnected, and its
//! id goes back to the app, so the konnector's trigger works again.

use crate::both_stores;
use crate::helpers::*;
use oauth_broker::domain::Instance;
use serde_json::{json, Value};
use wiremock::matchers::{header, path};
use wiremock::{Mock, ResponseTemplate};

/// A type with user info; the provider says the bearer of `A-<n>` is `sub-<n>`.
async fn typed(app: &TestApp) -> String {
    for n in 1..=3 {
        Mock::given(path("/userinfo"))
            .and(header("authorization", format!("Bearer A-{n}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"sub": format!("sub-{n}"), "email": format!("u{n}@example.org")}),
            ))
            .mount(&app.provider)
            .await;
    }
    app.code_type(json!({"userinfo_endpoint": format!("{}/userinfo", app.provider.uri())}))
        .await
}

/// A sign-in through `start` whose grant is `A-<n>` / `R-<n>`; the app's return.
async fn sign_in(app: &TestApp, inst: &Instance, t: &str, n: u32) -> String {
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": format!("A-{n}"), "refresh_token": format!("R-{n}"),
            "expires_in": 3600, "token_type": "Bearer"})))
        .up_to_n_times(1)
        .mount(&app.provider)
        .await;
    let state = TestApp::state_in(&app.start_flow(inst, t).await);
    location(&app.redirect(t, &[("code", "C"), ("state", &state)]).await)
}

async fn mark_reconnect_needed(app: &TestApp, inst: &Instance, id: &str) {
    let mut doc = app.account(inst, id).await;
    doc["reconnect_needed"] = json!({"since": "2026-12-01T00:00:00Z", "error": "invalid_grant"});
    app.store.put(&inst.accounts_db(), &doc).await.unwrap();
}

/// The same user signs in again while the account waits for a reconnection: that
/// account gets the new grant, no second account is made. On the main of 2026-12-07 a
/// second account was created and the first stayed marked.
async fn a_new_sign_in_of_the_same_user_renews_the_account_waiting_for_it(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = typed(&app).await;
    let first = query_of(&sign_in(&app, &inst, &t, 1).await)["account"].clone();
    assert_eq!(
        app.account(&inst, &first).await["provider_subject"],
        "sub-1"
    );
    mark_reconnect_needed(&app, &inst, &first).await;
    // The provider names the same user (`sub-1`) for the new grant's access token.
    Mock::given(path("/userinfo"))
        .and(header("authorization", "Bearer A-9"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"sub": "sub-1"})))
        .mount(&app.provider)
        .await;
    let again = query_of(&sign_in(&app, &inst, &t, 9).await)["account"].clone();
    assert_eq!(again, first, "the waiting account is renewed in place");
    let doc: Value = app.account(&inst, &first).await;
    assert_eq!(doc["oauth"]["access_token"], "A-9");
    assert!(doc.get("reconnect_needed").is_none(), "{doc}");
    assert_eq!(app.accounts(&inst).await.len(), 1);
}

/// Another user at the provider, or an account that does not wait for a reconnection:
/// a new account, as before.
async fn another_user_or_a_healthy_account_gets_a_new_account(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = typed(&app).await;
    let first = query_of(&sign_in(&app, &inst, &t, 1).await)["account"].clone();
    mark_reconnect_needed(&app, &inst, &first).await;
    let other = query_of(&sign_in(&app, &inst, &t, 2).await)["account"].clone();
    assert_ne!(
        other, first,
        "a provider identity that changed makes a new account"
    );
    assert!(app
        .account(&inst, &first)
        .await
        .get("reconnect_needed")
        .is_some());
    // `sub-2`'s account is healthy: signing in again makes another one, as before.
    Mock::given(path("/userinfo"))
        .and(header("authorization", "Bearer A-3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"sub": "sub-2"})))
        .with_priority(1)
        .mount(&app.provider)
        .await;
    let third = query_of(&sign_in(&app, &inst, &t, 3).await)["account"].clone();
    assert_ne!(third, other);
    assert_eq!(app.accounts(&inst).await.len(), 3);
}

both_stores!(
    a_new_sign_in_of_the_same_user_renews_the_account_waiting_for_it,
    another_user_or_a_healthy_account_gets_a_new_account,
);
