//! The HTTP surface: routes, credential checks, error rendering, request logging.

pub mod auth;
pub mod error;
pub mod query;
pub mod rate_limit;
pub mod request_log;
pub mod routes;

use actix_web::{middleware, web};

/// Largest admin request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(routes::health::healthz))
        .route("/metrics", web::get().to(routes::health::metrics))
        .route("/readyz", web::get().to(routes::health::readyz))
        .route(
            "/accounts/{type}/start",
            web::get().to(routes::start::start),
        )
        .route(
            "/accounts/{type}/redirect",
            web::get().to(routes::redirect::redirect),
        )
        .route("/accounts/{type}", web::post().to(routes::accounts::create))
        .route(
            "/accounts/{type}/{id}",
            web::delete().to(routes::accounts::delete),
        )
        .route(
            "/accounts/{type}/{id}/reconnect",
            web::get().to(routes::start::reconnect),
        )
        .route(
            "/accounts/{type}/{id}/refresh",
            web::post().to(routes::refresh::refresh),
        )
        .route(
            "/accounts/{type}/{id}/status",
            web::get().to(routes::status::status),
        )
        .service(
            web::scope("/admin")
                .route(
                    "/account_types",
                    web::get().to(routes::admin::list_account_types),
                )
                .route(
                    "/account_types/{id:.+}",
                    web::get().to(routes::admin::get_account_type),
                )
                .route(
                    "/account_types/{id:.+}",
                    web::put().to(routes::admin::put_account_type),
                )
                .route(
                    "/account_types/{id:.+}",
                    web::delete().to(routes::admin::delete_account_type),
                )
                .route(
                    "/registered_clients",
                    web::get().to(routes::admin::list_registered_clients),
                )
                .route(
                    "/registered_clients/{id:.+}",
                    web::get().to(routes::admin::get_registered_client),
                )
                .route(
                    "/registered_clients/{id:.+}",
                    web::put().to(routes::admin::update_registered_client),
                )
                .route(
                    "/registered_clients/{id:.+}",
                    web::delete().to(routes::admin::unregister_client),
                )
                .route("/instances", web::get().to(routes::admin::list_instances))
                .route("/instances", web::post().to(routes::admin::add_instance))
                .route(
                    "/instances/{domain}/session_codes",
                    web::post().to(routes::admin::issue_session_code),
                )
                .route(
                    "/instances/{domain}/tokens",
                    web::post().to(routes::admin::issue_api_token),
                )
                .route(
                    "/tokens/revoke",
                    web::post().to(routes::admin::revoke_api_token),
                ),
        );
}

/// Reads a request body of at most [`MAX_BODY_BYTES`].
pub async fn read_body(mut payload: web::Payload) -> Result<web::Bytes, error::AppError> {
    use futures::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| error::AppError::BadRequest {
            code: "invalid_body",
            detail: "the request body could not be read".into(),
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(error::AppError::TooLarge(
                "the request body is larger than 64 KiB",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads a JSON body into `T`; `expected` tells the caller what shape was wanted.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    payload: web::Payload,
    expected: &str,
) -> Result<T, error::AppError> {
    let body = read_body(payload).await?;
    serde_json::from_slice(&body).map_err(|e| error::AppError::BadRequest {
        code: "invalid_json",
        detail: format!("expected {expected}: {e}"),
    })
}

/// Headers on every answer: nothing cached, no referrer leaked, nothing run.
pub fn security_headers() -> middleware::DefaultHeaders {
    middleware::DefaultHeaders::new()
        .add(("Cache-Control", "no-store"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ))
}
