//! Beside cozy-stack, one proxy rule sends all of `/accounts/` to the broker; what the
//! broker does not run (account types with a Budget Insight grant mode: connect,
//! reconnect, manage and redirect of banking konnectors) it hands on to cozy-stack
//! unchanged (method, path, query, `Host`, cookies, body), and gives back cozy-stack's
//! answer unchanged. Operators keep no per-type rule in sync.

use crate::app::{Error, Services};
use crate::http::error::Page;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};
use futures::StreamExt;
use std::time::Duration;

/// The most of a request body handed on (BI's requests carry none).
const MAX_BODY: usize = 1024 * 1024;

/// The connection-level headers a proxy does not forward (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// cozy-stack, reached over HTTP.
#[derive(Clone)]
pub(crate) struct StackUpstream {
    base: url::Url,
    http: reqwest::Client,
}

impl StackUpstream {
    /// cozy-stack at `base`.
    pub(crate) fn new(base: url::Url) -> StackUpstream {
        StackUpstream {
            base,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    async fn forward(&self, req: ServiceRequest) -> Result<HttpResponse, Error> {
        let unavailable = |why: String| Error::StackUnavailable(why);
        let (http_req, mut payload) = req.into_parts();
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| unavailable(format!("reading the request: {e}")))?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Error::TooLarge("the request body is larger than 1 MiB"));
            }
            body.extend_from_slice(&chunk);
        }
        let mut url = self.base.clone();
        url.set_path(http_req.path());
        url.set_query(Some(http_req.query_string()).filter(|q| !q.is_empty()));
        let method = reqwest::Method::from_bytes(http_req.method().as_str().as_bytes())
            .map_err(|e| unavailable(e.to_string()))?;
        let mut out = self.http.request(method, url);
        for (name, value) in http_req.headers() {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                out = out.header(name.as_str(), value.as_bytes());
            }
        }
        let answer = out
            .body(body.freeze())
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let mut back = HttpResponse::build(
            actix_web::http::StatusCode::from_u16(answer.status().as_u16())
                .map_err(|e| unavailable(e.to_string()))?,
        );
        for (name, value) in answer.headers() {
            if HOP_BY_HOP.contains(&name.as_str()) || name.as_str() == "content-length" {
                continue;
            }
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_str().as_bytes()),
                HeaderValue::from_bytes(value.as_bytes()),
            ) {
                back.append_header((n, v));
            }
        }
        let bytes = answer
            .bytes()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        Ok(back.body(bytes))
    }
}

/// The account type a path under `/accounts/` names, if any.
fn account_type_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/accounts/")?;
    rest.split('/').next().filter(|t| !t.is_empty())
}

/// Hands requests for account types cozy-stack runs alone to it, when it is configured;
/// serves everything else.
pub(crate) async fn hand_over(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let upstream = req.app_data::<web::Data<StackUpstream>>().cloned();
    let services = req.app_data::<web::Data<Services>>().cloned();
    let stays = match (
        &upstream,
        &services,
        account_type_of(req.path()).map(str::to_owned),
    ) {
        (Some(_), Some(s), Some(t)) => s.stays_on_stack(&t).await,
        _ => false,
    };
    let (Some(upstream), true) = (upstream, stays) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let http_req = req.request().clone();
    tracing::info!(path = %req.path(), "handed to cozy-stack");
    let res = match upstream.forward(req).await {
        Ok(res) => res,
        Err(e) => Page(e).error_response(),
    };
    Ok(ServiceResponse::new(http_req, res))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_is_the_first_segment_under_accounts() {
        assert_eq!(account_type_of("/accounts/bi/start"), Some("bi"));
        assert_eq!(account_type_of("/accounts/bi/acc/reconnect"), Some("bi"));
        assert_eq!(account_type_of("/accounts/"), None);
        assert_eq!(account_type_of("/admin/accounts/x"), None);
    }
}
