//! Operator actions, the same for the admin API and the command line: account types,
//! instances, credentials, registered clients, key rotation, account removal.

use super::accounts::AccountActions;
use super::audit::{Actor, Audit};
use super::callers::{InstanceAccess, Scope};
use super::clients::Clients;
use super::registrations::{registration_id, Registrations};
use super::Error;
use crate::domain::account_health::{summarize, ProviderHealth};
use crate::domain::account_type::redacted;
use crate::domain::secret::fingerprint;
use crate::domain::secret::Credential;
use crate::domain::ErrorCode;
use crate::domain::{AccountType, Clock, Domain, Instance, Timestamp, TokenScope};
use crate::store::account_types::AccountTypes;
use crate::store::accounts::Accounts;
use crate::store::audit::AuditEntry;
use crate::store::credentials::Credentials;
use crate::store::health_records::HealthRecords;
use crate::store::health_records::{Filter, Page};
use crate::store::instances::Instances;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// What `keys rotate` did.
#[derive(Debug, Default)]
pub(crate) struct Rotation {
    /// Account types re-sealed.
    pub(crate) account_types: usize,
    /// Accounts re-sealed.
    pub(crate) accounts: usize,
    /// Registered clients re-sealed.
    pub(crate) registered_clients: usize,
    /// Documents that could not be re-sealed: (what, why).
    pub(crate) failed: Vec<(String, String)>,
}

/// Operator actions.
pub(crate) struct Admin {
    pub(crate) account_types: Arc<AccountTypes>,
    pub(crate) instances: Instances,
    pub(crate) credentials: Credentials,
    pub(crate) accounts: Accounts,
    pub(crate) registrations: Arc<Registrations>,
    pub(crate) clients: Arc<Clients>,
    pub(crate) account_actions: Arc<AccountActions>,
    pub(crate) clock: Clock,
    /// Session code lifetime.
    pub(crate) session_code_ttl: Duration,
    /// Where state-changing actions are recorded.
    pub(crate) audit: Audit,
    /// Accounts' refresh health.
    pub(crate) health: HealthRecords,
}

impl Admin {
    /// Every account type document, secrets redacted.
    pub(crate) async fn account_types(&self) -> Result<Vec<Value>, Error> {
        Ok(self
            .account_types
            .list_documents()
            .await?
            .iter()
            .map(redacted)
            .collect())
    }

    /// One account type document, secrets redacted.
    pub(crate) async fn account_type(&self, id: &str) -> Result<Value, Error> {
        self.account_types
            .get_document(id)
            .await?
            .map(|d| redacted(&d))
            .ok_or(Error::NotFound("account type"))
    }

    /// The stored document with its secret opened, to compare a new one against (the
    /// CLI's `diff`); never for display.
    pub(crate) async fn account_type_opened(&self, id: &str) -> Result<Option<Value>, Error> {
        Ok(self.account_types.get_opened(id).await?)
    }

    /// Validates and stores an account type; returns it and its new revision.
    pub(crate) async fn put_account_type(
        &self,
        actor: &Actor,
        doc: Value,
    ) -> Result<(AccountType, String), Error> {
        let (at, rev) = self.account_types.put(doc).await?;
        tracing::info!(account_type = %at.id, "account type stored");
        self.audit.record(actor, "account_type.put", &at.id).await;
        Ok((at, rev))
    }

    /// Deletes an account type.
    pub(crate) async fn delete_account_type(&self, actor: &Actor, id: &str) -> Result<(), Error> {
        if self.account_types.delete(id).await? {
            tracing::info!(account_type = %id, "account type deleted");
            self.audit.record(actor, "account_type.delete", id).await;
            Ok(())
        } else {
            Err(Error::NotFound("account type"))
        }
    }

