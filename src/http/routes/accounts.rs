//! `DELETE /accounts/{type}/{id}`: revoke an account's tokens and delete it.

use crate::broker::Broker;
use crate::http::auth::instance_from_token;
use crate::http::error::{Api, AppError};
use crate::refresh::revoke::revoke_and_delete;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// Revokes the tokens at the provider when it can, then deletes the account.
pub async fn delete(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    let (_, account_id) = path.into_inner();
    let domain = instance_from_token(&req, &broker).await?;
    let inst = broker
        .instances
        .get(&domain)
        .await?
        .ok_or(AppError::BadCredentials)?;
    let revoked = revoke_and_delete(&broker, &inst, &account_id).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "id": account_id, "revoked": revoked})))
}
