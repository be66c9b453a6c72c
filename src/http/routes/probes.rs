//! Liveness, readiness and metrics.

use crate::app::Services;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// The process is up.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The store answers.
pub(crate) async fn readyz(services: web::Data<Services>) -> HttpResponse {
    match services.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(json!({"status": "store unavailable"}))
        }
    }
}

/// Prometheus metrics in the text exposition format.
pub(crate) async fn metrics(services: web::Data<Services>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(services.metrics.render())
}
