//! The authorization flow: [`Flows::begin`] seals the flow into its state (no store
//! write) and points the browser at the provider; [`Flows::complete`] spends the state,
//! obtains the tokens, writes the account and says where the browser goes back to.

use super::account_health::HealthLog;
use super::callers::{InstanceAccess, Verb};
use super::clients::Clients;
use super::refresh_plan::RefreshPlan;
use super::Error;
use crate::domain::account::{Account, Identity};
use crate::domain::account_health::{self, AccountHealth, Outcome};
use crate::domain::flow_state::OpenedFlow;
use crate::domain::flow_state::{AskedScope, Binding};
use crate::domain::flow_wire::{TooLong, MAX_STATE_CHARS};
use crate::domain::ErrorCode;
use crate::domain::{
    AccountType, Classified, Clock, Domain, ErrorKind, FlowState, GrantMode, Instance, Scheme,
    Slug, StateRejection, Subdomains,
};
use crate::metrics::Metrics;
use crate::oauth::authorize::{authorization_url, AuthorizeParams};
use crate::oauth::go_query::encode_sorted;
use crate::oauth::provider::is_sane_code;
use crate::oauth::provider_request::{self, CodeExchange};
use crate::oauth::ProviderClient;
use crate::store::account_types::AccountTypes;
use crate::store::accounts::Accounts;
use crate::store::flow_states::ConsumeError;
use crate::store::flow_states::FlowStates;
use crate::store::health_records::Record;
use crate::store::instances::Instances;
use crate::webhooks::{Event, Kind, Webhooks};
use std::sync::Arc;
use std::time::Duration;

/// What the app asks for when it sends the browser to `start` (already bounded and free
/// of control characters).
#[derive(Debug)]
pub(crate) struct StartParams {
    /// The account type's service id, from the path.
    pub(crate) service_id: String,
    /// The account whose tokens a reconnection renews.
    pub(crate) account_id: Option<String>,
    /// The app the browser goes back to.
    pub(crate) slug: Slug,
    /// The app's own state, echoed back.
    pub(crate) client_state: String,
    /// The app's nonce, sent to `get`-mode token endpoints.
    pub(crate) nonce: String,
    /// Scope asked for; the type's default when empty.
    pub(crate) scope: String,
    /// OpenID Connect `login_hint`.
    pub(crate) login_hint: String,
    /// The provider of a per-account type, as the caller gave it.
    pub(crate) provider_url: String,
}

/// Where `start` sends the browser, and the secret that binds the flow to it.
#[derive(Debug)]
pub(crate) struct Started {
    /// The provider's authorization URL.
    pub(crate) location: String,
    /// The binding cookie (name, value), when flows are bound to the browser.
    pub(crate) binding: Option<(String, String)>,
}

/// What the provider sent the browser back with.
#[derive(Debug)]
pub(crate) struct RedirectParams {
    /// The account type's service id, from the path.
    pub(crate) service_id: String,
    /// The state the provider echoes.
    pub(crate) state: String,
    /// The provider's `error`, when it refused.
    pub(crate) error: Option<String>,
    /// The issuer the authorization server names (RFC 9207), when it sends one.
    pub(crate) iss: Option<String>,
    /// The authorization code.
    pub(crate) code: Option<String>,
    /// An access token given directly (implicit-style providers).
    pub(crate) access_token: Option<String>,
    /// BI/Budget Insight's connection id.
    pub(crate) connection_id: Option<String>,
    /// BI's deleted connection id.
    pub(crate) connection_deleted: Option<String>,
    /// The browser's binding cookie for this state.
    pub(crate) binding_cookie: Option<String>,
    /// Whether the person confirmed the connection on the page naming its instance
    /// (then no binding cookie is asked for).
    pub(crate) confirmed: bool,
    /// The host the browser came back to (`Host`).
    pub(crate) host: Option<String>,
    /// The query as the provider sent it, carried on unchanged to the instance's host or
    /// into the confirmation page.
    pub(crate) query: String,
    /// Every query pair, for types without token endpoint (the query is the account).
    pub(crate) pairs: Vec<(String, String)>,
}

/// How a redirect ends.
#[derive(Debug)]
pub(crate) enum Redirected {
    /// The flow ended; the browser goes back to the app.
    Completed(Completed),
    /// The binding cookie did not come back to this host: the browser goes on, with the
    /// same query, to the instance's own host, where `start` set the cookie when it could
    /// not be set for this one (an instance on a custom domain).
    ToInstanceHost(String),
    /// No binding cookie on the instance's host either (the return leg landed in another
    /// browser): the person is shown which instance and service the connection goes to,
    /// and completes it only by confirming. Nothing is spent yet.
    Confirm(Confirmation),
}

