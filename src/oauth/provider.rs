//! The one pooled HTTP client that talks to token endpoints.

use super::provider_request::{Method, ProviderRequest};
use super::resolver::DnsPolicy;
use super::token_reply::{self, ReplyError};
use crate::domain::account::TokenGrant;
use crate::domain::error_kind::{Classified, ErrorKind};
use crate::domain::Clock;
use crate::domain::ErrorCode;
use std::time::Duration;

/// Largest token reply read; a bigger one is garbage.
const MAX_REPLY_BYTES: usize = 256 * 1024;

/// Why a token request gave no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Connection refused, DNS failure, TLS failure.
    #[error("the provider could not be reached")]
    Unreachable,
    /// No complete answer within the configured timeout.
    #[error("the provider did not answer in time")]
    Timeout,
    /// The provider refused with an OAuth error code.
    #[error("the provider refused with `{error}` (HTTP {status})")]
    OAuth {
        /// HTTP status of the reply.
        status: u16,
        /// OAuth `error` code.
        error: String,
    },
    /// A reply that is not an OAuth token reply (HTML page, 5xx, redirect...).
    #[error("the provider answered HTTP {status} with something that is not an OAuth reply")]
    Garbage {
        /// HTTP status of the reply.
        status: u16,
    },
    /// A successful reply without any token.
    #[error("the provider answered without an access token")]
    NoAccessToken,
}

impl ProviderError {
    /// The `error` the app is told: the provider's own code when it is a sane one.
    pub fn app_error_code(&self) -> String {
        match self {
            ProviderError::OAuth { error, .. } if is_sane_code(error) => error.clone(),
            _ => "server_error".to_owned(),
        }
    }

    /// Whether the refresh token is dead and the user must reconnect.
    pub fn is_invalid_token(&self) -> bool {
        matches!(self, ProviderError::OAuth { error, .. } if error == "invalid_grant" || error == "invalid_token")
    }
}

/// An OAuth error code safe to echo in a URL and a page: `[a-z0-9_.-]`, at most 64 bytes.
pub fn is_sane_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// Pooled client for providers: bounded time, no redirects followed.
#[derive(Clone, Debug)]
pub struct ProviderClient {
    http: reqwest::Client,
    clock: Clock,
}

