//! The HTTP surface: routes, who may call them (extractors), error rendering, rate
//! limits, request logging. Handlers parse, call the application layer and render.

pub(crate) mod error;
mod extractors;
mod failure_page;
pub mod query;
pub(crate) mod rate_limit;
pub(crate) mod request_log;
mod routes;
pub(crate) mod stack_upstream;

use crate::app::Error;
use crate::domain::ErrorCode;
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
    /// What it answers, in Markdown (the HTTP reference's column).
    pub answers: &'static str,
}

impl Access {
    /// Who this is, for the HTTP reference.
    pub fn who(self) -> &'static str {
        match self {
            Access::Public => "anyone (orchestrator, Prometheus)",
            Access::Admin => "operator (`Authorization: Bearer` admin token)",
            Access::Instance => "konnector, app or operator acting for an instance (cozy-stack JWT, or the broker's API token)",
            Access::Start => "the Home app in a browser (cozy session cookie, session code or token)",
            Access::Redirect => "the provider, through the browser (the `state` is the proof)",
        }
    }
}

/// Declares every route once: the table tests walk and the registration are one list.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:path, $access:ident, $answers:literal;)*) => {
        /// Every route the broker serves.
        pub const ROUTES: &[Route] = &[$(Route {
            method: stringify!($method),
            path: $path,
            access: Access::$access,
            answers: $answers,
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
    GET "/healthz" => routes::probes::healthz, Public,
        "200 when the process is up";
    GET "/metrics" => routes::probes::metrics, Public,
        "Prometheus text format (see Metrics)";
    GET "/readyz" => routes::probes::readyz, Public,
        "200 when the store answers, 503 otherwise";
    GET "/accounts/{type}/start" => routes::start::start, Start,
        "`?state&nonce&scope&slug&session_code[&login_hint][&provider_url]`: 303 to the provider; an HTML error page otherwise";
    GET "/accounts/{type}/redirect" => routes::redirect::redirect, Redirect,
        "`?code&state` (or `access_token`, `error`): 303 to the app, `?account=..&state=..` or `?error=access_denied&state=..`; any other failure after consent an HTML page (French or English) linking to the app with `?error=..&state=..`; 400 HTML page for a bad state; without the flow's binding cookie, 303 to the same on the instance's host, and there a page asking the person to confirm";
    POST "/accounts/{type}/redirect" => routes::redirect::confirm, Redirect,
        "`query=<the provider's query>` (form): the confirmation page's answer; then as `GET`, without the binding cookie";
    POST "/accounts/{type}" => routes::accounts::create, Instance,
        "`client_credentials` types: 201 JSON:API account holding a token obtained with the type's credentials";
    DELETE "/accounts/{type}/{id}" => routes::accounts::delete, Instance,
        "revokes the tokens at the type's `revocation_endpoint` (RFC 7009), then deletes the account; 502 and nothing deleted if the provider fails";
    GET "/accounts/{type}/{id}/reconnect" => routes::start::start, Start,
        "like `start`; the redirect then renews account `{id}` in place";
    GET "/accounts/{type}/{id}/manage" => routes::start::manage, Start,
        "logged in like `start`, then 400 `wrong_account_type`: Budget Insight types stay on cozy-stack";
    POST "/accounts/{type}/{id}/refresh" => routes::accounts::refresh, Instance,
        "`[?force=true]`: 200 JSON:API account with fresh tokens; within `refresh.fresh_window_secs` of the last refresh, the stored ones";
    GET "/accounts/{type}/{id}/status" => routes::accounts::status, Instance,
        "200 JSON:API `io.cozy.accounts.status` (`active`, `expires_at`, `scope`, `reconnect_needed`, `source`); 502/504 when introspection fails";
    GET "/admin/account_types" => routes::admin::list_account_types, Admin,
        "`{\"account_types\": [..]}`, secrets redacted";
    GET "/admin/account_types/{id:.+}" => routes::admin::get_account_type, Admin,
        "one account type, secrets redacted";
    PUT "/admin/account_types/{id:.+}" => routes::admin::put_account_type, Admin,
        "stores an account type (client secret sealed when keys are set)";
    DELETE "/admin/account_types/{id:.+}" => routes::admin::delete_account_type, Admin,
        "removes an account type";
    GET "/admin/registered_clients" => routes::admin::list_registered_clients, Admin,
        "registered clients, secrets redacted";
    GET "/admin/registered_clients/{id:.+}" => routes::admin::get_registered_client, Admin,
        "one registered client, secrets redacted; `?remote=true` reads it at the provider";
    PUT "/admin/registered_clients/{id:.+}" => routes::admin::update_registered_client, Admin,
        "sends the metadata again (RFC 7592); `{\"reset_secret\": true}` rotates the secret";
    DELETE "/admin/registered_clients/{id:.+}" => routes::admin::unregister_client, Admin,
        "unregisters at the provider and forgets the client";
    GET "/admin/instances" => routes::admin::list_instances, Admin,
        "the broker's own instances";
    POST "/admin/instances" => routes::admin::add_instance, Admin,
        "`{\"domain\": ..}`: adds an instance";
    POST "/admin/instances/{domain}/session_codes" => routes::admin::issue_session_code, Admin,
        "a one-time session code for `start`";
    POST "/admin/instances/{domain}/tokens" => routes::admin::issue_api_token, Admin,
        "an API token for the instance, shown once; `{\"expires_in\": s, \"account_types\": [..]}` limits it";
    POST "/admin/tokens/revoke" => routes::admin::revoke_api_token, Admin,
        "revokes an API token";
    GET "/admin/accounts" => routes::admin::list_accounts, Admin,
        "`?instance&type&reconnect_needed&failing&after&limit`: health records of the accounts kept fresh, a page at a time";
    GET "/admin/providers/health" => routes::admin::providers_health, Admin,
        "per account type: accounts, healthy, failing, reconnect needed, token endpoint p50/p99, last error";
    GET "/admin/audit" => routes::admin::audit, Admin,
        "`?since&after&limit`: who changed what, a page at a time";
}

/// Reads a request body of at most [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(mut payload: web::Payload) -> Result<web::Bytes, Error> {
    use futures::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| Error::BadRequest {
            code: ErrorCode::InvalidBody,
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
        code: ErrorCode::InvalidJson,
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
