//! Dynamic client registration as a client: register (RFC 7591), then read, update and
//! delete the registration (RFC 7592) with its access token at its management URL.

use super::{ProviderClient, ProviderError};
use crate::domain::{AccountType, TokenMode};
use reqwest::Method;
use serde_json::{json, Map, Value};
use url::Url;

/// A provider's answer: the client's metadata as it registered it.
pub type Answer = Map<String, Value>;

/// The registration requests, over the provider client.
#[derive(Clone)]
pub struct RegistrationClient {
    provider: ProviderClient,
}

impl RegistrationClient {
    /// Requests through `provider` (its time limits, SSRF rules and no redirects).
    pub fn new(provider: ProviderClient) -> RegistrationClient {
        RegistrationClient { provider }
    }

    /// Registers a client with `metadata` at `endpoint` (RFC 7591 §3.1).
    pub async fn register(
        &self,
        endpoint: &Url,
        metadata: Answer,
    ) -> Result<Answer, ProviderError> {
        let body = Value::Object(metadata);
        let (_, answer) = self
            .provider
            .json(Method::POST, endpoint, None, Some(&body))
            .await?;
        Ok(answer)
    }

    /// What the provider says of the client now (RFC 7592 §2.1).
    pub async fn read(&self, uri: &Url, token: &str) -> Result<Answer, ProviderError> {
        let (_, answer) = self
            .provider
            .json(Method::GET, uri, Some(token), None)
            .await?;
        Ok(answer)
    }

    /// Replaces the client's metadata (RFC 7592 §2.2).
    pub async fn update(
        &self,
        uri: &Url,
        token: &str,
        body: Answer,
    ) -> Result<Answer, ProviderError> {
        let body = Value::Object(body);
        let (_, answer) = self
            .provider
            .json(Method::PUT, uri, Some(token), Some(&body))
            .await?;
        Ok(answer)
    }

    /// Deletes the client (RFC 7592 §2.3).
    pub async fn delete(&self, uri: &Url, token: &str) -> Result<(), ProviderError> {
        self.provider
            .json(Method::DELETE, uri, Some(token), None)
            .await
            .map(|_| ())
    }
}

/// The metadata registered for `at`: its `client_metadata`, with RFC 7591 defaults for a
/// code flow client of this broker.
pub fn metadata_for(at: &AccountType, redirect_uri: &str) -> Answer {
    let mut m = at.client_metadata.clone();
    m.entry("redirect_uris")
        .or_insert_with(|| json!([redirect_uri]));
    m.entry("grant_types")
        .or_insert_with(|| json!(["authorization_code", "refresh_token"]));
    m.entry("response_types").or_insert_with(|| json!(["code"]));
    m.entry("token_endpoint_auth_method").or_insert_with(|| {
        match at.token_mode {
            TokenMode::Basic | TokenMode::BasicRfc6749 => "client_secret_basic",
            _ => "client_secret_post",
        }
        .into()
    });
    m.entry("client_name")
        .or_insert_with(|| format!("oauth-broker ({})", at.service_id()).into());
    m.entry("software_id")
        .or_insert_with(|| "github.com/oauth-broker/oauth-broker".into());
    m.entry("software_version")
        .or_insert_with(|| env!("CARGO_PKG_VERSION").into());
    m
}
