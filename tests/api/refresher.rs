//! The background refresher: the schedule, the margin, idle refreshes, back-off, and
//! accounts whose refresh token died.

use crate::both_stores;
use crate::helpers::*;
use oauth_broker::domain::Instance;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{body_string_contains, path};
use wiremock::{Mock, ResponseTemplate};

/// A broker whose refresher runs every second, in a database namespace of its own, on
/// the margin alone (no share of the lifetime, no floor) so that a test need not wait.
async fn refreshing_app(b: Backend) -> TestApp {
    let namespace = format!("{}_", unique("fresh"));
    spawn_app_with(b, move |s| {
        s.refresh.enabled = true;
        s.refresh.interval_secs = 1;
        on_the_margin_alone(s);
        s.couchdb.db_prefix = namespace;
    })
    .await
}

/// Tokens living 300 s (Keycloak's default), shorter than the 600 s margin, through
/// three simulated hours of 30 s passes on an injected clock: about one refresh per
/// lifetime, and the stored token never expired at a pass (it was one refresh per pass).
async fn short_lived_tokens_are_refreshed_about_once_per_lifetime(b: Backend) {
    use oauth_broker::domain::{Clock, Timestamp};
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let start = 1_900_000_000;
    let clock = Clock::fixed(Timestamp::from_unix_secs(start));
    let namespace = format!("{}_", unique("cadence"));
    let mut settings = test_settings(b, dir.path());
    settings.refresh.enabled = false;
    settings.couchdb.db_prefix = namespace;
    let app = spawn_with_clock(
        settings,
        dir,
        wiremock::MockServer::start().await,
        clock.clone(),
    )
    .await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let id = account_from(
        &app,
        &inst,
        &t,
        "kc",
        json!({"access_token": "at-0", "refresh_token": "rt", "expires_in": 300}),
    )
    .await;
    Mock::given(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "at", "expires_in": 300})),
        )
        .mount(&app.provider)
        .await;
    let (passes, every) = (360, 30);
    for pass in 1..=passes {
        let now = start + pass * every;
        clock.set(Timestamp::from_unix_secs(now));
        app.services.refresh_due_once().await;
        let doc = app.account(&inst, &id).await;
        let exp =
            chrono::DateTime::parse_from_rfc3339(doc["oauth"]["expires_at"].as_str().unwrap())
                .unwrap()
                .timestamp();
        assert!(exp > now, "expired at pass {pass}: {exp} <= {now}");
    }
    let refreshes = app
        .provider
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("grant_type=refresh_token"))
        .count() as i64;
    let lifetimes = passes * every / 300;
    assert!(
        (lifetimes..=lifetimes * 3 / 2).contains(&refreshes),
        "{refreshes} refreshes for {lifetimes} lifetimes over {passes} passes"
    );
}

/// Completes a flow whose code exchange answers `reply`; returns the account id.
pub(crate) async fn account_from(
    app: &TestApp,
    inst: &Instance,
    t: &str,
    code: &str,
    reply: Value,
) -> String {
    Mock::given(path("/token"))
        .and(body_string_contains(format!("code={code}&")))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply))
        .mount(&app.provider)
        .await;
    let url = app.start_flow(inst, t).await;
    let loc = location(
        &app.redirect(t, &[("code", code), ("state", &TestApp::state_in(&url))])
            .await,
    );
    query_of(&loc)["account"].clone()
}

async fn planned(app: &TestApp, inst: &Instance, id: &str) -> Option<(i64, u32)> {
    app.planned(inst, id).await
}

