//! Every failure a request can meet, and its one HTTP rendering: an HTML page for
//! browser routes ([`Page`]), a JSON:API error for API routes ([`Api`]).

use crate::broker::ClientError;
use crate::domain::provider_url::ProviderUrlError;
use crate::domain::{AccountTypeError, StateRejection};
use crate::oauth::ProviderError;
use crate::refresh::RefreshError;
use crate::registration::RegistrationError;
use crate::store::account_types::{LookupError, WriteError};
use crate::store::flow_states::ConsumeError;
use crate::store::StoreError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// What went wrong, independent of how it is shown.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No credential was presented.
    #[error("no credential in the request: send a session_code or an Authorization: Bearer token")]
    NoCredentials,
    /// `start` without a session code or token.
    #[error("this page needs a session code or an API token: open it from your Cozy")]
    LoginRequired,
    /// The credential is unknown, expired or already used.
    #[error("the session code or token is invalid, expired or already used")]
    BadCredentials,
    /// The admin API is off.
    #[error("the admin API is disabled: set BROKER__ADMIN_TOKEN to enable it")]
    AdminDisabled,
    /// Wrong or missing admin token.
    #[error("admin token missing or wrong")]
    AdminUnauthorized,
    /// The account type cannot be used.
    #[error(transparent)]
    AccountType(#[from] LookupError),
    /// The account type has no authorization step (`secret`, or no grant mode).
    #[error(
        "account type `{0}` has no OAuth authorization step (its grant_mode is `secret` or empty)"
    )]
    NoAuthorizationStep(String),
    /// A malformed parameter.
    #[error("{detail}")]
    BadRequest {
        /// Stable error code.
        code: &'static str,
        /// What to fix.
        detail: String,
    },
    /// Too many requests from one client.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the next request is allowed.
        retry_after_secs: u64,
    },
    /// A request larger than allowed.
    #[error("{0}")]
    TooLarge(&'static str),
    /// The presented state is refused.
    #[error(transparent)]
    State(#[from] StateRejection),
    /// The instance is not known here.
    #[error("instance `{0}` is not known to this broker")]
    UnknownInstance(String),
    /// A document the request names does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// An operator's document was refused.
    #[error("invalid account type: {0}")]
    InvalidDocument(#[from] AccountTypeError),
    /// The target exists or changed meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// The account cannot be refreshed.
    #[error("{0}")]
    NotRefreshable(&'static str),
    /// A sealed secret cannot be opened with the configured keys.
    #[error("{0}")]
    KeyUnavailable(String),
    /// The refresh token is dead.
    #[error("OAuth refresh token is invalid or expired; reconnect account.")]
    RefreshInvalidToken,
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The `provider_url` of a start is refused.
    #[error(transparent)]
    ProviderUrl(#[from] ProviderUrlError),
    /// The client of an account type (its provider, its registration) cannot be had.
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl From<RegistrationError> for AppError {
    fn from(e: RegistrationError) -> Self {
        AppError::Client(ClientError::Registration(e))
    }
}

impl From<ConsumeError> for AppError {
    fn from(e: ConsumeError) -> Self {
        match e {
            ConsumeError::Rejected(r) => AppError::State(r),
            ConsumeError::Store(s) => AppError::Store(s),
        }
    }
}

impl From<WriteError> for AppError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Invalid(i) => AppError::InvalidDocument(i),
            WriteError::Conflict => AppError::Conflict(e.to_string()),
            WriteError::Store(s) => AppError::Store(s),
        }
    }
}

impl From<RefreshError> for AppError {
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::AccountNotFound => AppError::NotFound("account"),
            RefreshError::NotRefreshable(why) => AppError::NotRefreshable(why),
            RefreshError::AccountType(l) => AppError::AccountType(l),
            RefreshError::InvalidToken => AppError::RefreshInvalidToken,
            RefreshError::Provider(p) => AppError::Provider(p),
            RefreshError::Store(s) => AppError::Store(s),
            RefreshError::Busy => AppError::Conflict(e.to_string()),
            RefreshError::Client(c) => AppError::Client(c),
            RefreshError::Sealed(e) => {
                AppError::KeyUnavailable(format!("the stored refresh token cannot be opened: {e}"))
            }
        }
    }
}

