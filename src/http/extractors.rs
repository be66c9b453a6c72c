//! Who may call, as extractors: a handler that takes [`AdminCaller`] runs only for the
//! operator, one that takes [`InstanceCaller`] only for a caller acting for an instance,
//! [`StartCaller`] parses a start request and then spends its session code. Each draws
//! on its route group's rate limit before it looks at a credential, so a credential
//! cannot be guessed at speed. `routes_are_guarded` (tests/api/routes.rs) walks every
//! route and checks it refuses a caller without credentials.

use super::error::{Api, Page};
use super::query::Query;
use super::rate_limit::{Group, RateLimits};
use super::request_log::current_request_id;
use crate::app::audit::Actor;
use crate::app::callers::{InstanceAccess, SessionCookie, StartCredentials};
use crate::app::flows::StartParams;
use crate::app::{Error, Services};
use crate::domain::secret::sha256_hex;
use crate::domain::{ErrorCode, Slug};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;

/// The bearer token of a request, if any.
fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The token of a request acting for an instance, where cozy-stack looks for one
/// (`GetRequestToken`): `Authorization: Bearer`, the password of `Authorization: Basic`,
/// else `?bearer_token=` (never logged: request lines carry no query).
fn request_token(req: &HttpRequest) -> Result<Option<String>, Api> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    if let Some(h) = header {
        if let Some(token) = h.strip_prefix("Bearer ") {
            let token = token.trim();
            return Ok((!token.is_empty()).then(|| token.to_owned()));
        }
        if let Some(encoded) = h.strip_prefix("Basic ") {
            use base64::Engine;
            // An unreadable Basic header is a credential that does not match.
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let password = decoded.split_once(':').map_or("", |(_, p)| p);
            return Ok(Some(password.to_owned()));
        }
    }
    let q = Query::parse(req.query_string()).map_err(Api)?;
    Ok(q.one("bearer_token")?
        .filter(|t| !t.is_empty())
        .map(str::to_owned))
}

/// The host the request names: its `Host` header (what the proxy in front passes on),
/// else the URI's authority (HTTP/2). Never `X-Forwarded-Host` or `Forwarded`: a client
/// could name any instance with them.
pub(crate) fn host(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
}

/// The request's cookies in the order sent (the first of a name wins, as in Go).
fn cookies(req: &HttpRequest) -> Vec<(String, String)> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            Some((n.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        })
        .take(64)
        .collect()
}

/// The same request on the instance's new domain, for [`Error::Moved`].
fn on_new_domain(req: &HttpRequest, e: Error) -> Error {
    match e {
        Error::Moved(domain) => {
            let path = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            Error::Moved(format!("https://{domain}{path}"))
        }
        other => other,
    }
}

fn services(req: &HttpRequest) -> Result<web::Data<Services>, Error> {
    req.app_data::<web::Data<Services>>()
        .cloned()
        .ok_or(Error::NotFound("services"))
}

/// Takes one request from the budget in `group` of the client, or of `key` (a token's
/// hash) when given.
fn limit_by(req: &HttpRequest, group: Group, key: Option<&str>) -> Result<(), Error> {
    let Some(limits) = req.app_data::<web::Data<RateLimits>>() else {
        return Ok(());
    };
    match key {
        Some(k) => limits.check_key(group, k),
        None => limits.check(group, req),
    }
}

/// Takes one request from the client's budget in `group`.
fn limit(req: &HttpRequest, group: Group) -> Result<(), Error> {
    limit_by(req, group, None)
}

/// The operator, authenticated by the admin token, as the audit trail names them.
#[derive(Debug)]
pub(crate) struct AdminCaller(pub(crate) Actor);

impl FromRequest for AdminCaller {
    type Error = Api;
    type Future = std::future::Ready<Result<Self, Api>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let checked = limit(req, Group::Admin)
            .and_then(|()| services(req))
            .and_then(|s| s.callers.admin(bearer(req)));
        let actor = || Actor::admin(bearer(req).unwrap_or_default(), current_request_id());
        std::future::ready(checked.map(|()| AdminCaller(actor())).map_err(Api))
    }
}

