//! The HTTP surface: routes, who may call them (extractors), error rendering, rate
//! limits, request logging. Handlers parse, call the application layer and render.

pub(crate) mod error;
mod extractors;
pub mod query;
pub(crate) mod rate_limit;
pub(crate) mod request_log;
mod routes;

use crate::app::Error;
use actix_web::{middleware, web};

/// Largest admin request body accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Who may call a route; each is enforced by the extractor of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, metrics).
    Public,
    /// The operator's admin token (`AdminCaller`).
    Admin,
    /// A caller acting for an instance (`InstanceCaller`).
    Instance,
    /// A session code or instance token, spent after the request is parsed (`StartCaller`).
    Start,
    /// A browser back from a provider: the state is its proof (`RedirectCaller`).
    Redirect,
}

/// One route of the broker.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path pattern, actix syntax.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// Declares every route once: the table tests walk and the registration are one list.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:path, $access:ident;)*) => {
        /// Every route the broker serves.
        pub const ROUTES: &[Route] = &[$(Route {
            method: stringify!($method),
            path: $path,
            access: Access::$access,
        }),*];

        /// Registers every route.
        pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, routes!(@method $method).to($handler));)*
        }
    };
    (@method GET) => { web::get() };
    (@method POST) => { web::post() };
    (@method PUT) => { web::put() };
    (@method DELETE) => { web::delete() };
}

routes! {
    GET "/healthz" => routes::health::healthz, Public;
    GET "/metrics" => routes::health::metrics, Public;
    GET "/readyz" => routes::health::readyz, Public;
    GET "/accounts/{type}/start" => routes::start::start, Start;
    GET "/accounts/{type}/redirect" => routes::redirect::redirect, Redirect;
    POST "/accounts/{type}" => routes::accounts::create, Instance;
    DELETE "/accounts/{type}/{id}" => routes::accounts::delete, Instance;
    GET "/accounts/{type}/{id}/reconnect" => routes::start::start, Start;
    GET "/accounts/{type}/{id}/manage" => routes::start::manage, Start;
    POST "/accounts/{type}/{id}/refresh" => routes::accounts::refresh, Instance;
    GET "/accounts/{type}/{id}/status" => routes::accounts::status, Instance;
    GET "/admin/account_types" => routes::admin::list_account_types, Admin;
    GET "/admin/account_types/{id:.+}" => routes::admin::get_account_type, Admin;
    PUT "/admin/account_types/{id:.+}" => routes::admin::put_account_type, Admin;
    DELETE "/admin/account_types/{id:.+}" => routes::admin::delete_account_type, Admin;
    GET "/admin/registered_clients" => routes::admin::list_registered_clients, Admin;
    GET "/admin/registered_clients/{id:.+}" => routes::admin::get_registered_client, Admin;
    PUT "/admin/registered_clients/{id:.+}" => routes::admin::update_registered_client, Admin;
    DELETE "/admin/registered_clients/{id:.+}" => routes::admin::unregister_client, Admin;
    GET "/admin/instances" => routes::admin::list_instances, Admin;
    POST "/admin/instances" => routes::admin::add_instance, Admin;
    POST "/admin/instances/{domain}/session_codes" => routes::admin::issue_session_code, Admin;
    POST "/admin/instances/{domain}/tokens" => routes::admin::issue_api_token, Admin;
    POST "/admin/tokens/revoke" => routes::admin::revoke_api_token, Admin;
    GET "/admin/accounts" => routes::admin::list_accounts, Admin;
    GET "/admin/providers/health" => routes::admin::providers_health, Admin;
    GET "/admin/audit" => routes::admin::audit, Admin;
}

/// Reads a request body of at most [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(mut payload: web::Payload) -> Result<web::Bytes, Error> {
    use futures::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| Error::BadRequest {
            code: "invalid_body",
            detail: "the request body could not be read".into(),
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Error::TooLarge("the request body is larger than 64 KiB"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads a JSON body into `T`; `expected` tells the caller what shape was wanted.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    payload: web::Payload,
    expected: &str,
) -> Result<T, Error> {
    let body = read_body(payload).await?;
    serde_json::from_slice(&body).map_err(|e| Error::BadRequest {
        code: "invalid_json",
        detail: format!("expected {expected}: {e}"),
    })
}

/// Headers on every answer: nothing cached, no referrer leaked, nothing run.
pub(crate) fn security_headers() -> middleware::DefaultHeaders {
    middleware::DefaultHeaders::new()
        .add(("Cache-Control", "no-store"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ))
}