/// What the confirmation page names.
#[derive(Debug)]
pub(crate) struct Confirmation {
    /// The instance the connection would go to.
    pub(crate) instance: String,
    /// The account type's service id.
    pub(crate) service: String,
    /// The query to post back.
    pub(crate) query: String,
}

/// Where the flow ends.
#[derive(Debug)]
pub(crate) struct Completed {
    /// The app of the flow's instance, told the outcome in its query.
    pub(crate) location: String,
    /// The binding cookie to remove, if the flow had one.
    pub(crate) binding_cookie: Option<String>,
    /// What failed after the person consented (never their own refusal): the browser is
    /// shown a page saying so, with the way back to the app, rather than sent there
    /// silently (Harvest closes the popup on any `?error=`).
    pub(crate) failed: Option<Failure>,
}

/// A failure after consent: its kind (what the page says) and the code the app is told.
#[derive(Debug)]
pub(crate) struct Failure {
    /// What failed.
    pub(crate) kind: ErrorKind,
    /// The `error=` of the app's URL.
    pub(crate) code: String,
}

fn state_too_long(flow: &FlowState) -> Error {
    Error::BadRequest {
        code: ErrorCode::StateTooLong,
        detail: format!(
            "this connection cannot be started: its `state` would exceed {MAX_STATE_CHARS} \
             characters (the app's `state` is {} long, its nonce {})",
            flow.client_state.len(),
            flow.nonce.len()
        ),
    }
}

/// The flow use cases.
pub(crate) struct Flows {
    pub(crate) instances: Instances,
    pub(crate) account_types: Arc<AccountTypes>,
    pub(crate) accounts: Accounts,
    pub(crate) states: FlowStates,
    pub(crate) clients: Arc<Clients>,
    pub(crate) plan: RefreshPlan,
    pub(crate) health: Arc<HealthLog>,
    pub(crate) provider: ProviderClient,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) webhooks: Webhooks,
    pub(crate) clock: Clock,
    pub(crate) subdomains: Subdomains,
    /// Flow state lifetime.
    pub(crate) ttl: Duration,
    /// Whether flows are bound to the starting browser by a cookie.
    pub(crate) binding: bool,
    /// The parent domain of the binding cookie, if any.
    pub(crate) cookie_domain: Option<String>,
    /// The scheme of instance and app URLs.
    pub(crate) scheme: Scheme,
}

impl Flows {
    /// Refuses, before the caller logs in (a session code is spent then), a start whose
    /// state could not fit on `host`: the app's values alone already make it too long.
    pub(crate) fn check_fits(&self, p: &StartParams, host: Option<&str>) -> Result<(), Error> {
        let Some(instance) = host.and_then(|h| Domain::parse(h).ok()) else {
            return Ok(());
        };
        let trial = FlowState {
            instance,
            account_type: p.service_id.clone(),
            client_state: p.client_state.clone(),
            nonce: p.nonce.clone(),
            slug: p.slug.clone(),
            expires_at: 0,
            pkce: false,
            bound: false,
            account_id: p.account_id.clone(),
            provider_url: None,
            scope: AskedScope::TypeDefault,
        };
        self.states
            .begin(&trial)
            .map(drop)
            .map_err(|TooLong| state_too_long(&trial))
    }

