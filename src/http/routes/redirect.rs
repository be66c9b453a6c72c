//! `GET /accounts/{type}/redirect`: the provider sends the browser back here.

use crate::broker::{now, Broker};
use crate::domain::account;
use crate::domain::provider_url::ProviderUrl;
use crate::domain::{FlowState, Instance};
use crate::http::error::{AppError, Page};
use crate::http::query::Query;
use crate::http::rate_limit::Group;
use crate::oauth::provider::is_sane_code;
use crate::oauth::query::encode_sorted;
use crate::oauth::token_request::{self, CodeExchange};
use crate::refresh::reschedule;
use crate::store::{id_of, StoreError};
use crate::webhooks::{Event, Kind};
use actix_web::cookie::Cookie;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

/// Where the flow ends: the app of the flow's instance, told the outcome in its query.
struct AppReturn {
    base: String,
    client_state: String,
    connection_id: Option<String>,
    connection_deleted: Option<String>,
    /// The flow's binding cookie, removed once the flow is over.
    binding_cookie: Option<String>,
}

impl AppReturn {
    /// 303 to the app with the query keys sorted, as cozy-stack's `redirectToApp`.
    fn answer(&self, account: Option<&str>, error: Option<&str>) -> HttpResponse {
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
        let location = if pairs.is_empty() {
            self.base.clone()
        } else {
            format!("{}?{}", self.base, encode_sorted(&pairs))
        };
        let mut answer = HttpResponse::SeeOther();
        answer.insert_header((header::LOCATION, location));
        if let Some(name) = &self.binding_cookie {
            let mut gone = Cookie::build(name.clone(), "").path("/accounts").finish();
            gone.make_removal();
            answer.cookie(gone);
        }
        answer.finish()
    }
}

