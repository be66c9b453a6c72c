//! Account use cases besides flows and refresh: a client-credentials account created on
//! request, the status of an account's token, and an account revoked and deleted.

use super::account_health::HealthLog;
use super::callers::{InstanceAccess, Verb};
use super::clients::Clients;
use super::refresh_plan::RefreshPlan;
use super::Error;
use crate::domain::account::Account;
use crate::domain::account_health::AccountHealth;
use crate::domain::ErrorCode;
use crate::domain::{AccountType, Classified, Clock, ErrorKind, GrantMode, Timestamp};
use crate::metrics::Metrics;
use crate::oauth::{provider_request, ProviderClient, ProviderError};
use crate::store::account_types::AccountTypes;
use crate::store::accounts::Accounts;
use crate::webhooks::{Event, Kind, Webhooks};
use serde_json::{Map, Value};
use std::sync::Arc;

/// What an account's access token is worth now.
#[derive(Debug)]
pub(crate) struct TokenStatus {
    /// Whether the token works.
    pub(crate) active: bool,
    /// When it stops working, if known.
    pub(crate) expires_at: Option<Timestamp>,
    /// The scope it carries, if known.
    pub(crate) scope: Option<String>,
    /// `introspection` (the provider said) or `stored` (from what the broker stored).
    pub(crate) source: &'static str,
    /// Whether the account waits for its user to reconnect.
    pub(crate) reconnect_needed: bool,
}

/// Account use cases.
pub(crate) struct AccountActions {
    pub(crate) accounts: Accounts,
    pub(crate) account_types: Arc<AccountTypes>,
    pub(crate) clients: Arc<Clients>,
    pub(crate) plan: RefreshPlan,
    pub(crate) health: Arc<HealthLog>,
    pub(crate) provider: ProviderClient,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) webhooks: Webhooks,
    pub(crate) clock: Clock,
    pub(crate) audit: super::audit::Audit,
    /// The newest grants kept aside, forgotten with their account.
    pub(crate) newest: crate::store::newest_grants::NewestGrants,
}

impl AccountActions {
    /// The account `id` of `inst` with its type, resolved to its client, when the account
    /// is of service `service_id` (any type when `None`) and the caller may act on its
    /// type: checked before the client is resolved, which may register at the provider.
    async fn with_client(
        &self,
        access: &InstanceAccess,
        id: &str,
        service_id: Option<&str>,
        verb: Verb,
    ) -> Result<(Account, Result<Arc<AccountType>, Error>), Error> {
        let inst = &access.instance;
        let doc = self
            .accounts
            .get(inst, id)
            .await?
            .ok_or(Error::NotFound("account"))?;
        let its_service = doc.service();
        if service_id.is_some_and(|s| s != its_service) {
            return Err(Error::NotFound("account of this type"));
        }
        access.scope.check_account(verb, &doc)?;
        let client = self
            .clients
            .for_account(inst.context.as_deref(), &doc)
            .await;
        Ok((doc, client))
    }

    /// For a `client_credentials` type, obtains a token with the type's own credentials
    /// and stores it as a new account, kept fresh by the refresher. Returns the account.
    pub(crate) async fn create_client_credentials(
        &self,
        access: &InstanceAccess,
        service_id: &str,
    ) -> Result<Account, Error> {
        access.scope.check_type(Verb::Post, service_id)?;
        let inst = &access.instance;
        let at = self
            .account_types
            .lookup(service_id, inst.context.as_deref())
            .await?;
        let request = provider_request::client_credentials(&at)
            .filter(|_| at.grant_mode == Some(GrantMode::ClientCredentials))
            .ok_or_else(|| Error::BadRequest {
                code: ErrorCode::NotClientCredentials,
                detail: format!(
                    "account type `{}` is not a client_credentials type: use its start route",
                    at.id
                ),
            })?;
        let grant = self
            .metrics
            .time_provider("client_credentials", self.provider.request_token(&request))
            .await
            .inspect_err(|e| {
                tracing::warn!(account_type = at.service_id(), error = %e, "client credentials token refused");
            })?;
        let doc = Account::from_token_grant(at.service_id(), &grant);
        let id = self.accounts.create(inst, &doc).await?;
        let mut healthy = AccountHealth::new(inst.domain.as_str(), &id, at.service_id());
        healthy.last_success_at = Some(self.clock.now().unix_secs());
        self.plan.plan(inst, &id, &doc, &at, Some(&healthy)).await;
        self.webhooks
            .emit(Event {
                kind: Kind::AccountCreated,
                instance: inst.domain.to_string(),
                account_id: id.clone(),
                account_type: at.service_id().to_owned(),
                error: None,
                at: self.clock.now(),
            })
            .await;
        self.accounts
            .get(inst, &id)
            .await?
            .ok_or(Error::NotFound("account"))
    }