    /// Seals a flow for the caller's instance into its state and says where the browser goes.
    pub(crate) async fn begin(
        &self,
        access: &InstanceAccess,
        p: StartParams,
    ) -> Result<Started, Error> {
        access.scope.check_type(Verb::Post, &p.service_id)?;
        let inst = &access.instance;
        let at = self
            .account_types
            .lookup(&p.service_id, inst.context.as_deref())
            .await?;
        if !at.grant_mode.is_some_and(|m| m.has_authorization_step()) {
            return Err(Error::NoAuthorizationStep(at.id.clone()));
        }
        let mut provider = self.clients.parse_provider_url(&at, &p.provider_url)?;
        if let Some(id) = &p.account_id {
            let account = self
                .accounts
                .get(inst, id)
                .await?
                .ok_or(Error::NotFound("account"))?;
            // A reconnection goes back to the account's own provider, if still allowed.
            if let Some(own) = self
                .clients
                .parse_provider_url(&at, account.stored_provider_url())?
            {
                provider = Some(own);
            }
            if account.service() != at.service_id() {
                return Err(Error::NotFound("account of this type"));
            }
        }
        let redirect_uri = self.clients.flow_redirect_uri(&at, &inst.domain);
        // The type's default is not kept in the state (it is known at the redirect).
        let scope = if p.scope.is_empty() || at.scope.as_deref() == Some(p.scope.as_str()) {
            AskedScope::TypeDefault
        } else {
            AskedScope::Named(p.scope.clone())
        };
        // Registers with the provider first when the type has no fixed client.
        let at = self.clients.resolve(&at, provider.as_ref()).await?;

        let mut flow = FlowState {
            instance: inst.domain.clone(),
            account_type: at.service_id().to_owned(),
            client_state: p.client_state,
            nonce: p.nonce,
            slug: p.slug,
            expires_at: self.clock.now().plus(self.ttl).unix_secs(),
            pkce: at.pkce,
            bound: self.binding,
            account_id: p.account_id,
            provider_url: provider.as_ref().map(|p| p.as_str().to_owned()),
            scope,
        };
        // Sealed into the state: nothing is written until the redirect. A named scope
        // that does not fit is not kept (the grant is then not compared with it); other
        // values that do not fit refuse the start, before the user consents.
        let sealed = match self.states.begin(&flow) {
            Err(TooLong) if matches!(flow.scope, AskedScope::Named(_)) => {
                flow.scope = AskedScope::Unrecorded;
                self.states.begin(&flow)
            }
            sealed => sealed,
        }
        .map_err(|TooLong| state_too_long(&flow))?;
        let challenge = sealed.pkce_verifier.as_ref().map(|v| {
            oauth2::PkceCodeChallenge::from_code_verifier_sha256(&oauth2::PkceCodeVerifier::new(
                v.clone(),
            ))
        });
        let url = authorization_url(
            &at,
            &AuthorizeParams {
                scope: &p.scope,
                redirect_uri: &redirect_uri,
                state: &sealed.state,
                code_challenge: challenge.as_ref().map(|c| c.as_str()),
                login_hint: &p.login_hint,
            },
        )
        .ok_or_else(|| Error::NoAuthorizationStep(at.id.clone()))?;
        tracing::info!(account_type = at.service_id(), instance = %inst.domain, "flow started");
        self.metrics
            .flows_started
            .with_label_values(&[at.service_id()])
            .inc();
        Ok(Started {
            location: url.to_string(),
            binding: sealed
                .binding_cookie
                .map(|secret| (FlowState::binding_cookie_name(&sealed.state), secret)),
        })
    }

    /// Consumes the state and ends the flow. `Err` only before the state was found valid
    /// (the caller shows a page); after that every failure goes back to the app as
    /// `?error=`.
    pub(crate) async fn complete(&self, p: RedirectParams) -> Result<Redirected, Error> {
        let outcome = self.complete_unlabelled(p).await;
        if let Err(e) = &outcome {
            // Before a valid state the type in the path is the caller's word: not a label.
            self.failed("-", e.kind());
        }
        outcome
    }

    /// Counts a redirect refused before its state could be read, and gives the error back.
    pub(crate) fn refused_before_state(&self, e: Error) -> Error {
        self.failed("-", e.kind());
        e
    }

    fn failed(&self, account_type: &str, kind: ErrorKind) {
        self.metrics
            .flows_failed
            .with_label_values(&[account_type, kind.as_str()])
            .inc();
    }

    /// Whether the binding cookie of the flow could be set for `host` (the host `start`
    /// ran on): it is scoped to `cookie_domain` only for hosts under it.
    pub(crate) fn cookie_domain_for(&self, host: Option<&str>) -> Option<&str> {
        let d = self.cookie_domain.as_deref()?;
        let host = host?.to_ascii_lowercase();
        let name = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        crate::domain::cookie_scope::covers(d, name).then_some(d)
    }

