//! `/healthz` and `/readyz`.

use crate::both_stores;
use crate::helpers::*;

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
    let relay = CouchRelay::start().await;
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