async fn the_refresher_renews_accounts_within_the_margin_and_only_those(b: Backend) {
    let app = refreshing_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let soon = account_from(
        &app,
        &inst,
        &t,
        "soon",
        json!({"access_token": "a1", "refresh_token": "rt-soon", "expires_in": 300}),
    )
    .await;
    let later = account_from(
        &app,
        &inst,
        &t,
        "later",
        json!({"access_token": "b1", "refresh_token": "rt-later", "expires_in": 7200}),
    )
    .await;
    let (due_later, _) = planned(&app, &inst, &later).await.unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now + 7200 - 600 - 5..=now + 7200 - 600 + 5).contains(&due_later),
        "margin of 10 minutes"
    );
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=rt-soon"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "a2", "expires_in": 3600})),
        )
        .expect(1)
        .mount(&app.provider)
        .await;
    let mut waited = 0;
    while app.account(&inst, &soon).await["oauth"]["access_token"] != "a2" {
        assert!(waited < 50, "not refreshed in 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let doc = app.account(&inst, &soon).await;
    assert_eq!(
        doc["oauth"]["refresh_token"], "rt-soon",
        "kept: the reply had none"
    );
    assert_eq!(
        app.account(&inst, &later).await["oauth"]["access_token"],
        "b1"
    );
    // The account is written during the pass, its new plan at the pass's end (in bulk).
    let mut waited = 0;
    loop {
        let (next, attempts) = planned(&app, &inst, &soon).await.unwrap();
        if next > chrono::Utc::now().timestamp() + 2000 && attempts == 0 {
            break;
        }
        assert!(
            waited < 50,
            "not planned from the new token in 5 s: {next}, {attempts}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    // Another pass does not refresh it again (the provider mock expects one call).
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

async fn an_account_without_expiry_is_planned_at_the_idle_period(b: Backend) {
    let app = refreshing_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({"refresh_every_secs": 3600})).await;
    let id = account_from(
        &app,
        &inst,
        &t,
        "c",
        json!({"access_token": "a", "refresh_token": "r"}),
    )
    .await;
    let (due, _) = planned(&app, &inst, &id).await.unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now + 3595..=now + 3605).contains(&due), "{due} vs {now}");
    // Without a refresh token there is nothing to plan.
    let none = account_from(&app, &inst, &t, "n", json!({"access_token": "a"})).await;
    assert_eq!(planned(&app, &inst, &none).await, None);
}

async fn a_provider_outage_backs_off(b: Backend) {
    let app = refreshing_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let id = account_from(
        &app,
        &inst,
        &t,
        "c",
        json!({"access_token": "a", "refresh_token": "r", "expires_in": 60}),
    )
    .await;
    Mock::given(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&app.provider)
        .await;
    let mut waited = 0;
    loop {
        if let Some((due, attempts)) = planned(&app, &inst, &id).await {
            if attempts == 1 {
                let wait = due - chrono::Utc::now().timestamp();
                assert!(
                    (20..=37).contains(&wait),
                    "back-off of about 30 s, got {wait}"
                );
                break;
            }
        }
        assert!(waited < 50, "no back-off recorded in 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(app.account(&inst, &id).await["oauth"]["access_token"], "a");
}

async fn a_dead_refresh_token_marks_the_account_until_it_is_reconnected(b: Backend) {
    let app = refreshing_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let id = account_from(
        &app,
        &inst,
        &t,
        "c",
        json!({"access_token": "a", "refresh_token": "dead", "expires_in": 60}),
    )
    .await;
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=dead"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .expect(1)
        .mount(&app.provider)
        .await;
    let mut waited = 0;
    while app
        .account(&inst, &id)
        .await
        .get("reconnect_needed")
        .is_none()
    {
        assert!(waited < 50, "not marked in 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let mark = app.account(&inst, &id).await["reconnect_needed"].clone();
    assert_eq!(mark["error"], "invalid_grant");
    // The mark is written during the pass, the plan cleared at its end (in bulk): wait for
    // the pass to end rather than read the plan between the two.
    let mut waited = 0;
    while planned(&app, &inst, &id).await.is_some() {
        assert!(
            waited < 50,
            "no more attempts: the plan is still there after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Reconnecting clears the mark and plans refreshes again.
    Mock::given(path("/token"))
        .and(body_string_contains("code=again&"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "b", "refresh_token": "alive", "expires_in": 3600}),
        ))
        .mount(&app.provider)
        .await;
    let url = app.reconnect_flow(&inst, &t, &id).await;
    let loc = location(
        &app.redirect(
            &t,
            &[("code", "again"), ("state", &TestApp::state_in(&url))],
        )
        .await,
    );
    assert!(loc.contains(&format!("account={id}")), "{loc}");
    let doc = app.account(&inst, &id).await;
    assert!(doc.get("reconnect_needed").is_none());
    assert!(planned(&app, &inst, &id).await.is_some());
}

both_stores!(
    short_lived_tokens_are_refreshed_about_once_per_lifetime,
    the_refresher_renews_accounts_within_the_margin_and_only_those,
    an_account_without_expiry_is_planned_at_the_idle_period,
    a_provider_outage_backs_off,
    a_dead_refresh_token_marks_the_account_until_it_is_reconnected,
);

async fn a_misconfigured_type_backs_off_and_keeps_the_account_planned(b: Backend) {
    let app = refreshing_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let id = account_from(
        &app,
        &inst,
        &t,
        "c",
        json!({"access_token": "a", "refresh_token": "r", "expires_in": 60}),
    )
    .await;
    // An operator's curl breaks the type; fixing it must not need every account re-planned.
    let mut doc = app
        .store
        .get(oauth_broker::store::ACCOUNT_TYPES_DB, &t)
        .await
        .unwrap()
        .unwrap();
    doc["extras"] = json!({"display": 1});
    app.store
        .put(oauth_broker::store::ACCOUNT_TYPES_DB, &doc)
        .await
        .unwrap();
    let mut waited = 0;
    loop {
        match planned(&app, &inst, &id).await {
            Some((_, attempts)) if attempts >= 1 => break,
            Some(_) => {}
            None => panic!("the account left the schedule over a fixable type"),
        }
        assert!(waited < 80, "no back-off recorded in 8 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
}

both_stores!(a_misconfigured_type_backs_off_and_keeps_the_account_planned);

async fn a_plan_changed_during_a_pass_is_read_again_and_the_pass_decides(b: Backend) {
    // The refresher does not run on its own here: the test runs one pass, on the margin
    // alone so that the 300 s token is due at once.
    let namespace = format!("{}_", unique("replan"));
    let app = spawn_app_with(b, move |s| {
        s.couchdb.db_prefix = namespace;
        on_the_margin_alone(s);
    })
    .await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let id = account_from(
        &app,
        &inst,
        &t,
        "due",
        json!({"access_token": "a1", "refresh_token": "rt-due", "expires_in": 300}),
    )
    .await;
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=rt-due"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "a2", "expires_in": 3600}))
                .set_delay(Duration::from_millis(800)),
        )
        .expect(1)
        .mount(&app.provider)
        .await;
    let pass = tokio::spawn({
        let services = app.services.clone();
        async move { services.refresh_due_once().await }
    });
    // While the provider answers, someone else rewrites the plan (a new revision).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let key = format!("{}/{id}", inst.domain);
    let mut plan = app
        .store
        .get(oauth_broker::store::REFRESH_SCHEDULE_DB, &key)
        .await
        .unwrap()
        .unwrap();
    plan["attempts"] = 5.into();
    app.store
        .put(oauth_broker::store::REFRESH_SCHEDULE_DB, &plan)
        .await
        .unwrap();
    assert_eq!(pass.await.unwrap(), 1);
    assert_eq!(app.account(&inst, &id).await["oauth"]["access_token"], "a2");
    // The pass's bulk write conflicted; its decision was written over the newer revision.
    let (due_at, attempts) = planned(&app, &inst, &id).await.unwrap();
    let now = chrono::Utc::now().timestamp();
    assert_eq!(attempts, 0);
    assert!(
        (now + 3600 - 600 - 5..=now + 3600 - 600 + 5).contains(&due_at),
        "planned from the new token: {due_at}"
    );
}

both_stores!(a_plan_changed_during_a_pass_is_read_again_and_the_pass_decides);