    /// Where a flow whose binding cookie did not come back goes: on to the instance's
    /// own host, or to the confirmation page there. Nothing is spent.
    fn unbound(&self, p: &RedirectParams) -> Result<Redirected, Error> {
        let opened = self
            .states
            .peek(&p.state, &p.service_id, self.clock.now())?;
        let instance = &opened.flow.instance;
        if !p.host.as_deref().is_some_and(|h| instance.is_host(h)) {
            tracing::info!(account_type = %p.service_id, instance = %instance, "binding cookie absent on this host: on to the instance's");
            return Ok(Redirected::ToInstanceHost(format!(
                "{}://{instance}/accounts/{}/redirect?{}",
                self.scheme.as_str(),
                p.service_id,
                p.query
            )));
        }
        tracing::info!(account_type = %p.service_id, instance = %instance, "binding cookie absent: asking the person to confirm");
        Ok(Redirected::Confirm(Confirmation {
            instance: instance.to_string(),
            service: p.service_id.clone(),
            query: p.query.clone(),
        }))
    }

    async fn complete_unlabelled(&self, p: RedirectParams) -> Result<Redirected, Error> {
        let binding = if p.confirmed {
            Binding::Confirmed
        } else {
            Binding::Cookie(p.binding_cookie.as_deref())
        };
        let opened = match self
            .states
            .consume(&p.state, &p.service_id, self.clock.now(), binding)
            .await
        {
            Err(ConsumeError::Rejected(StateRejection::BindingMismatch)) => {
                return self.unbound(&p)
            }
            other => other?,
        };
        let flow = &opened.flow;
        let inst = self
            .instances
            .get(&flow.instance)
            .await?
            .ok_or_else(|| Error::UnknownInstance(flow.instance.to_string()))?;
        let back = AppReturn {
            base: format!(
                "{}://{}/",
                self.scheme.as_str(),
                inst.domain.app_host(flow.slug.as_str(), self.subdomains)
            ),
            client_state: flow.client_state.clone(),
            connection_id: p.connection_id.clone(),
            connection_deleted: p.connection_deleted.clone(),
        };
        let binding_cookie = flow.bound.then(|| FlowState::binding_cookie_name(&p.state));
        let done = |location, failed| {
            Redirected::Completed(Completed {
                location,
                binding_cookie,
                failed,
            })
        };
        // From here the state was valid: every failure goes back to the app as `?error=`.
        if let Err(e) = self.check_issuer(&inst, flow, p.iss.as_deref()).await {
            tracing::warn!(account_type = %flow.account_type, error = %e, "redirect from another issuer refused");
            self.failed(&flow.account_type, e.kind());
            let code = e.redirect_code();
            return Ok(done(
                back.location(None, Some(&code)),
                Some(Failure {
                    kind: e.kind(),
                    code,
                }),
            ));
        }
        if let Some(error) = &p.error {
            let code = if is_sane_code(error) {
                error
            } else {
                "server_error"
            };
            tracing::info!(account_type = %flow.account_type, error = code, "provider refused the authorization");
            self.failed(&flow.account_type, ErrorKind::Refused);
            // The person's own refusal goes back to the app as it is (cozy-stack's
            // `access_denied`); any other provider error is a failure to show.
            let failed = (code != "access_denied").then(|| Failure {
                kind: ErrorKind::Refused,
                code: code.to_owned(),
            });
            return Ok(done(back.location(None, Some(code)), failed));
        }
        Ok(match self.write_account(&inst, &opened, &p).await {
            Ok(account_id) => {
                tracing::info!(account_type = %flow.account_type, instance = %inst.domain, "flow completed");
                self.metrics
                    .flows_completed
                    .with_label_values(&[flow.account_type.as_str()])
                    .inc();
                done(back.location(Some(&account_id), None), None)
            }
            Err(e) => {
                tracing::warn!(account_type = %flow.account_type, code = e.code().as_str(), error = %e, "flow failed after a valid state");
                self.failed(&flow.account_type, e.kind());
                let code = e.redirect_code();
                done(
                    back.location(None, Some(&code)),
                    Some(Failure {
                        kind: e.kind(),
                        code,
                    }),
                )
            }
        })
    }

    /// RFC 9207: a redirect that names its issuer must name the one the flow went to
    /// (the type's `issuer`, or a per-account type's provider), so a response from
    /// another authorization server (a mix-up attack) is refused before any exchange.
    async fn check_issuer(
        &self,
        inst: &Instance,
        flow: &FlowState,
        iss: Option<&str>,
    ) -> Result<(), Error> {
        let Some(iss) = iss else {
            return Ok(());
        };
        let expected = match flow.provider_url.as_deref() {
            Some(provider) => Some(provider.trim_end_matches('/').to_owned()),
            None => self
                .account_types
                .lookup(&flow.account_type, inst.context.as_deref())
                .await?
                .issuer
                .clone(),
        };
        match expected {
            Some(want) if want != iss.trim_end_matches('/') => Err(Error::BadRequest {
                code: ErrorCode::IssuerMismatch,
                detail: "the authorization response names another issuer".into(),
            }),
            _ => Ok(()),
        }
    }

