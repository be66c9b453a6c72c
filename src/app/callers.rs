//! Who may call: the operator's admin token, an instance's API token, a one-time session
//! code. The HTTP extractors and the CLI ask here; nothing else checks a credential.

use super::Error;
use crate::domain::secret::sha256_hex;
use crate::domain::{Clock, Domain, Instance, TokenScope};
use crate::store::credentials::Credentials;
use crate::store::instances::Instances;
use subtle::ConstantTimeEq;

/// A secret setting whose `Debug` does not show it.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub(crate) fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The secret itself, for a comparison or a request.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A caller acting for an instance, within its token's limits.
#[derive(Debug, Clone)]
pub(crate) struct InstanceAccess {
    /// The instance.
    pub(crate) instance: Instance,
    /// What the credential allows (session codes and the operator: everything).
    pub(crate) scope: TokenScope,
}

/// Checks credentials.
pub(crate) struct Callers {
    pub(crate) credentials: Credentials,
    pub(crate) instances: Instances,
    pub(crate) admin_token: Option<Secret>,
    pub(crate) clock: Clock,
}

impl Callers {
    /// Checks the admin bearer token in constant time.
    pub(crate) fn admin(&self, presented: Option<&str>) -> Result<(), Error> {
        let expected = self.admin_token.as_ref().ok_or(Error::AdminDisabled)?;
        let presented = presented.ok_or(Error::AdminUnauthorized)?;
        // Hashing first makes the comparison independent of the lengths.
        let same: bool = sha256_hex(presented)
            .as_bytes()
            .ct_eq(sha256_hex(expected.expose()).as_bytes())
            .into();
        if same {
            Ok(())
        } else {
            Err(Error::AdminUnauthorized)
        }
    }

    /// The instance an API token acts for, and its limits; an expired token is refused.
    pub(crate) async fn instance_by_token(
        &self,
        token: Option<&str>,
    ) -> Result<InstanceAccess, Error> {
        let token = token.ok_or(Error::NoCredentials)?;
        let (domain, scope) = self.live_token(token).await?;
        let instance = self.instance(&domain).await?.ok_or(Error::BadCredentials)?;
        Ok(InstanceAccess { instance, scope })
    }

    async fn live_token(&self, token: &str) -> Result<(Domain, TokenScope), Error> {
        let (domain, scope) = self
            .credentials
            .instance_for_api_token(token)
            .await?
            .ok_or(Error::BadCredentials)?;
        if !scope.is_live(self.clock.now()) {
            return Err(Error::BadCredentials);
        }
        Ok((domain, scope))
    }

    /// The instance `start` acts for: a one-time session code (spent here), else an API
    /// token.
    pub(crate) async fn instance_for_start(
        &self,
        session_code: Option<&str>,
        token: Option<&str>,
    ) -> Result<InstanceAccess, Error> {
        let (domain, scope) = match (session_code, token) {
            (Some(code), _) => (
                self.credentials
                    .redeem_session_code(code, self.clock.now())
                    .await?
                    .ok_or(Error::BadCredentials)?,
                TokenScope::default(),
            ),
            (None, Some(token)) => self.live_token(token).await?,
            (None, None) => return Err(Error::LoginRequired),
        };
        let instance = self
            .instance(&domain)
            .await?
            .ok_or_else(|| Error::UnknownInstance(domain.to_string()))?;
        Ok(InstanceAccess { instance, scope })
    }

    async fn instance(&self, domain: &Domain) -> Result<Option<Instance>, Error> {
        Ok(self.instances.get(domain).await?)
    }
}
