//! `GET /accounts/{type}/start` (the Home app sends the browser here to begin a flow) and
//! `GET /accounts/{type}/{id}/reconnect` (the same, for an account that exists).

use crate::broker::{now, Broker, ClientError};
use crate::domain::account;
use crate::domain::account_type::service_id_of;
use crate::domain::provider_url::ProviderUrl;
use crate::domain::secret::{random_hex, sha256_hex};
use crate::domain::{FlowState, Slug};
use crate::http::auth::instance_for_start;
use crate::http::error::{AppError, Page};
use crate::http::query::Query;
use crate::http::rate_limit::Group;
use crate::oauth::authorize::{authorization_url, AuthorizeParams};
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

/// Stores a flow state and answers 303 to the provider's authorization page.
pub async fn start(
    req: HttpRequest,
    path: web::Path<String>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Page> {
    begin(&req, &path.into_inner(), None, &broker).await
}

/// Runs a new authorization whose tokens replace those of account `{id}` (same id).
pub async fn reconnect(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Page> {
    let (service_id, account_id) = path.into_inner();
    begin(&req, &service_id, Some(account_id), &broker).await
}

async fn begin(
    req: &HttpRequest,
    service_id: &str,
    account_id: Option<String>,
    broker: &Broker,
) -> Result<HttpResponse, Page> {
    broker.rate_limits.check(Group::Start, req)?;
    let q = Query::parse(req.query_string())?;
    // Cheap checks first: a bad request must not burn the session code.
    let slug = Slug::parse(q.bounded("slug", 64)?).map_err(|detail| AppError::BadRequest {
        code: "invalid_slug",
        detail,
    })?;
    let client_state = q.bounded("state", 1024)?.to_owned();
    let nonce = q.bounded("nonce", 256)?.to_owned();
    let scope = q.bounded("scope", 4096)?.to_owned();
    let login_hint = q.bounded("login_hint", 256)?.to_owned();
    if login_hint.chars().any(char::is_control) {
        return Err(AppError::BadRequest {
            code: "invalid_login_hint",
            detail: "login_hint must not contain control characters".into(),
        }
        .into());
    }
    let provider_url = q.bounded("provider_url", 2048)?.to_owned();
    let session_code = q.one("session_code")?;

    let domain = instance_for_start(req, session_code, broker).await?;
    let inst = broker
        .instances
        .get(&domain)
        .await?
        .ok_or_else(|| AppError::UnknownInstance(domain.to_string()))?;
    let at = broker
        .account_types
        .lookup(service_id, inst.context.as_deref())
        .await?;
    if !at.grant_mode.is_some_and(|m| m.has_authorization_step()) {
        return Err(AppError::NoAuthorizationStep(at.id.clone()).into());
    }
    let mut provider = match (provider_url.as_str(), at.per_account()) {
        ("", _) => None,
        (_, false) => return Err(ClientError::FixedProvider(at.service_id().to_owned()).into()),
        (raw, true) => Some(ProviderUrl::parse(
            raw,
            &at.provider_url_patterns,
            broker.insecure_provider_urls,
        )?),
    };
    if let Some(id) = &account_id {
        let account = broker
            .accounts
            .get(&inst, id)
            .await?
            .ok_or(AppError::NotFound("account"))?;
        // A reconnection goes back to the account's own provider.
        if let Some(own) = account::provider_url_of(&account) {
            provider = Some(own);
        }
        let its_type = account
            .get("account_type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        if service_id_of(its_type) != at.service_id() {
            return Err(AppError::NotFound("account of this type").into());
        }
    }
    // Registers with the provider first when the type has no fixed client.
    let at = broker.client_type(&at, provider.as_ref()).await?;
    let redirect_uri = broker.redirect_uri_of(&at);

    let pkce = at.pkce.then(oauth2::PkceCodeChallenge::new_random_sha256);
    let binding = broker.flow_binding.then(|| random_hex(16));
    let flow = FlowState {
        instance: inst.domain.clone(),
        account_type: at.service_id().to_owned(),
        client_state,
        nonce,
        slug,
        redirect_uri: redirect_uri.clone(),
        expires_at: now() + broker.flow_ttl.as_secs() as i64,
        used: false,
        pkce_verifier: pkce.as_ref().map(|(_, v)| v.secret().clone()),
        binding: binding.as_deref().map(sha256_hex),
        account_id,
        provider_url: provider.as_ref().map(|p| p.as_str().to_owned()),
    };
    let state = broker.flows.begin(&flow).await?;
    let url = authorization_url(
        &at,
        &AuthorizeParams {
            scope: &scope,
            redirect_uri: &redirect_uri,
            state: &state,
            code_challenge: pkce.as_ref().map(|(c, _)| c.as_str()),
            login_hint: &login_hint,
        },
    )
    .ok_or_else(|| AppError::NoAuthorizationStep(at.id.clone()))?;
    tracing::info!(account_type = at.service_id(), instance = %inst.domain, "flow started");
    broker
        .metrics
        .flows_started
        .with_label_values(&[at.service_id()])
        .inc();
    let mut answer = HttpResponse::SeeOther();
    answer.insert_header((header::LOCATION, url.as_str()));
    if let Some(secret) = binding {
        answer.cookie(
            Cookie::build(FlowState::binding_cookie_name(&state), secret)
                .path("/accounts")
                .http_only(true)
                .secure(true)
                .same_site(SameSite::Lax)
                .max_age(CookieDuration::seconds(broker.flow_ttl.as_secs() as i64))
                .finish(),
        );
    }
    Ok(answer.finish())
}