    /// Obtains the tokens, builds and writes the account; returns its id.
    async fn write_account(
        &self,
        inst: &Instance,
        opened: &OpenedFlow,
        p: &RedirectParams,
    ) -> Result<String, Error> {
        let flow = &opened.flow;
        let service_id = flow.account_type.as_str();
        let at = self
            .account_types
            .lookup(service_id, inst.context.as_deref())
            .await?;
        let provider = self
            .clients
            .parse_provider_url(&at, flow.provider_url.as_deref().unwrap_or_default())?;
        // The one `start` sent: derived the same way from the type and the instance.
        let redirect_uri = self.clients.flow_redirect_uri(&at, &inst.domain);
        let at = self.clients.resolve(&at, provider.as_ref()).await?;
        let mut doc = self.tokens(&at, opened, p, &redirect_uri).await?;
        if let Some(pu) = &provider {
            doc.record_provider_url(pu.as_str());
        }
        // Who connected, so the Home app can tell accounts apart; tokens matter more, so a
        // failure here is only logged.
        let identity = match (&at.userinfo_endpoint, doc.access_token()) {
            (Some(endpoint), Some(token)) => self.userinfo(service_id, endpoint, token).await,
            _ => None,
        };
        if let Some(who) = &identity {
            doc.apply_identity(who);
        }
        let subject = identity
            .as_ref()
            .and_then(|i| i.subject.clone())
            .or_else(|| doc.id_token_subject());
        if let Some(sub) = &subject {
            doc.record_subject(sub);
        }
        let connection_id = p.connection_id.as_deref();
        if let Some(cid) = connection_id {
            doc.record_connection_id(cid);
        }
        // What the provider granted short of what the flow asked for, told to the app so
        // it can offer a reconnection (a narrowed grant fails later, and silently).
        let asked = match &flow.scope {
            AskedScope::TypeDefault => at.scope.as_deref().unwrap_or_default(),
            AskedScope::Named(s) => s.as_str(),
            AskedScope::Unrecorded => "",
        };
        let scope_missing = account_health::missing_scopes(asked, doc.granted_scope());
        doc.record_scope_missing(&scope_missing);
        // The account this authorization renews: the one reconnected, or the one of the
        // same provider connection.
        // Harvest never calls `reconnect` for OAuth konnectors: it runs `start` again. A
        // sign-in of the same user at the provider renews the account that waits for it,
        // so the konnector's trigger (which names that account) works again.
        let existing = match (&flow.account_id, connection_id, &subject) {
            (Some(id), _, _) => self.accounts.get(inst, id).await?,
            (None, Some(cid), _) => {
                self.accounts
                    .find_by_connection_id(inst, service_id, cid)
                    .await?
            }
            (None, None, Some(sub)) => {
                self.accounts
                    .find_reconnect_needed(inst, service_id, sub)
                    .await?
            }
            (None, None, None) => None,
        };
        let event = match &existing {
            None => Some(Kind::AccountCreated),
            Some(_) if flow.account_id.is_some() => Some(Kind::AccountReconnected),
            Some(e) if e.reconnect_needed() => Some(Kind::AccountReconnected),
            Some(_) => None,
        };
        let id = match existing {
            Some(existing) => {
                let saved = self
                    .accounts
                    .update_with(inst, existing, |d| {
                        d.merge_authorization(&doc);
                        d.record_scope_missing(&scope_missing);
                        if let Some(who) = &identity {
                            d.apply_identity(who);
                        }
                        if let Some(sub) = &subject {
                            d.record_subject(sub);
                        }
                    })
                    .await?;
                let id = saved.id().to_owned();
                self.plan.plan(inst, &id, &saved, &at, None).await;
                // A reconnection is its own news (`account.reconnected`): recorded, not told.
                let record = Record {
                    instance: inst.domain.to_string(),
                    account_id: id.clone(),
                    account_type: service_id.to_owned(),
                    outcome: Outcome::Success { token_ms: None },
                    scope_missing: Some(scope_missing.clone()),
                };
                if let Err(e) = self.health.record(&record).await {
                    tracing::warn!(error = %e, "could not record account health");
                }
                id
            }
            None => {
                // The first plan is written beside the account (one group commit on the
                // embedded store), not after it; a plan whose account did not land is
                // dropped by the refresher.
                let id = Accounts::new_id();
                let mut healthy = AccountHealth::new(inst.domain.as_str(), &id, service_id);
                healthy.last_success_at = Some(self.clock.now().unix_secs());
                healthy.scope_missing.clone_from(&scope_missing);
                let (created, ()) = tokio::join!(
                    self.accounts.create_with_id(inst, &id, &doc),
                    self.plan.plan(inst, &id, &doc, &at, Some(&healthy))
                );
                created?;
                id
            }
        };
        let scope_event = (!scope_missing.is_empty()).then_some(Kind::ScopeMissing);
        for kind in event.into_iter().chain(scope_event) {
            self.webhooks
                .emit(Event {
                    kind,
                    instance: inst.domain.to_string(),
                    account_id: id.clone(),
                    account_type: service_id.to_owned(),
                    // The scopes it lacks, space-separated (no secret in a scope name).
                    error: (kind == Kind::ScopeMissing).then(|| scope_missing.join(" ")),
                    at: self.clock.now(),
                })
                .await;
        }
        Ok(id)
    }

