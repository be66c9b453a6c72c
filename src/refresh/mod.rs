//! Refreshing an account's tokens: the path the refresh route takes.

use crate::broker::Broker;
use crate::domain::account;
use crate::domain::account_type::service_id_of;
use crate::domain::sealed::SealError;
use crate::domain::Instance;
use crate::oauth::{token_request, ProviderError};
use crate::store::account_types::LookupError;
use crate::store::StoreError;
use serde_json::Value;

/// Why an account was not refreshed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// No such account in the instance.
    #[error("account not found")]
    AccountNotFound,
    /// The account cannot be refreshed by the broker; the reason says why.
    #[error("{0}")]
    NotRefreshable(&'static str),
    /// The account's type is unknown or misconfigured.
    #[error(transparent)]
    AccountType(#[from] LookupError),
    /// The provider says the refresh token is dead: the user must reconnect.
    #[error("the refresh token is invalid or expired")]
    InvalidToken,
    /// The provider failed otherwise.
    #[error(transparent)]
    Provider(ProviderError),
    /// The stored refresh token cannot be opened with the configured keys.
    #[error("the stored refresh token cannot be opened: {0}")]
    Sealed(SealError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refreshes account `id` of `inst` and returns the saved document.
pub async fn refresh_account(
    broker: &Broker,
    inst: &Instance,
    id: &str,
) -> Result<Value, RefreshError> {
    let doc = broker
        .accounts
        .get(inst, id)
        .await?
        .ok_or(RefreshError::AccountNotFound)?;
    if !doc.get("oauth").is_some_and(Value::is_object) {
        return Err(RefreshError::NotRefreshable(
            "this account has no OAuth tokens",
        ));
    }
    let type_id = doc
        .get("account_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let at = broker
        .account_types
        .lookup(service_id_of(type_id), inst.context.as_deref())
        .await?;

    if at.token_endpoint.is_none() {
        // The konnector exchanges and refreshes by itself: hand it the client, as cozy-stack does.
        let client_id = at.client_id.as_ref().map(|c| c.as_str().to_owned());
        let client_secret = at.client_secret.as_ref().map(|c| c.secret().clone());
        return Ok(broker
            .accounts
            .update_with(inst, doc, |d| {
                if let Some(oauth) = d.get_mut("oauth").and_then(Value::as_object_mut) {
                    if let Some(id) = &client_id {
                        oauth.insert("client_id".into(), id.clone().into());
                    }
                    if let Some(secret) = &client_secret {
                        oauth.insert("client_secret".into(), secret.clone().into());
                    }
                }
            })
            .await?);
    }

    let refresh_token = broker
        .accounts
        .refresh_token(&doc)
        .map_err(RefreshError::Sealed)?
        .map(oauth2::RefreshToken::new)
        .ok_or(RefreshError::NotRefreshable(
            "this account has no refresh token; reconnect it",
        ))?;
    let request =
        token_request::refresh(&at, &refresh_token).expect("token endpoint checked above");
    let grant = broker.provider.request_token(&request).await.map_err(|e| {
        tracing::warn!(account_type = at.service_id(), error = %e, "refresh failed at the provider");
        if e.is_invalid_token() {
            RefreshError::InvalidToken
        } else {
            RefreshError::Provider(e)
        }
    })?;
    let saved = broker
        .accounts
        .update_with(inst, doc, |d| account::apply_refresh(d, &grant))
        .await?;
    tracing::info!(account_type = at.service_id(), "account refreshed");
    Ok(saved)
}
