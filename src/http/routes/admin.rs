//! `/admin/*`: operators provision account types and instances, issue credentials and
//! manage registered clients. Every handler takes [`AdminCaller`].

use crate::app::{Error, Services};
use crate::http::error::Api;
use crate::http::extractors::AdminCaller;
use crate::http::{read_body, read_json};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

fn type_id(raw: String) -> String {
    // `ctx%2Fgoogle` and `ctx/google` name the same document.
    raw.replace("%2F", "/").replace("%2f", "/")
}

/// Every account type, secrets redacted.
pub(crate) async fn list_account_types(
    _: AdminCaller,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let docs = services.admin.account_types().await?;
    Ok(HttpResponse::Ok().json(json!({"account_types": docs})))
}

/// One account type, secrets redacted.
pub(crate) async fn get_account_type(
    _: AdminCaller,
    path: web::Path<String>,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let doc = services
        .admin
        .account_type(&type_id(path.into_inner()))
        .await?;
    Ok(HttpResponse::Ok().json(doc))
}

/// Validates and stores an account type.
pub(crate) async fn put_account_type(
    _: AdminCaller,
    path: web::Path<String>,
    body: web::Payload,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let id = type_id(path.into_inner());
    let mut doc: Value = read_json(body, "an account type document").await?;
    let obj = doc.as_object_mut().ok_or_else(|| Error::BadRequest {
        code: "invalid_json",
        detail: "the body must be a JSON object".into(),
    })?;
    match obj.get("_id").and_then(Value::as_str) {
        Some(body_id) if body_id != id => {
            return Err(Error::BadRequest {
                code: "id_mismatch",
                detail: format!("the body's _id `{body_id}` differs from the URL's `{id}`"),
            }
            .into())
        }
        _ => {
            obj.insert("_id".into(), id.into());
        }
    }
    let (at, rev) = services.admin.put_account_type(doc).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "id": at.id, "rev": rev})))
}

/// Deletes an account type.
pub(crate) async fn delete_account_type(
    _: AdminCaller,
    path: web::Path<String>,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let id = type_id(path.into_inner());
    services.admin.delete_account_type(&id).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "id": id})))
}

/// Body of `POST /admin/instances`.
#[derive(Debug, Deserialize)]
pub(crate) struct NewInstance {
    domain: String,
    #[serde(default)]
    context: Option<String>,
}

/// Every instance.
pub(crate) async fn list_instances(
    _: AdminCaller,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let list: Vec<Value> = services
        .admin
        .instances()
        .await?
        .iter()
        .map(|i| json!({"domain": i.domain, "prefix": i.prefix, "context": i.context}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"instances": list})))
}

/// Adds an instance, prefix computed as cozy-stack does.
pub(crate) async fn add_instance(
    _: AdminCaller,
    body: web::Payload,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let new: NewInstance = read_json(body, r#"{"domain": .., "context": ..}"#).await?;
    let inst = services
        .admin
        .add_instance(&new.domain, new.context)
        .await?;
    Ok(HttpResponse::Created()
        .json(json!({"domain": inst.domain, "prefix": inst.prefix, "context": inst.context})))
}

/// Issues a one-time session code for `start`.
pub(crate) async fn issue_session_code(
    _: AdminCaller,
    path: web::Path<String>,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let (code, ttl) = services
        .admin
        .issue_session_code(&path.into_inner())
        .await?;
    Ok(HttpResponse::Created()
        .json(json!({"session_code": code.expose(), "expires_in": ttl.as_secs()})))
}

/// Body of `POST /admin/instances/{domain}/tokens`, optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    account_types: Option<Vec<String>>,
}

/// Issues an instance API token, shown once; `{"expires_in": s, "account_types": [..]}`
/// limits it.
pub(crate) async fn issue_api_token(
    _: AdminCaller,
    path: web::Path<String>,
    body: web::Payload,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let raw = read_body(body).await?;
    let limits: NewToken = if raw.is_empty() {
        NewToken::default()
    } else {
        serde_json::from_slice(&raw).map_err(|e| Error::BadRequest {
            code: "invalid_body",
            detail: format!("expected {{\"expires_in\": seconds, \"account_types\": [..]}}: {e}"),
        })?
    };
    let token = services
        .admin
        .issue_api_token(
            &path.into_inner(),
            limits.expires_in.map(std::time::Duration::from_secs),
            limits.account_types,
        )
        .await?;
    Ok(HttpResponse::Created().json(json!({"token": token.expose()})))
}

/// Body of `POST /admin/tokens/revoke`.
#[derive(Debug, Deserialize)]
pub(crate) struct RevokeToken {
    token: String,
}

/// Revokes an instance API token.
pub(crate) async fn revoke_api_token(
    _: AdminCaller,
    body: web::Payload,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let revoke: RevokeToken = read_json(body, r#"{"token": ..}"#).await?;
    services.admin.revoke_api_token(&revoke.token).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true})))
}

/// Every client the broker registered with a provider, secrets redacted.
pub(crate) async fn list_registered_clients(
    _: AdminCaller,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let clients = services.admin.registered_clients().await?;
    Ok(HttpResponse::Ok().json(json!({"registered_clients": clients})))
}

/// What `GET /admin/registered_clients/{id}` reads: the stored registration, or with
/// `?remote=true` what the provider says now (RFC 7592 read).
#[derive(Deserialize)]
pub(crate) struct ReadQuery {
    #[serde(default)]
    remote: bool,
}

/// One registered client, secrets redacted.
pub(crate) async fn get_registered_client(
    _: AdminCaller,
    path: web::Path<String>,
    query: web::Query<ReadQuery>,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let id = type_id(path.into_inner());
    let doc = services.admin.registered_client(&id, query.remote).await?;
    Ok(HttpResponse::Ok().json(doc))
}

/// Body of `PUT /admin/registered_clients/{id}`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    #[serde(default)]
    reset_secret: bool,
}

/// Sends the client's metadata again (RFC 7592 update); `{"reset_secret": true}` also
/// asks for a new secret.
pub(crate) async fn update_registered_client(
    _: AdminCaller,
    path: web::Path<String>,
    body: web::Payload,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let id = type_id(path.into_inner());
    let raw = read_body(body).await?;
    let update: UpdateBody = if raw.is_empty() {
        UpdateBody::default()
    } else {
        serde_json::from_slice(&raw).map_err(|e| Error::BadRequest {
            code: "invalid_body",
            detail: format!("expected {{\"reset_secret\": true|false}}: {e}"),
        })?
    };
    let doc = services
        .admin
        .update_registered_client(&id, update.reset_secret)
        .await?;
    Ok(HttpResponse::Ok().json(doc))
}

/// Deletes the client at the provider (RFC 7592) and here.
pub(crate) async fn unregister_client(
    _: AdminCaller,
    path: web::Path<String>,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    services
        .admin
        .unregister_client(&type_id(path.into_inner()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