/// A caller acting for an instance (an instance API token), within its limits.
#[derive(Debug)]
pub(crate) struct InstanceCaller(pub(crate) InstanceAccess);

impl FromRequest for InstanceCaller {
    type Error = Api;
    type Future = LocalBoxFuture<'static, Result<Self, Api>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let s = services(&req)?;
            let token = request_token(&req)?;
            // Per token as well as per address: one konnector cannot starve the others.
            if let Some(t) = &token {
                limit_by(&req, Group::Token, Some(&sha256_hex(t)))?;
            }
            let access = s
                .callers
                .instance_by_token(host(&req).as_deref(), token.as_deref())
                .await
                .map_err(|e| on_new_domain(&req, e))?;
            Ok(InstanceCaller(access))
        })
    }
}

/// A start (or reconnect) request, parsed, and the instance it acts for.
#[derive(Debug)]
pub(crate) struct StartCaller {
    /// The instance the flow is for, within the credential's limits.
    pub(crate) access: InstanceAccess,
    /// What the app asked for.
    pub(crate) params: StartParams,
    /// A cozy session cookie to set (after a session code or a short-run session).
    pub(crate) new_session: Option<SessionCookie>,
    /// The host the flow starts on (`Host`).
    pub(crate) host: Option<String>,
}

impl FromRequest for StartCaller {
    type Error = Page;
    type Future = LocalBoxFuture<'static, Result<Self, Page>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            limit(&req, Group::Start)?;
            let s = services(&req)?;
            // Cheap checks first: a bad request must not burn the session code.
            let q = Query::parse(req.query_string())?;
            let params = start_params(&req, &q)?;
            let (host, cookies) = (host(&req), cookies(&req));
            s.flows.check_fits(&params, host.as_deref())?;
            let started = s
                .callers
                .instance_for_start(StartCredentials {
                    host: host.as_deref(),
                    cookies: &cookies,
                    session_code: q.one("session_code")?,
                    bearer: bearer(&req),
                    id_token: Some(q.bounded("id_token", 8192)?).filter(|t| !t.is_empty()),
                })
                .await
                .map_err(|e| on_new_domain(&req, e))?;
            Ok(StartCaller {
                access: started.access,
                params,
                new_session: started.new_session,
                host,
            })
        })
    }
}

fn start_params(req: &HttpRequest, q: &Query) -> Result<StartParams, Error> {
    let bad = |code, detail: String| Error::BadRequest { code, detail };
    let slug = Slug::parse(q.bounded("slug", 64)?).map_err(|d| bad(ErrorCode::InvalidSlug, d))?;
    let login_hint = q.bounded("login_hint", 256)?.to_owned();
    if login_hint.chars().any(char::is_control) {
        return Err(bad(
            ErrorCode::InvalidLoginHint,
            "login_hint must not contain control characters".into(),
        ));
    }
    let info = req.match_info();
    Ok(StartParams {
        service_id: info.get("type").unwrap_or_default().to_owned(),
        account_id: info.get("id").map(str::to_owned),
        slug,
        client_state: q.bounded("state", 1024)?.to_owned(),
        nonce: q.bounded("nonce", 256)?.to_owned(),
        scope: q.bounded("scope", 4096)?.to_owned(),
        login_hint,
        provider_url: q.bounded("provider_url", 2048)?.to_owned(),
    })
}

/// A browser coming back from a provider: no credential (the state is its proof), but a
/// rate limit.
#[derive(Debug)]
pub(crate) struct RedirectCaller;

impl FromRequest for RedirectCaller {
    type Error = Page;
    type Future = std::future::Ready<Result<Self, Page>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            limit(req, Group::Redirect)
                .map(|()| RedirectCaller)
                .map_err(Page),
        )
    }
}
