//! Ending an account: its tokens are revoked at the provider (RFC 7009) when the type
//! declares a `revocation_endpoint`, then the account and its refresh plan are deleted.

use super::RefreshError;
use crate::broker::Broker;
use crate::domain::account_type::service_id_of;
use crate::domain::Instance;
use crate::oauth::token_request;
use serde_json::Value;

/// Revokes then deletes account `id`; `true` when the provider was told.
pub async fn revoke_and_delete(
    broker: &Broker,
    inst: &Instance,
    id: &str,
) -> Result<bool, RefreshError> {
    let doc = broker
        .accounts
        .get(inst, id)
        .await?
        .ok_or(RefreshError::AccountNotFound)?;
    let type_id = doc
        .get("account_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let revoked = match broker
        .account_types
        .lookup(service_id_of(type_id), inst.context.as_deref())
        .await
    {
        Ok(at) => {
            let provider = crate::domain::account::provider_url_of(&doc);
            let at = broker.client_type(&at, provider.as_ref()).await?;
            let refresh = broker
                .accounts
                .refresh_token(&doc)
                .map_err(RefreshError::Sealed)?;
            let access = doc
                .pointer("/oauth/access_token")
                .and_then(Value::as_str)
                .map(str::to_owned);
            // Revoking the refresh token ends the grant; without one, the access token.
            let token = refresh
                .map(|t| (t, "refresh_token"))
                .or(access.map(|t| (t, "access_token")));
            match token.and_then(|(t, hint)| token_request::revocation(&at, &t, hint)) {
                Some(request) => {
                    broker
                        .metrics
                        .time_provider("revoke", broker.provider.revoke(&request))
                        .await
                        .map_err(RefreshError::Provider)?;
                    true
                }
                None => false,
            }
        }
        // A type that is gone cannot be asked to revoke; the account still goes.
        Err(e) => {
            tracing::warn!(error = %e, "account type unusable; deleting without revocation");
            false
        }
    };
    broker.accounts.delete(inst, &doc).await?;
    if let Err(e) = broker.schedule.clear(&inst.domain, id).await {
        tracing::warn!(error = %e, "could not clear the refresh schedule");
    }
    tracing::info!(instance = %inst.domain, revoked, "account deleted");
    Ok(revoked)
}