    /// Adds an instance; its prefix is computed as cozy-stack does.
    pub(crate) async fn add_instance(
        &self,
        actor: &Actor,
        domain: &str,
        context: Option<String>,
    ) -> Result<Instance, Error> {
        let inst = self.instances.add(parse_domain(domain)?, context).await?;
        tracing::info!(instance = %inst.domain, "instance added");
        self.audit
            .record(actor, "instance.add", inst.domain.as_str())
            .await;
        Ok(inst)
    }

    /// Every instance.
    pub(crate) async fn instances(&self) -> Result<Vec<Instance>, Error> {
        Ok(self.instances.list().await?)
    }

    /// The instance of a domain, which must exist.
    pub(crate) async fn instance(&self, raw: &str) -> Result<Instance, Error> {
        let domain = parse_domain(raw)?;
        self.instances
            .get(&domain)
            .await?
            .ok_or_else(|| Error::UnknownInstance(domain.to_string()))
    }

    /// Issues a one-time session code for `start`, and its lifetime.
    pub(crate) async fn issue_session_code(
        &self,
        actor: &Actor,
        domain: &str,
    ) -> Result<(Credential, Duration), Error> {
        let inst = self.instance(domain).await?;
        let expires = self.clock.now().plus(self.session_code_ttl);
        let code = self
            .credentials
            .issue_session_code(&inst.domain, expires)
            .await?;
        self.audit
            .record(actor, "session_code.issue", inst.domain.as_str())
            .await;
        Ok((code, self.session_code_ttl))
    }

    /// Issues an instance API token (shown once), valid for `lifetime` if given and for
    /// the account types listed if any.
    pub(crate) async fn issue_api_token(
        &self,
        actor: &Actor,
        domain: &str,
        lifetime: Option<Duration>,
        account_types: Option<Vec<String>>,
    ) -> Result<Credential, Error> {
        let inst = self.instance(domain).await?;
        if let Some(types) = &account_types {
            for t in types {
                crate::domain::account_type::validate_id(t).map_err(|e| Error::BadRequest {
                    code: ErrorCode::InvalidAccountType,
                    detail: format!("account_types: `{t}`: {}", e.reason),
                })?;
            }
        }
        let now = self.clock.now();
        let scope = TokenScope {
            expires_at: lifetime.map(|l| now.plus(l).unix_secs()),
            account_types,
        };
        let token = self
            .credentials
            .issue_api_token(&inst.domain, now, &scope)
            .await?;
        tracing::info!(instance = %inst.domain, "API token issued");
        self.audit
            .record(actor, "api_token.issue", inst.domain.as_str())
            .await;
        Ok(token)
    }

    /// Revokes an instance API token.
    pub(crate) async fn revoke_api_token(&self, actor: &Actor, token: &str) -> Result<(), Error> {
        if self.credentials.revoke_api_token(token).await? {
            tracing::info!("API token revoked");
            // The token itself never goes in: a fingerprint tells which one it was.
            let target = format!("token:{}", fingerprint(token));
            self.audit.record(actor, "api_token.revoke", &target).await;
            Ok(())
        } else {
            Err(Error::NotFound("token"))
        }
    }

    /// Every registered client, secrets redacted.
    pub(crate) async fn registered_clients(&self) -> Result<Vec<Value>, Error> {
        Ok(self.registrations.list().await?)
    }

    /// One registered client, secrets redacted: the stored copy, or with `remote` what
    /// the provider says now (RFC 7592 read).
    pub(crate) async fn registered_client(&self, id: &str, remote: bool) -> Result<Value, Error> {
        Ok(if remote {
            self.registrations.read_at_provider(id).await?
        } else {
            self.registrations.get(id).await?
        })
    }

