//! Who may call, decided in one place: the operator's admin token; cozy-stack's own
//! credentials (session cookie, session code in its Redis, JWTs matched against the
//! instance's permission sets) on an instance's host; the broker's session codes and API
//! tokens for installations without cozy-stack. The HTTP extractors and the CLI ask here;
//! nothing else checks a credential.

use super::Error;
use crate::domain::account::Account;
use crate::domain::cozy::{self, AccountRef, Audience, CozyClaims, JwtError, PermissionSet};
use crate::domain::secret::sha256_hex;
use crate::domain::{Clock, Domain, Instance, Subdomains, TokenScope};
use crate::oauth::id_token::{IdTokenError, IdTokens};
use crate::store::cozy::{CozyDocs, Holder};
use crate::store::cozy_session_codes::{is_cozy_session_code, CozySessionCodes};
use crate::store::credentials::Credentials;
use crate::store::instances::{HostLookup, Instances};
use std::collections::HashMap;
use std::sync::Arc;
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

/// The HTTP verb an action on accounts counts as, for cozy permission rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    /// Read or refresh.
    Get,
    /// Create.
    Post,
    /// Delete.
    Delete,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Delete => "DELETE",
        }
    }
}

/// What a caller may do on the instance's accounts.
#[derive(Debug, Clone)]
pub(crate) enum Scope {
    /// A broker API token's limits (the owner and the operator: none).
    Token(TokenScope),
    /// A cozy-stack token's permission set.
    Cozy(PermissionSet),
}

impl Scope {
    /// No limits: the logged-in owner, the operator, the refresher.
    pub(crate) fn all() -> Scope {
        Scope::Token(TokenScope::default())
    }

    /// Refuses unless the caller may `verb` accounts of service `service_id` in general.
    pub(crate) fn check_type(&self, verb: Verb, service_id: &str) -> Result<(), Error> {
        match self {
            Scope::Token(t) if t.allows(service_id) => Ok(()),
            Scope::Token(_) => Err(Error::TypeNotAllowed(service_id.to_owned())),
            Scope::Cozy(set) if set.allows_type(verb.as_str(), service_id) => Ok(()),
            Scope::Cozy(_) => Err(Error::NotAllowed),
        }
    }

    /// Refuses unless the caller may `verb` the account `doc` (`Allow` in cozy-stack).
    pub(crate) fn check_account(&self, verb: Verb, doc: &Account) -> Result<(), Error> {
        match self {
            Scope::Token(_) => self.check_type(verb, doc.service()),
            Scope::Cozy(set) => {
                let target = AccountRef {
                    id: doc.id(),
                    account_type: doc.account_type(),
                };
                if set.allows(verb.as_str(), target) {
                    Ok(())
                } else {
                    Err(Error::NotAllowed)
                }
            }
        }
    }
}

/// A caller acting for an instance, within its credential's limits.
#[derive(Debug, Clone)]
pub(crate) struct InstanceAccess {
    /// The instance.
    pub(crate) instance: Instance,
    /// What the credential allows.
    pub(crate) scope: Scope,
}

/// What a browser brings to start, reconnect or manage.
#[derive(Debug, Default)]
pub(crate) struct StartCredentials<'a> {
    /// The `Host` it asked for.
    pub(crate) host: Option<&'a str>,
    /// Its cookies, in the order sent.
    pub(crate) cookies: &'a [(String, String)],
    /// `session_code` from the query.
    pub(crate) session_code: Option<&'a str>,
    /// An `Authorization: Bearer` token.
    pub(crate) bearer: Option<&'a str>,
    /// `id_token` from the query (an app embedding Harvest in an OIDC context).
    pub(crate) id_token: Option<&'a str>,
}

/// A cozy session cookie to set: the short-run session `checkLogin` creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionCookie {
    /// `cozysessid` or `sess-<prefix>`.
    pub(crate) name: String,
    /// The MAC'd session id.
    pub(crate) value: String,
    /// `.alice.example` (nested) or `.example` (flat).
    pub(crate) domain: String,
}

