//! Liveness, readiness and metrics.

use crate::broker::Broker;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The store answers.
pub async fn readyz(broker: web::Data<Broker>) -> HttpResponse {
    match broker.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(json!({"status": "store unavailable"}))
        }
    }
}

/// Prometheus metrics in the text exposition format.
pub async fn metrics(broker: web::Data<Broker>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(broker.metrics.render())
}