    /// Registers now rather than at the first connection; returns the registration id and
    /// the client id.
    pub(crate) async fn register_client(
        &self,
        actor: &Actor,
        account_type: &str,
        provider_url: Option<&str>,
    ) -> Result<(String, String), Error> {
        let at = self.account_types.lookup_id(account_type).await?;
        if !at.registers() {
            return Err(Error::BadRequest {
                code: ErrorCode::NotRegistering,
                detail: format!(
                    "account type `{account_type}` has a fixed client (no registration_endpoint)"
                ),
            });
        }
        let provider = self
            .clients
            .parse_provider_url(&at, provider_url.unwrap_or_default())?;
        let registered = self.clients.resolve(&at, provider.as_ref()).await?;
        let id = registration_id(&at.id, provider.as_ref());
        let client_id = registered
            .client_id
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        self.audit.record(actor, "registration.add", &id).await;
        Ok((id, client_id))
    }

    /// Sends the client's metadata again (RFC 7592 update), with a new secret on request.
    pub(crate) async fn update_registered_client(
        &self,
        actor: &Actor,
        id: &str,
        reset_secret: bool,
    ) -> Result<Value, Error> {
        let updated = self.clients.update_registration(id, reset_secret).await?;
        let action = if reset_secret {
            "registration.reset_secret"
        } else {
            "registration.update"
        };
        self.audit.record(actor, action, id).await;
        Ok(updated)
    }

    /// Deletes the client at the provider (RFC 7592) and here.
    pub(crate) async fn unregister_client(&self, actor: &Actor, id: &str) -> Result<(), Error> {
        self.registrations.unregister(id).await?;
        self.audit.record(actor, "registration.remove", id).await;
        Ok(())
    }

    /// Revokes an account's tokens at the provider and deletes it; `true` when revoked.
    pub(crate) async fn delete_account(
        &self,
        actor: &Actor,
        domain: &str,
        id: &str,
    ) -> Result<bool, Error> {
        let instance = self.instance(domain).await?;
        let operator = InstanceAccess {
            instance,
            scope: Scope::all(),
        };
        self.account_actions
            .revoke_and_delete(actor, &operator, id)
            .await
    }

    /// A page of accounts' refresh health, with the cursor of the next one.
    pub(crate) async fn accounts_health(
        &self,
        filter: &Filter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, Error> {
        Ok(self.health.page(filter, after, limit).await?)
    }

    /// Each provider's health, summed up from its accounts'.
    pub(crate) async fn providers_health(&self) -> Result<Vec<ProviderHealth>, Error> {
        Ok(summarize(&self.health.all().await?))
    }

    /// Audit entries since `since`, a page at a time.
    pub(crate) async fn audit_since(
        &self,
        since: Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<String>), Error> {
        Ok(self.audit.since(since, after, limit).await?)
    }

    /// Re-seals every client secret (and sealed refresh token) with the newest key.
    pub(crate) async fn rotate_keys(&self, actor: &Actor) -> Result<Rotation, Error> {
        let rotation = self.rotate_keys_unrecorded().await?;
        self.audit.record(actor, "keys.rotate", "all").await;
        Ok(rotation)
    }

    async fn rotate_keys_unrecorded(&self) -> Result<Rotation, Error> {
        let (account_types, failed) = self.account_types.reseal_all().await?;
        let mut rotation = Rotation {
            account_types,
            failed: failed
                .into_iter()
                .map(|(id, why)| (format!("account type `{id}`"), why))
                .collect(),
            ..Rotation::default()
        };
        let (clients, failed) = self.registrations.reseal_all().await?;
        rotation.registered_clients = clients;
        rotation.failed.extend(
            failed
                .into_iter()
                .map(|(id, why)| (format!("registered client `{id}`"), why)),
        );
        for inst in self.instances.list().await? {
            let (n, failed) = self.accounts.reseal_all(&inst).await?;
            rotation.accounts += n;
            rotation.failed.extend(
                failed
                    .into_iter()
                    .map(|(id, why)| (format!("account `{}/{id}`", inst.domain), why)),
            );
        }
        Ok(rotation)
    }
}

fn parse_domain(raw: &str) -> Result<Domain, Error> {
    Domain::parse(raw).map_err(|detail| Error::BadRequest {
        code: ErrorCode::InvalidDomain,
        detail,
    })
}