impl AppError {
    /// HTTP status and stable machine code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use AppError::*;
        match self {
            NoCredentials => (StatusCode::UNAUTHORIZED, "no_credentials"),
            LoginRequired => (StatusCode::FORBIDDEN, "login_required"),
            BadCredentials => (StatusCode::FORBIDDEN, "bad_credentials"),
            AdminDisabled => (StatusCode::FORBIDDEN, "admin_disabled"),
            AdminUnauthorized => (StatusCode::UNAUTHORIZED, "admin_unauthorized"),
            AccountType(LookupError::NotFound(_)) => {
                (StatusCode::NOT_FOUND, "unknown_account_type")
            }
            AccountType(LookupError::Invalid { .. }) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "invalid_account_type")
            }
            AccountType(LookupError::Store(_)) | Store(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
            NoAuthorizationStep(_) => (StatusCode::BAD_REQUEST, "no_authorization_step"),
            BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            State(StateRejection::Unknown) => (StatusCode::BAD_REQUEST, "state_unknown"),
            State(StateRejection::Expired) => (StatusCode::BAD_REQUEST, "state_expired"),
            State(StateRejection::Replayed) => (StatusCode::BAD_REQUEST, "state_replayed"),
            State(StateRejection::Mismatch) => (StatusCode::BAD_REQUEST, "state_mismatch"),
            State(StateRejection::BindingMismatch) => {
                (StatusCode::BAD_REQUEST, "flow_binding_mismatch")
            }
            UnknownInstance(_) => (StatusCode::NOT_FOUND, "unknown_instance"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            InvalidDocument(_) => (StatusCode::BAD_REQUEST, "invalid_account_type"),
            Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            NotRefreshable(_) => (StatusCode::BAD_REQUEST, "not_refreshable"),
            RefreshInvalidToken => (StatusCode::UNAUTHORIZED, "oauth_refresh_invalid_token"),
            KeyUnavailable(_) => (StatusCode::INTERNAL_SERVER_ERROR, "key_unavailable"),
            Provider(ProviderError::Timeout) => (StatusCode::GATEWAY_TIMEOUT, "provider_timeout"),
            Provider(_) => (StatusCode::BAD_GATEWAY, "provider_error"),
            ProviderUrl(_) | Client(ClientError::NoProvider(_) | ClientError::FixedProvider(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_provider_url")
            }
            Client(ClientError::Registration(r)) => match r {
                RegistrationError::Provider(ProviderError::Timeout) => {
                    (StatusCode::GATEWAY_TIMEOUT, "provider_timeout")
                }
                RegistrationError::Provider(_) | RegistrationError::NoClientId => {
                    (StatusCode::BAD_GATEWAY, "registration_failed")
                }
                RegistrationError::NotRegistered(_) => (StatusCode::NOT_FOUND, "not_registered"),
                RegistrationError::NotManageable(_) => (StatusCode::CONFLICT, "not_manageable"),
                RegistrationError::Sealed(..) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "key_unavailable")
                }
                RegistrationError::Store(_)
                | RegistrationError::AccountType(LookupError::Store(_)) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
                }
                RegistrationError::AccountType(LookupError::NotFound(_)) => {
                    (StatusCode::NOT_FOUND, "unknown_account_type")
                }
                RegistrationError::AccountType(LookupError::Invalid { .. }) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "invalid_account_type")
                }
            },
        }
    }

    /// Adds `Retry-After` to a rate-limited answer.
    fn with_retry_after(&self, mut answer: HttpResponse) -> HttpResponse {
        if let AppError::RateLimited { retry_after_secs } = self {
            answer
                .headers_mut()
                .insert(header::RETRY_AFTER, (*retry_after_secs).into());
        }
        answer
    }

    fn log(&self) {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), code, error = %self, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), code, error = %self, "request refused");
        }
    }
}

/// An error shown to a person in a browser, as a small HTML page.
#[derive(Debug)]
pub struct Page(pub AppError);

/// An error answered to a program, as a JSON:API error document.
#[derive(Debug)]
pub struct Api(pub AppError);

impl std::fmt::Display for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Into<AppError>> From<E> for Page {
    fn from(e: E) -> Self {
        Page(e.into())
    }
}

impl<E: Into<AppError>> From<E> for Api {
    fn from(e: E) -> Self {
        Api(e.into())
    }
}

impl ResponseError for Page {
    fn status_code(&self) -> StatusCode {
        self.0.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        self.0.log();
        let (status, code) = self.0.status_and_code();
        let hint = match status.as_u16() {
            400 | 404 => "Close this window and start the connection again from your Cozy.",
            401 | 403 => "Open this page from your Cozy, which signs the request for you.",
            502..=504 => "The service or its storage is having trouble. Try again in a few minutes.",
            _ => "The connection could not be completed. If this keeps happening, contact your administrator.",
        };
        let body = render_page(
            status.canonical_reason().unwrap_or("Error"),
            &self.0.to_string(),
            hint,
            code,
        );
        let answer = HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .body(body);
        self.0.with_retry_after(answer)
    }
}

impl ResponseError for Api {
    fn status_code(&self) -> StatusCode {
        self.0.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        self.0.log();
        let (status, code) = self.0.status_and_code();
        self.0
            .with_retry_after(jsonapi_error(status, code, &self.0.to_string()))
    }
}

/// A JSON:API error document, `source` always present as cozy-stack writes it.
pub fn jsonapi_error(status: StatusCode, code: &str, detail: &str) -> HttpResponse {
    let body = json!({"errors": [{
        "status": status.as_u16().to_string(),
        "title": status.canonical_reason().unwrap_or("Error"),
        "code": code,
        "detail": detail,
        "source": {}
    }]});
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/vnd.api+json"))
        .body(body.to_string())
}

/// The small HTML page shown to people.
pub fn render_page(title: &str, message: &str, hint: &str, code: &str) -> String {
    let request = super::request_log::current_request_id()
        .map(|id| format!(" · request {}", escape_html(&id)))
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <style>body{{font-family:sans-serif;max-width:36em;margin:3em auto;padding:0 1em;color:#222}}\
         code{{color:#666}}</style></head><body><h1>{t}</h1><p>{m}</p><p>{h}</p>\
         <p><code>error: {c}{r}</code></p></body></html>",
        t = escape_html(title),
        m = escape_html(message),
        h = escape_html(hint),
        c = escape_html(code),
        r = request,
    )
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let p = render_page("<t>", "a & \"b\"", "h", "c");
        assert!(p.contains("&lt;t&gt;") && p.contains("a &amp; &quot;b&quot;"));
    }

    #[test]
    fn invalid_refresh_token_matches_cozy_stack() {
        let (status, code) = AppError::RefreshInvalidToken.status_and_code();
        assert_eq!(
            (status.as_u16(), code),
            (401, "oauth_refresh_invalid_token")
        );
        assert_eq!(
            AppError::RefreshInvalidToken.to_string(),
            "OAuth refresh token is invalid or expired; reconnect account."
        );
    }
}