    /// What the account's token is worth: the provider says when the type has an
    /// introspection endpoint (RFC 7662), else the broker answers from what it stored.
    pub(crate) async fn status(
        &self,
        access: &InstanceAccess,
        service_id: &str,
        id: &str,
    ) -> Result<TokenStatus, Error> {
        let (doc, at) = self
            .with_client(access, id, Some(service_id), Verb::Get)
            .await?;
        let at = at?;
        let token = doc.access_token().filter(|t| !t.is_empty());
        let reconnect_needed = doc.reconnect_needed();
        if let Some(request) = token.and_then(|t| provider_request::introspection(&at, t)) {
            let (_, reply) = self
                .metrics
                .time_provider("introspect", self.provider.form_json(&request))
                .await?;
            let mut status = introspected(&reply).ok_or(ProviderError::Garbage { status: 200 })?;
            status.reconnect_needed = reconnect_needed;
            return Ok(status);
        }
        let expires_at = doc.expires_at();
        let now = self.clock.now().to_datetime();
        Ok(TokenStatus {
            active: token.is_some() && !reconnect_needed && expires_at.is_none_or(|e| e > now),
            expires_at: expires_at.map(|t| Timestamp::from_unix_millis(t.timestamp_millis())),
            scope: doc.granted_scope().map(str::to_owned),
            source: "stored",
            reconnect_needed,
        })
    }

    /// Revokes the tokens at the provider when it can (RFC 7009), then deletes the account
    /// and its refresh plan; `true` when the provider was told.
    pub(crate) async fn revoke_and_delete(
        &self,
        actor: &super::audit::Actor,
        access: &InstanceAccess,
        id: &str,
    ) -> Result<bool, Error> {
        let inst = &access.instance;
        let (doc, at) = self.with_client(access, id, None, Verb::Delete).await?;
        let revoked = match at {
            Ok(at) => {
                let refresh =
                    self.accounts
                        .refresh_token(inst, &doc)
                        .map_err(|error| Error::Sealed {
                            what: "the stored refresh token",
                            error,
                        })?;
                let access = doc.access_token().map(str::to_owned);
                // Revoking the refresh token ends the grant; without one, the access token.
                let token = refresh
                    .map(|t| (t, "refresh_token"))
                    .or(access.map(|t| (t, "access_token")));
                match token.and_then(|(t, hint)| provider_request::revocation(&at, &t, hint)) {
                    Some(request) => {
                        self.metrics
                            .time_provider("revoke", self.provider.revoke(&request))
                            .await?;
                        true
                    }
                    None => false,
                }
            }
            // A type that is gone cannot be asked to revoke; the account still goes.
            Err(Error::AccountType(e)) if e.kind() != ErrorKind::Unavailable => {
                tracing::warn!(error = %e, "account type unusable; deleting without revocation");
                false
            }
            Err(e) => return Err(e),
        };
        self.accounts.delete(inst, &doc).await?;
        self.plan.forget(inst, id).await;
        self.health.forget(inst.domain.as_str(), id).await;
        if let Err(e) = self
            .newest
            .forget(&super::renewal::account_key(inst, id))
            .await
        {
            tracing::warn!(error = %e, "the deleted account's newest grant stays aside");
        }
        tracing::info!(instance = %inst.domain, revoked, "account deleted");
        self.audit
            .record(actor, "account.delete", &format!("{}/{id}", inst.domain))
            .await;
        Ok(revoked)
    }
}

/// The RFC 7662 reply's `active`, `exp` and `scope`; `None` without a boolean `active`.
fn introspected(reply: &Map<String, Value>) -> Option<TokenStatus> {
    Some(TokenStatus {
        active: reply.get("active")?.as_bool()?,
        expires_at: reply
            .get("exp")
            .and_then(Value::as_i64)
            .map(Timestamp::from_unix_secs),
        scope: reply
            .get("scope")
            .and_then(Value::as_str)
            .map(str::to_owned),
        source: "introspection",
        reconnect_needed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_introspection_reply_without_a_boolean_active_is_garbage() {
        let m = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert!(introspected(&m(json!({"active": "true"}))).is_none());
        assert!(introspected(&m(json!({"exp": 1}))).is_none());
        let ok = introspected(&m(
            json!({"active": true, "exp": 2000000000, "scope": "a b"}),
        ))
        .unwrap();
        assert_eq!(ok.expires_at.unwrap().to_rfc3339(), "2033-05-18T03:33:20Z");
        assert_eq!(ok.scope.as_deref(), Some("a b"));
    }
}
