//! The one HTTP rendering of a failure: its status comes from its kind ([`status_of`]),
//! its code from the error itself; an HTML page for browser routes ([`Page`]), a JSON:API
//! error for API routes ([`Api`]).

use crate::app::Error;
use crate::domain::{Classified, ErrorKind};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// The HTTP status of each kind of failure.
pub(crate) fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        // cozy-stack answers 401 to a dead refresh token; konnectors expect it.
        ErrorKind::Unauthenticated | ErrorKind::GrantRevoked => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Conflict | ErrorKind::Busy => StatusCode::CONFLICT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Upstream | ErrorKind::Refused => StatusCode::BAD_GATEWAY,
        ErrorKind::Misconfigured | ErrorKind::KeyUnavailable => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        // 308 keeps the method and body: a konnector's POST lands on the new domain.
        ErrorKind::Moved => StatusCode::PERMANENT_REDIRECT,
    }
}

fn status_and_code(e: &Error) -> (StatusCode, &'static str) {
    (status_of(e.kind()), e.code().as_str())
}

/// Adds `Retry-After` to a rate-limited answer.
fn with_retry_after(e: &Error, mut answer: HttpResponse) -> HttpResponse {
    if let Error::RateLimited { retry_after_secs } = e {
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, (*retry_after_secs).into());
    }
    answer
}

fn log(e: &Error) {
    let (status, code) = status_and_code(e);
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), code, error = %e, "request failed");
    } else {
        tracing::info!(status = status.as_u16(), code, error = %e, "request refused");
    }
}

/// An error shown to a person in a browser, as a small HTML page.
#[derive(Debug)]
pub(crate) struct Page(pub(crate) Error);

/// An error answered to a program, as a JSON:API error document.
#[derive(Debug)]
pub(crate) struct Api(pub(crate) Error);

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

impl<E: Into<Error>> From<E> for Page {
    fn from(e: E) -> Self {
        Page(e.into())
    }
}

impl<E: Into<Error>> From<E> for Api {
    fn from(e: E) -> Self {
        Api(e.into())
    }
}

/// The 308 to an instance's new domain (the extractor made the full URL).
fn moved(e: &Error) -> Option<HttpResponse> {
    let Error::Moved(to) = e else { return None };
    Some(
        HttpResponse::PermanentRedirect()
            .insert_header((header::LOCATION, to.as_str()))
            .finish(),
    )
}

/// cozy-stack's own answer to a refused cozy token or permission: `{"error": ..}`, with
/// `WWW-Authenticate` on a bad token (`web/errors`).
fn cozy_refusal(e: &Error) -> Option<HttpResponse> {
    let (status, message) = match e {
        Error::CozyToken(j) => (StatusCode::BAD_REQUEST, j.to_string()),
        Error::NotAllowed => (StatusCode::FORBIDDEN, "Forbidden".to_owned()),
        _ => return None,
    };
    let mut answer = HttpResponse::build(status);
    if matches!(e, Error::CozyToken(_)) {
        answer.insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""));
    }
    Some(answer.json(json!({ "error": message })))
}

impl ResponseError for Page {
    fn status_code(&self) -> StatusCode {
        status_and_code(&self.0).0
    }

    fn error_response(&self) -> HttpResponse {
        log(&self.0);
        if let Some(answer) = moved(&self.0) {
            return answer;
        }
        let (status, code) = status_and_code(&self.0);
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
        with_retry_after(&self.0, answer)
    }
}

impl ResponseError for Api {
    fn status_code(&self) -> StatusCode {
        status_and_code(&self.0).0
    }

    fn error_response(&self) -> HttpResponse {
        log(&self.0);
        if let Some(answer) = moved(&self.0).or_else(|| cozy_refusal(&self.0)) {
            return answer;
        }
        let (status, code) = status_and_code(&self.0);
        with_retry_after(&self.0, jsonapi_error(status, code, &self.0.to_string()))
    }
}

/// A JSON:API error document, `source` always present as cozy-stack writes it.
pub(crate) fn jsonapi_error(status: StatusCode, code: &str, detail: &str) -> HttpResponse {
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
pub(crate) fn render_page(title: &str, message: &str, hint: &str, code: &str) -> String {
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
pub(crate) fn escape_html(s: &str) -> String {
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
    fn a_dead_refresh_token_answers_401_as_cozy_stack() {
        let (status, code) = status_and_code(&Error::RefreshTokenRevoked);
        assert_eq!(
            (status.as_u16(), code),
            (401, "oauth_refresh_invalid_token")
        );
    }
}
