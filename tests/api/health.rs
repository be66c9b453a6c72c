//! `/healthz` and `/readyz`.

use crate::both_stores;
use crate::helpers::*;
use serde_json::json;

async fn health_and_readiness_answer_ok(b: Backend) {
    let app = spawn_app(b).await;
    for p in ["/healthz", "/readyz"] {
        let resp = app
            .http
            .get(format!("{}{p}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{p}");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
        assert!(resp.headers().contains_key("x-request-id"));
    }
}

both_stores!(health_and_readiness_answer_ok);

#[tokio::test]
async fn readiness_fails_when_couchdb_is_down_but_liveness_holds() {
    let Some(relay) = CouchRelay::start().await else {
        return;
    };
    let app = spawn_relayed_app(&relay).await;
    relay.set_down(true).await;
    let ready = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let live = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
}

async fn metrics_count_flows_by_type_and_outcome(b: Backend) {
    use serde_json::json;
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    wiremock::Mock::given(wiremock::matchers::path("/token"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(json!({"access_token": "a"})),
        )
        .mount(&app.provider)
        .await;
    let url = app.start_flow(&inst, &t).await;
    app.redirect(&t, &[("code", "c"), ("state", &TestApp::state_in(&url))])
        .await;
    let url = app.start_flow(&inst, &t).await;
    app.redirect(
        &t,
        &[
            // A sane code the app is told, but not a label: providers choose it.
            ("error", "provider_chosen_text"),
            ("state", &TestApp::state_in(&url)),
        ],
    )
    .await;
    app.redirect(&t, &[("state", "forged")]).await;
    let text = app.metrics_text().await;
    for line in [
        format!("broker_flows_started_total{{account_type=\"{t}\"}} 2"),
        format!("broker_flows_completed_total{{account_type=\"{t}\"}} 1"),
        format!("broker_flows_failed_total{{account_type=\"{t}\",reason=\"refused\"}} 1"),
        "broker_flows_failed_total{account_type=\"-\",reason=\"invalid\"} 1".to_owned(),
        "broker_token_endpoint_seconds_count{kind=\"exchange\"} 1".to_owned(),
    ] {
        assert!(text.contains(&line), "missing `{line}` in\n{text}");
    }
    assert!(text.contains("broker_store_seconds_count{op=\"put\"}"));
    assert!(!text.contains("provider_chosen_text"), "{text}");
}

both_stores!(metrics_count_flows_by_type_and_outcome);

/// The attack: a tenant writes accounts of made-up types into its own database and asks
/// for their refresh, each made-up type a new metric series (the metrics grow without
/// bound). Labels come only from types the broker knows.
async fn a_tenants_made_up_account_types_never_become_metric_labels(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let mut made_up = Vec::new();
    for i in 0..5 {
        let t = format!("made-up-type-{i}");
        let id = app
            .seed_account(
                &inst,
                json!({"account_type": t, "oauth": {"access_token": "a", "refresh_token": "r"}}),
            )
            .await;
        let resp = app.refresh(&t, &id, Some(&token)).await;
        assert_eq!(resp.status(), 404, "{t}");
        made_up.push(t);
    }
    let text = app.metrics_text().await;
    for t in &made_up {
        assert!(!text.contains(t.as_str()), "`{t}` is a label:\n{text}");
    }
    assert!(
        text.contains("broker_refreshes_total{account_type=\"-\",outcome=\"not_found\"} 5"),
        "{text}"
    );
}

both_stores!(a_tenants_made_up_account_types_never_become_metric_labels);

/// The same attack on the background refresher: an account the broker keeps fresh,
/// its `account_type` rewritten by its tenant before the pass.
async fn a_retyped_account_in_the_refresh_pass_never_becomes_a_metric_label(b: Backend) {
    let namespace = format!("{}_", unique("retyped"));
    let app = spawn_app_with(b, move |s| {
        s.couchdb.db_prefix = namespace;
        // Due at once on the margin alone.
        on_the_margin_alone(s);
    })
    .await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let id = crate::refresher::account_from(
        &app,
        &inst,
        &t,
        "c",
        json!({"access_token": "a", "refresh_token": "r", "expires_in": 60}),
    )
    .await;
    let mut doc = app.account(&inst, &id).await;
    doc["account_type"] = json!("made-up-by-the-tenant");
    app.store.put(&inst.accounts_db(), &doc).await.unwrap();
    assert_eq!(app.services.refresh_due_once().await, 1);
    let text = app.metrics_text().await;
    assert!(!text.contains("made-up-by-the-tenant"), "{text}");
    assert!(
        text.contains("broker_refreshes_total{account_type=\"-\",outcome=\"not_found\"} 1"),
        "{text}"
    );
}

both_stores!(a_retyped_account_in_the_refresh_pass_never_becomes_a_metric_label);
