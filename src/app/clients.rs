//! Client resolution: an account type as a flow or an account uses it, pointed at its
//! provider (per-account types) and given its registered client (registering types).

use super::registrations::{registration_id, Registrations};
use super::Error;
use crate::domain::account::Account;
use crate::domain::provider_url::ProviderUrl;
use crate::domain::{AccountType, Clock, Domain, Scheme};
use crate::store::account_types::AccountTypes;
use std::sync::Arc;
use url::Url;

/// Resolves the OAuth client of account types.
pub(crate) struct Clients {
    account_types: Arc<AccountTypes>,
    pub(crate) registrations: Arc<Registrations>,
    public_url: Url,
    insecure_provider_urls: bool,
    clock: Clock,
    /// The scheme of instance URLs (default redirect URIs on the instance's host).
    scheme: Scheme,
}

impl Clients {
    /// Resolution over the stored types and registrations.
    pub(crate) fn new(
        account_types: Arc<AccountTypes>,
        registrations: Arc<Registrations>,
        public_url: Url,
        insecure_provider_urls: bool,
        clock: Clock,
        scheme: Scheme,
    ) -> Clients {
        Clients {
            account_types,
            registrations,
            public_url,
            insecure_provider_urls,
            clock,
            scheme,
        }
    }

    /// The default redirect URI of a service: `{public_url}/accounts/{service}/redirect`.
    pub(crate) fn default_redirect_uri(&self, service_id: &str) -> String {
        format!(
            "{}/accounts/{service_id}/redirect",
            self.public_url.as_str().trim_end_matches('/')
        )
    }

    /// The redirect URI of a flow of `at` (as the type is stored, before its client is
    /// resolved) for instance `inst`: the type's `redirect_uri`; else, as cozy-stack, on
    /// the instance's own host; a type that registers its client keeps `public_url`'s,
    /// the one URI its client names for every instance.
    pub(crate) fn flow_redirect_uri(&self, at: &AccountType, inst: &Domain) -> String {
        match &at.redirect_uri {
            Some(u) => u.to_string(),
            None if at.registers() => self.default_redirect_uri(at.service_id()),
            None => format!(
                "{}://{inst}/accounts/{}/redirect",
                self.scheme.as_str(),
                at.service_id()
            ),
        }
    }

    /// The redirect URI a registered client of `at` names.
    pub(crate) fn redirect_uri_of(&self, at: &AccountType) -> String {
        at.redirect_uri.as_ref().map_or_else(
            || self.default_redirect_uri(at.service_id()),
            |u| u.to_string(),
        )
    }

    /// A `provider_url` for `at`, checked against the type's current patterns: one a
    /// caller gives, and one read back from an account, a flow or a registration alike
    /// (an account's owner can edit its document, so nothing stored is trusted).
    pub(crate) fn parse_provider_url(
        &self,
        at: &AccountType,
        raw: &str,
    ) -> Result<Option<ProviderUrl>, Error> {
        match (raw, at.per_account()) {
            ("", _) => Ok(None),
            (_, false) => Err(Error::FixedProvider(at.service_id().to_owned())),
            (raw, true) => Ok(Some(ProviderUrl::parse(
                raw,
                &at.provider_url_patterns,
                self.insecure_provider_urls,
            )?)),
        }
    }

    /// `at` pointed at `provider` when it is a per-account type, and with its registered
    /// client (registering first if needed) when it registers one.
    pub(crate) async fn resolve(
        &self,
        at: &Arc<AccountType>,
        provider: Option<&ProviderUrl>,
    ) -> Result<Arc<AccountType>, Error> {
        let at = match (at.per_account(), provider) {
            (true, Some(p)) => at.with_provider(p),
            (true, None) => return Err(Error::NoProvider(at.service_id().to_owned())),
            (false, Some(_)) => return Err(Error::FixedProvider(at.service_id().to_owned())),
            // The common case stays a shared pointer: no copy on the hot path.
            (false, None) if !at.registers() => return Ok(at.clone()),
            (false, None) => (**at).clone(),
        };
        if !at.registers() {
            return Ok(Arc::new(at));
        }
        let id = registration_id(&at.id, provider);
        let client = self
            .registrations
            .client_for(
                &at,
                &id,
                provider,
                &self.redirect_uri_of(&at),
                self.clock.now(),
            )
            .await?;
        Ok(Arc::new(client.apply(&at)))
    }

    /// The type of an account of `inst`'s context, resolved to the client the account
    /// uses: its own provider (checked again) and its registered client. A type that
    /// cannot be had is an `Error::AccountType`.
    pub(crate) async fn for_account(
        &self,
        context: Option<&str>,
        doc: &Account,
    ) -> Result<Arc<AccountType>, Error> {
        let at = self.account_types.lookup(doc.service(), context).await?;
        let provider = self.parse_provider_url(&at, doc.stored_provider_url())?;
        self.resolve(&at, provider.as_ref()).await
    }

    /// Sends a registered client's metadata again, rotating its secret on request; the
    /// account type it was registered for gives the metadata.
    pub(crate) async fn update_registration(
        &self,
        id: &str,
        reset_secret: bool,
    ) -> Result<serde_json::Value, Error> {
        let stored = self.registrations.get(id).await?;
        let type_id = stored
            .get("account_type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let at = self.account_types.lookup_id(type_id).await?;
        let raw = stored
            .get("provider_url")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let provider = self.parse_provider_url(&at, raw)?;
        let at = match &provider {
            Some(p) => at.with_provider(p),
            None => (*at).clone(),
        };
        Ok(self
            .registrations
            .update(
                id,
                &at,
                provider.as_ref(),
                &self.redirect_uri_of(&at),
                reset_secret,
                self.clock.now(),
            )
            .await?)
    }
}
