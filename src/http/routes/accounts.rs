//! `POST /accounts/{type}` (client credentials accounts) and `DELETE /accounts/{type}/{id}`
//! (revoke an account's tokens and delete it).

use crate::broker::Broker;
use crate::domain::{account, GrantMode};
use crate::http::auth::token_instance;
use crate::http::error::{Api, AppError};
use crate::http::routes::refresh::jsonapi_account;
use crate::oauth::token_request;
use crate::refresh::reschedule;
use crate::refresh::revoke::revoke_and_delete;
use crate::webhooks::{Event, Kind};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// Revokes the tokens at the provider when it can, then deletes the account.
pub async fn delete(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    let (_, account_id) = path.into_inner();
    let inst = token_instance(&req, &broker).await?;
    let revoked = revoke_and_delete(&broker, &inst, &account_id).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "id": account_id, "revoked": revoked})))
}

/// `POST /accounts/{type}`: for a `client_credentials` type, obtains a token with the
/// type's own credentials and stores it as a new account, kept fresh by the refresher.
pub async fn create(
    req: HttpRequest,
    path: web::Path<String>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    let service_id = path.into_inner();
    let inst = token_instance(&req, &broker).await?;
    let at = broker
        .account_types
        .lookup(&service_id, inst.context.as_deref())
        .await?;
    if at.grant_mode != Some(GrantMode::ClientCredentials) {
        return Err(AppError::BadRequest {
            code: "not_client_credentials",
            detail: format!(
                "account type `{}` is not a client_credentials type: use its start route",
                at.id
            ),
        }
        .into());
    }
    let request = token_request::client_credentials(&at)
        .expect("validated: client_credentials types have a token endpoint");
    let grant = broker
        .metrics
        .time_provider("client_credentials", broker.provider.request_token(&request))
        .await
        .map_err(|e| {
        tracing::warn!(account_type = at.service_id(), error = %e, "client credentials token refused");
        AppError::Provider(e)
    })?;
    let doc = account::from_token_grant(at.service_id(), &grant);
    let id = broker.accounts.create(&inst, &doc).await?;
    reschedule(&broker, &inst, &id, &doc, &at, true).await;
    broker.webhooks.emit(Event {
        kind: Kind::AccountCreated,
        instance: inst.domain.to_string(),
        account_id: id.clone(),
        account_type: at.service_id().to_owned(),
        error: None,
    });
    let saved = broker
        .accounts
        .get(&inst, &id)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    Ok(HttpResponse::Created()
        .insert_header((header::CONTENT_TYPE, "application/vnd.api+json"))
        .body(jsonapi_account(&saved).to_string()))
}