    /// The account document the redirect yields: from a token given directly, from the
    /// query itself (types without token endpoint), or from the code exchange.
    async fn tokens(
        &self,
        at: &AccountType,
        opened: &OpenedFlow,
        p: &RedirectParams,
        redirect_uri: &str,
    ) -> Result<Account, Error> {
        let flow = &opened.flow;
        let service_id = flow.account_type.as_str();
        // Taken only where the provider hands the token over itself: elsewhere it would
        // let a forged redirect skip the code exchange and PKCE.
        if let Some(token) = p
            .access_token
            .as_ref()
            .filter(|_| at.grant_mode.is_some_and(GrantMode::is_implicit))
        {
            return Ok(Account::from_redirect_token(service_id, token));
        }
        if at.token_endpoint.is_none() {
            return Ok(Account::from_redirect_query(
                service_id,
                at.client_id.as_ref().map(|c| c.as_str()),
                at.client_secret.as_ref().map(|c| c.secret().as_str()),
                &p.pairs,
            ));
        }
        let Some(code) = &p.code else {
            return Err(Error::BadRequest {
                code: ErrorCode::CodeMissing,
                detail: "the provider came back without a code".into(),
            });
        };
        let code = oauth2::AuthorizationCode::new(code.clone());
        let exchange = CodeExchange {
            code: &code,
            redirect_uri,
            state: &p.state,
            nonce: &flow.nonce,
            code_verifier: opened.pkce_verifier.as_deref(),
        };
        let request = provider_request::code_exchange(at, &exchange)
            .ok_or(Error::NoAuthorizationStep(at.id.clone()))?;
        let mut grant = self
            .metrics
            .time_provider("exchange", self.provider.request_token(&request))
            .await?;
        self.health.settle_expiry(at, &mut grant);
        Ok(Account::from_token_grant(service_id, &grant))
    }

    /// Reads the provider's user info with the new access token.
    async fn userinfo(
        &self,
        service_id: &str,
        endpoint: &url::Url,
        token: &str,
    ) -> Option<Identity> {
        let call = self
            .provider
            .json(reqwest::Method::GET, endpoint, Some(token), None);
        match self.metrics.time_provider("userinfo", call).await {
            Ok((_, info)) => Some(Identity::from_userinfo(&info)),
            Err(e) => {
                tracing::warn!(account_type = service_id, error = %e, "user info unavailable");
                None
            }
        }
    }
}

/// Where the flow ends: the app of the flow's instance, told the outcome in its query.
struct AppReturn {
    base: String,
    client_state: String,
    connection_id: Option<String>,
    connection_deleted: Option<String>,
}

impl AppReturn {
    /// The app's URL with the query keys sorted, as cozy-stack's `redirectToApp`.
    fn location(&self, account: Option<&str>, error: Option<&str>) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = account {
            pairs.push(("account", a));
        }
        if let Some(c) = &self.connection_deleted {
            pairs.push(("connection_deleted", c));
        }
        if let Some(c) = &self.connection_id {
            pairs.push(("connection_id", c));
        }
        if let Some(e) = error {
            pairs.push(("error", e));
        }
        if !self.client_state.is_empty() {
            pairs.push(("state", &self.client_state));
        }
        if pairs.is_empty() {
            self.base.clone()
        } else {
            format!("{}?{}", self.base, encode_sorted(&pairs))
        }
    }
}