impl ProviderClient {
    /// A client that gives up connecting after `connect` and a whole request after `total`;
    /// `clock` dates the replies (`expires_in` counts from their arrival).
    pub fn new(
        connect: Duration,
        total: Duration,
        clock: Clock,
        dns: DnsPolicy,
    ) -> Result<ProviderClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect.min(total))
            .timeout(total)
            // A token endpoint that redirects would take the credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(dns)
            .user_agent(concat!("oauth-broker/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ProviderClient { http, clock })
    }

    /// Sends an RFC 7009 revocation; any 2xx means revoked (RFC 7009 §2.2).
    pub async fn revoke(&self, req: &ProviderRequest) -> Result<(), ProviderError> {
        let resp = self.send(req).await?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            let body = resp.bytes().await.unwrap_or_default();
            match token_reply::parse_members(None, &body)
                .ok()
                .as_ref()
                .and_then(token_reply::oauth_error)
            {
                Some(error) => Err(ProviderError::OAuth { status, error }),
                None => Err(ProviderError::Garbage { status }),
            }
        }
    }

    /// Sends a JSON API request (registration, user info, introspection replies) and
    /// reads a bounded JSON object back; a non-2xx answer is an OAuth error or garbage.
    pub async fn json(
        &self,
        method: reqwest::Method,
        url: &url::Url,
        bearer: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Map<String, serde_json::Value>), ProviderError> {
        let mut builder = self
            .http
            .request(method, url.clone())
            .header("Accept", "application/json");
        if let Some(token) = bearer {
            builder = builder.bearer_auth(token);
        }
        if let Some(b) = body {
            builder = builder.json(b);
        }
        let resp = builder.send().await.map_err(classify)?;
        self.read_json(resp).await
    }

    /// Sends a prepared form request (introspection) and reads a JSON object back.
    pub async fn form_json(
        &self,
        req: &ProviderRequest,
    ) -> Result<(u16, serde_json::Map<String, serde_json::Value>), ProviderError> {
        let resp = self.send(req).await?;
        self.read_json(resp).await
    }

    async fn read_json(
        &self,
        mut resp: reqwest::Response,
    ) -> Result<(u16, serde_json::Map<String, serde_json::Value>), ProviderError> {
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_REPLY_BYTES {
                return Err(ProviderError::Garbage { status });
            }
        }
        if status == 204 && body.is_empty() {
            return Ok((status, serde_json::Map::new()));
        }
        let members = match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        };
        match (members, (200..300).contains(&status)) {
            (Some(m), true) => Ok((status, m)),
            (Some(m), false) => match token_reply::oauth_error(&m) {
                Some(error) => Err(ProviderError::OAuth { status, error }),
                None => Err(ProviderError::Garbage { status }),
            },
            (None, _) => Err(ProviderError::Garbage { status }),
        }
    }

    async fn send(&self, req: &ProviderRequest) -> Result<reqwest::Response, ProviderError> {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut builder = self.http.request(method, req.url.clone());
        for (k, v) in &req.headers {
            builder = builder.header(*k, v);
        }
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        builder.send().await.map_err(classify)
    }

    /// Sends a token request and parses the reply into tokens.
    pub async fn request_token(&self, req: &ProviderRequest) -> Result<TokenGrant, ProviderError> {
        let mut resp = self.send(req).await?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_REPLY_BYTES {
                return Err(ProviderError::Garbage { status });
            }
        }
        let received = self.clock.now().to_datetime();
        let members = match token_reply::parse_members(content_type.as_deref(), &body) {
            Ok(m) => m,
            Err(_) => return Err(ProviderError::Garbage { status }),
        };
        if let Some(error) = token_reply::oauth_error(&members) {
            return Err(ProviderError::OAuth { status, error });
        }
        if status != 200 {
            return Err(ProviderError::Garbage { status });
        }
        token_reply::grant_from_members(members, received).map_err(|e| match e {
            ReplyError::OAuth { error } => ProviderError::OAuth { status, error },
            ReplyError::NotOAuth => ProviderError::Garbage { status },
            ReplyError::NoAccessToken => ProviderError::NoAccessToken,
        })
    }
}

fn classify(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else {
        ProviderError::Unreachable
    }
}

impl Classified for ProviderError {
    fn kind(&self) -> ErrorKind {
        match self {
            ProviderError::Timeout => ErrorKind::UpstreamTimeout,
            ProviderError::OAuth { .. } => ErrorKind::Refused,
            ProviderError::Unreachable
            | ProviderError::Garbage { .. }
            | ProviderError::NoAccessToken => ErrorKind::Upstream,
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            ProviderError::Timeout => ErrorCode::ProviderTimeout,
            _ => ErrorCode::ProviderError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_is_told_sane_codes_only() {
        let e = ProviderError::OAuth {
            status: 400,
            error: "invalid_grant".into(),
        };
        assert_eq!(e.app_error_code(), "invalid_grant");
        let evil = ProviderError::OAuth {
            status: 400,
            error: "x&account=1".into(),
        };
        assert_eq!(evil.app_error_code(), "server_error");
        assert_eq!(ProviderError::Timeout.app_error_code(), "server_error");
    }

    #[test]
    fn invalid_grant_and_invalid_token_mean_reconnect() {
        for code in ["invalid_grant", "invalid_token"] {
            assert!(ProviderError::OAuth {
                status: 400,
                error: code.into()
            }
            .is_invalid_token());
        }
        assert!(!ProviderError::OAuth {
            status: 400,
            error: "invalid_client".into()
        }
        .is_invalid_token());
    }
}