/// Consumes the state, obtains the tokens, writes the account and returns to the app.
pub async fn redirect(
    req: HttpRequest,
    path: web::Path<String>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Page> {
    let outcome = finish(req, path, &broker).await;
    if let Err(Page(e)) = &outcome {
        // Before a valid state the type in the path is the caller's word: not a label.
        failed(&broker, "-", e.status_and_code().1);
    }
    outcome
}

fn failed(broker: &Broker, account_type: &str, reason: &str) {
    broker
        .metrics
        .flows_failed
        .with_label_values(&[account_type, reason])
        .inc();
}

async fn finish(
    req: HttpRequest,
    path: web::Path<String>,
    broker: &Broker,
) -> Result<HttpResponse, Page> {
    broker.rate_limits.check(Group::Redirect, &req)?;
    let service_id = path.into_inner();
    let q = Query::parse(req.query_string())?;
    let state = q.one("state")?.ok_or_else(|| AppError::BadRequest {
        code: "state_missing",
        detail: "the provider came back without a state; start the connection again".into(),
    })?;
    let connection_id = q.bounded("connection_id", 256)?.to_owned();
    let connection_deleted = q.bounded("connection_deleted", 256)?.to_owned();
    let cookie_name = FlowState::binding_cookie_name(state);
    let cookie = req.cookie(&cookie_name);
    let flow = broker
        .flows
        .consume(
            state,
            &service_id,
            now(),
            cookie.as_ref().map(|c| c.value()),
        )
        .await?;
    let inst = broker
        .instances
        .get(&flow.instance)
        .await?
        .ok_or_else(|| AppError::UnknownInstance(flow.instance.to_string()))?;
    let back = AppReturn {
        base: format!(
            "https://{}/",
            inst.domain.app_host(flow.slug.as_str(), broker.subdomains)
        ),
        client_state: flow.client_state.clone(),
        connection_id: (!connection_id.is_empty()).then_some(connection_id),
        connection_deleted: (!connection_deleted.is_empty()).then_some(connection_deleted),
        binding_cookie: flow.binding.is_some().then_some(cookie_name),
    };
    // From here the state was valid: every failure goes back to the app as `?error=`.
    if let Some(error) = q.one("error").ok().flatten() {
        let code = if is_sane_code(error) {
            error
        } else {
            "server_error"
        };
        tracing::info!(account_type = %service_id, error = code, "provider refused the authorization");
        failed(broker, &flow.account_type, code);
        return Ok(back.answer(None, Some(code)));
    }
    Ok(
        match complete(
            broker,
            &inst,
            &flow,
            state,
            &q,
            back.connection_id.as_deref(),
        )
        .await
        {
            Ok(account_id) => {
                tracing::info!(account_type = %service_id, instance = %inst.domain, "flow completed");
                broker
                    .metrics
                    .flows_completed
                    .with_label_values(&[flow.account_type.as_str()])
                    .inc();
                back.answer(Some(&account_id), None)
            }
            Err(code) => {
                failed(broker, &flow.account_type, &code);
                back.answer(None, Some(&code))
            }
        },
    )
}

/// Builds and writes the account; `Err` is the error code the app is told.
async fn complete(
    broker: &Broker,
    inst: &Instance,
    flow: &FlowState,
    state: &str,
    q: &Query,
    connection_id: Option<&str>,
) -> Result<String, String> {
    let service_id = flow.account_type.as_str();
    let at = broker
        .account_types
        .lookup(service_id, inst.context.as_deref())
        .await
        .map_err(|e| {
            tracing::error!(account_type = service_id, error = %e, "account type unusable at redirect");
            "server_error".to_owned()
        })?;
    let provider = flow
        .provider_url
        .as_deref()
        .and_then(ProviderUrl::from_stored);
    let at = broker
        .client_type(&at, provider.as_ref())
        .await
        .map_err(|e| {
            tracing::error!(account_type = service_id, error = %e, "no client at redirect");
            "server_error".to_owned()
        })?;
    let access_token = q.one("access_token").ok().flatten();
    let mut doc = if let Some(token) = access_token {
        account::from_redirect_token(service_id, token)
    } else if at.token_endpoint.is_none() {
        account::from_redirect_query(
            service_id,
            at.client_id.as_ref().map(|c| c.as_str()),
            at.client_secret.as_ref().map(|c| c.secret().as_str()),
            q.pairs(),
        )
    } else {
        let code = q.one("code").ok().flatten().ok_or_else(|| {
            tracing::info!(account_type = service_id, "redirect without code");
            "invalid_request".to_owned()
        })?;
        let code = oauth2::AuthorizationCode::new(code.to_owned());
        let exchange = CodeExchange {
            code: &code,
            redirect_uri: &flow.redirect_uri,
            state,
            nonce: &flow.nonce,
            code_verifier: flow.pkce_verifier.as_deref(),
        };
        let request =
            token_request::code_exchange(&at, &exchange).expect("token endpoint checked above");
        let grant = broker
            .metrics
            .time_provider("exchange", broker.provider.request_token(&request))
            .await
            .map_err(|e| {
                tracing::warn!(account_type = service_id, error = %e, "code exchange failed");
                e.app_error_code()
            })?;
        account::from_token_grant(service_id, &grant)
    };
    if let Some(p) = &provider {
        account::record_provider_url(&mut doc, p.as_str());
    }
    // Who connected, so the Home app can tell accounts apart; tokens matter more, so a
    // failure here is only logged.
    let identity = match (&at.userinfo_endpoint, doc.pointer("/oauth/access_token")) {
        (Some(endpoint), Some(Value::String(token))) => {
            userinfo(broker, service_id, endpoint, token).await
        }
        _ => None,
    };
    if let Some(who) = &identity {
        account::apply_identity(&mut doc, who);
    }
    let store_failed = |e: StoreError| {
        tracing::error!(account_type = service_id, error = %e, "account write failed");
        "server_error".to_owned()
    };
    if let Some(cid) = connection_id {
        account::record_connection_id(&mut doc, cid);
    }
    // The account this authorization renews: the one reconnected, or the one of the
    // same provider connection.
    let existing = match (&flow.account_id, connection_id) {
        (Some(id), _) => broker.accounts.get(inst, id).await.map_err(store_failed)?,
        (None, Some(cid)) => broker
            .accounts
            .find_by_connection_id(inst, service_id, cid)
            .await
            .map_err(store_failed)?,
        (None, None) => None,
    };
    let event = match &existing {
        None => Some(Kind::AccountCreated),
        Some(_) if flow.account_id.is_some() => Some(Kind::AccountReconnected),
        Some(e) if e.get(account::RECONNECT_NEEDED).is_some() => Some(Kind::AccountReconnected),
        Some(_) => None,
    };
    let created = existing.is_none();
    let (id, written) = match existing {
        Some(existing) => {
            let saved = broker
                .accounts
                .update_with(inst, existing, |d| {
                    account::merge_authorization(d, &doc);
                    if let Some(who) = &identity {
                        account::apply_identity(d, who);
                    }
                })
                .await
                .map_err(store_failed)?;
            (id_of(&saved).unwrap_or_default().to_owned(), saved)
        }
        None => (
            broker
                .accounts
                .create(inst, &doc)
                .await
                .map_err(store_failed)?,
            doc,
        ),
    };
    reschedule(broker, inst, &id, &written, &at, created).await;
    if let Some(kind) = event {
        broker.webhooks.emit(Event {
            kind,
            instance: inst.domain.to_string(),
            account_id: id.clone(),
            account_type: service_id.to_owned(),
            error: None,
        });
    }
    Ok(id)
}

/// Reads the provider's user info with the new access token.
async fn userinfo(
    broker: &Broker,
    service_id: &str,
    endpoint: &url::Url,
    token: &str,
) -> Option<account::Identity> {
    let call = broker
        .provider
        .json(reqwest::Method::GET, endpoint, Some(token), None);
    match broker.metrics.time_provider("userinfo", call).await {
        Ok((_, info)) => Some(account::Identity::from_userinfo(&info)),
        Err(e) => {
            tracing::warn!(account_type = service_id, error = %e, "user info unavailable");
            None
        }
    }
}