/// Who starts a flow, and the session cookie to hand the browser, if any.
#[derive(Debug)]
pub(crate) struct StartAccess {
    /// The instance and the caller's limits.
    pub(crate) access: InstanceAccess,
    /// Set when the login came from a code or a short-run session.
    pub(crate) new_session: Option<SessionCookie>,
}

/// Checks credentials.
pub(crate) struct Callers {
    pub(crate) credentials: Credentials,
    pub(crate) instances: Instances,
    pub(crate) cozy: CozyDocs,
    /// cozy-stack's Redis, when the operator gave it.
    pub(crate) cozy_codes: Option<Arc<CozySessionCodes>>,
    pub(crate) subdomains: Subdomains,
    pub(crate) admin_token: Option<Secret>,
    pub(crate) clock: Clock,
    /// Verifies `id_token` logins.
    pub(crate) id_tokens: IdTokens,
    /// The key set of each context whose `id_token`s log `start` in.
    pub(crate) oidc_keys: HashMap<String, url::Url>,
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

    /// The instance at `host`: `None` for a host that is no instance (the broker's own);
    /// an old domain is refused with where the instance lives now.
    async fn instance_at(&self, host: Option<&str>) -> Result<Option<Instance>, Error> {
        let Some(host) = host else { return Ok(None) };
        // With flat subdomains `alice-home.example` is an app host, never an instance
        // (cozy-stack's `ValidateDomain`).
        if self.subdomains == Subdomains::Flat
            && host.split('.').next().is_some_and(|l| l.contains('-'))
        {
            return Ok(None);
        }
        match self.instances.by_host(host).await? {
            HostLookup::Found(inst) => Ok(Some(inst)),
            HostLookup::Moved(to) => Err(Error::Moved(to.to_string())),
            HostLookup::Unknown => Ok(None),
        }
    }

    /// The instance and limits of an API caller (refresh, status, create, delete): a cozy
    /// JWT on an instance's host, else a broker API token (which must be the host's
    /// instance's when the host is one).
    pub(crate) async fn instance_by_token(
        &self,
        host: Option<&str>,
        token: Option<&str>,
    ) -> Result<InstanceAccess, Error> {
        let token = token.ok_or(Error::NoCredentials)?;
        if cozy::jwt::looks_like_jwt(token) {
            let inst = self.instance_at(host).await?.ok_or(Error::UnknownHost)?;
            let set = self.cozy_permissions(&inst, token).await?;
            return Ok(InstanceAccess {
                instance: inst,
                scope: Scope::Cozy(set),
            });
        }
        // The token first: a guessed one costs one (cached) read, not a host lookup.
        let (domain, scope) = self.live_token(token).await?;
        let instance = match self.instance_at(host).await? {
            // On an instance's host, only that instance's tokens.
            Some(at_host) if at_host.domain != domain => return Err(Error::BadCredentials),
            Some(at_host) => at_host,
            None => self.instance(&domain).await?.ok_or(Error::BadCredentials)?,
        };
        Ok(InstanceAccess {
            instance,
            scope: Scope::Token(scope),
        })
    }

    /// The permission set a cozy JWT holds on `inst`, as cozy-stack's `ParseJWT` finds it,
    /// for a route without a session (a web app's session token is refused).
    async fn cozy_permissions(&self, inst: &Instance, token: &str) -> Result<PermissionSet, Error> {
        let now = self.clock.now();
        let claims = cozy::jwt::verify(token, &inst.keys, &inst.issuers(), now)?;
        // These routes load no session: a token bound to one cannot match (cozy-stack).
        if claims.session_id.is_some() {
            return Err(JwtError::Invalid.into());
        }
        if let Some(stamp) = &claims.stamp {
            let current = self.cozy.security_stamp(inst).await?;
            if current.as_deref() != Some(stamp.as_str()) {
                return Err(JwtError::Invalid.into());
            }
        }
        let set = self.permission_set(inst, &claims).await?;
        if set.is_expired(now) {
            return Err(JwtError::Expired.into());
        }
        Ok(set)
    }

    async fn permission_set(
        &self,
        inst: &Instance,
        claims: &CozyClaims,
    ) -> Result<PermissionSet, Error> {
        let from_doc = |holder| async move {
            self.cozy
                .permissions_of(inst, holder)
                .await?
                .ok_or(Error::NotFound("permission set"))
        };
        match claims.audience {
            Audience::App => from_doc(Holder::App(&claims.subject)).await,
            Audience::Konnector => from_doc(Holder::Konnector(&claims.subject)).await,
            Audience::Access => {
                let client = self
                    .cozy
                    .oauth_client(inst, &claims.subject)
                    .await?
                    .ok_or(JwtError::Invalid)?;
                if claims.scope == "*" {
                    return if client.flagship {
                        Ok(PermissionSet::from_scope("*").unwrap_or_default())
                    } else {
                        Err(JwtError::Invalid.into())
                    };
                }
                match claims.scope.strip_prefix("@io.cozy.apps/") {
                    Some(slug) => from_doc(Holder::App(slug)).await,
                    None => Ok(PermissionSet::from_scope(&claims.scope).ok_or(JwtError::Invalid)?),
                }
            }
            Audience::Cli => Ok(PermissionSet::from_scope(&claims.scope).ok_or(JwtError::Invalid)?),
        }
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

    /// The instance `start` acts for. On an instance's host, as cozy-stack's `checkLogin`:
    /// its session cookie, else a session code (spent, even when the cookie was enough),
    /// else a broker API token for it. On another host: a broker session code or token.
    pub(crate) async fn instance_for_start(
        &self,
        c: StartCredentials<'_>,
    ) -> Result<StartAccess, Error> {
        if let Some(inst) = self.instance_at(c.host).await? {
            return self.cozy_login(inst, &c).await;
        }
        let (domain, scope) = match (c.session_code, c.bearer) {
            (Some(code), _) => (
                self.credentials
                    .redeem_session_code(code, self.clock.now())
                    .await?
                    .ok_or(Error::BadCredentials)?,
                TokenScope::default(),
            ),
            (None, Some(token)) => self.live_token(token).await?,
            // A cozy session, but no instance here: the proxy sent an unknown host.
            (None, None) if self.carries_cozy_session(&c) => return Err(Error::UnknownHost),
            (None, None) => return Err(Error::LoginRequired),
        };
        let instance = self
            .instance(&domain)
            .await?
            .ok_or_else(|| Error::UnknownInstance(domain.to_string()))?;
        Ok(StartAccess {
            access: InstanceAccess {
                instance,
                scope: Scope::Token(scope),
            },
            new_session: None,
        })
    }

    /// Whether the browser sends a cozy session cookie (to a host that is no instance).
    fn carries_cozy_session(&self, c: &StartCredentials<'_>) -> bool {
        c.cookies
            .iter()
            .any(|(n, v)| !v.is_empty() && (n == "cozysessid" || n.starts_with("sess-")))
    }

    async fn cozy_login(
        &self,
        inst: Instance,
        c: &StartCredentials<'_>,
    ) -> Result<StartAccess, Error> {
        let now = self.clock.now();
        let session = self.session_of(&inst, c.cookies).await?;
        let was_logged_in = session.as_ref().is_some_and(|s| !s.short_run);
        let mut logged_in = session.is_some();
        if let Some(code) = c.session_code {
            match self.redeem_code(&inst, code).await {
                Ok(redeemed) => logged_in |= redeemed,
                // A live session cookie logs the browser in already: a code this broker
                // cannot spend changes nothing, as on cozy-stack (its `checkLogin`).
                Err(e) if session.is_some() => {
                    tracing::info!(code = %crate::domain::Classified::code(&e), "session code not spent; the session cookie logs in");
                }
                Err(e) => return Err(e),
            }
        }
        if !logged_in {
            if let Some(raw) = c.id_token {
                self.id_token_login(&inst, raw).await?;
                logged_in = true;
            }
        }
        if !logged_in {
            if let Some(token) = c.bearer {
                let (domain, limits) = self.live_token(token).await?;
                if domain != inst.domain {
                    return Err(Error::BadCredentials);
                }
                return Ok(StartAccess {
                    access: InstanceAccess {
                        instance: inst,
                        scope: Scope::Token(limits),
                    },
                    new_session: None,
                });
            }
            return Err(if c.session_code.is_some() {
                Error::BadCredentials
            } else {
                Error::NotLoggedIn
            });
        }
        // A code or a short-run session: a new short-run session keeps the popup logged
        // in when the provider sends it back to the Home app (cozy-stack does the same).
        let new_session = if !was_logged_in && inst.keys.has_session_secret() {
            let id = self.cozy.create_short_run_session(&inst, now).await?;
            let name = cozy::session::cookie_name(self.subdomains, &inst.prefix);
            Some(SessionCookie {
                value: cozy::cookie::encode(&name, &inst.keys.session_key(), &id, now.unix_secs()),
                name,
                domain: cozy::session::cookie_domain(self.subdomains, inst.domain.as_str()),
            })
        } else {
            None
        };
        Ok(StartAccess {
            access: InstanceAccess {
                instance: inst,
                scope: Scope::all(),
            },
            new_session,
        })
    }

    /// cozy-stack's `checkIDToken`: the instance's context allows `id_token` logins, its
    /// identity provider signed `raw`, and `sub` is the instance's `oidc_id`.
    async fn id_token_login(&self, inst: &Instance, raw: &str) -> Result<(), Error> {
        let context = inst.context.as_deref().unwrap_or("default");
        let Some(keys) = self.oidc_keys.get(context) else {
            tracing::info!(context, "id_token refused: the context does not allow it");
            return Err(Error::BadCredentials);
        };
        let claims = self
            .id_tokens
            .verify(raw, keys)
            .await
            .map_err(|e| match e {
                IdTokenError::Keys(p) => Error::Provider(p),
                IdTokenError::Invalid(why) => {
                    tracing::info!(context, why, "id_token refused");
                    Error::BadCredentials
                }
            })?;
        let sub = claims.get("sub").and_then(serde_json::Value::as_str);
        match (sub, inst.oidc_id.as_deref()) {
            (Some(sub), Some(expected)) if !sub.is_empty() && sub == expected => Ok(()),
            _ => {
                tracing::info!(
                    context,
                    "id_token refused: its subject is not the instance's"
                );
                Err(Error::BadCredentials)
            }
        }
    }

    /// The live session the browser's cookie names, if any.
    async fn session_of(
        &self,
        inst: &Instance,
        cookies: &[(String, String)],
    ) -> Result<Option<cozy::Session>, Error> {
        if !inst.keys.has_session_secret() {
            return Ok(None);
        }
        let name = cozy::session::cookie_name(self.subdomains, &inst.prefix);
        // Go's `c.Cookie(name)` takes the first of that name; empty is no cookie.
        let Some((_, value)) = cookies.iter().find(|(n, _)| *n == name) else {
            return Ok(None);
        };
        if value.is_empty() {
            return Ok(None);
        }
        let Ok(id) = cozy::cookie::decode(&name, &inst.keys.session_key(), value) else {
            return Ok(None);
        };
        let session = self.cozy.session(inst, &id).await?;
        Ok(session.filter(|s| s.is_live(self.clock.now())))
    }

    /// Spends a session code for `inst`: cozy-stack's (32 letters and digits, in its
    /// Redis) or the broker's own.
    async fn redeem_code(&self, inst: &Instance, code: &str) -> Result<bool, Error> {
        if is_cozy_session_code(code) {
            let redis = self
                .cozy_codes
                .as_ref()
                .ok_or(Error::SessionCodeNeedsRedis)?;
            return Ok(redis.redeem(&inst.prefix, code).await?);
        }
        let domain = self
            .credentials
            .redeem_session_code(code, self.clock.now())
            .await?;
        Ok(domain.is_some_and(|d| d == inst.domain))
    }

    async fn instance(&self, domain: &Domain) -> Result<Option<Instance>, Error> {
        Ok(self.instances.get(domain).await?)
    }
}
