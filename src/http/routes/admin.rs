//! `/admin/*`: operators provision account types and instances, and issue credentials.

use crate::broker::{now, Broker};
use crate::domain::account_type::redacted;
use crate::domain::Domain;
use crate::http::auth::require_admin;
use crate::http::error::{Api, AppError};
use crate::http::read_json;
use crate::store::instances::AddError;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

fn type_id(raw: String) -> String {
    // `ctx%2Fgoogle` and `ctx/google` name the same document.
    raw.replace("%2F", "/").replace("%2f", "/")
}

/// Every account type, secrets redacted.
pub async fn list_account_types(
    req: HttpRequest,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    require_admin(&req, &broker)?;
    let docs: Vec<Value> = broker
        .account_types
        .list_documents()
        .await?
        .iter()
        .map(redacted)
        .collect();
    Ok(HttpResponse::Ok().json(json!({"account_types": docs})))
}

/// One account type, secrets redacted.
pub async fn get_account_type(
    req: HttpRequest,
    path: web::Path<String>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    require_admin(&req, &broker)?;
    let id = type_id(path.into_inner());
    let doc = broker
        .account_types
        .get_document(&id)
        .await?
        .ok_or(AppError::NotFound("account type"))?;
    Ok(HttpResponse::Ok().json(redacted(&doc)))
}

/// Validates and stores an account type.
pub async fn put_account_type(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    require_admin(&req, &broker)?;
    let id = type_id(path.into_inner());
    let mut doc: Value = read_json(body, "an account type document").await?;
    let obj = doc.as_object_mut().ok_or_else(|| AppError::BadRequest {
        code: "invalid_json",
        detail: "the body must be a JSON object".into(),
    })?;
    match obj.get("_id").and_then(Value::as_str) {
        Some(body_id) if body_id != id => {
            return Err(AppError::BadRequest {
                code: "id_mismatch",
                detail: format!("the body's _id `{body_id}` differs from the URL's `{id}`"),
            }
            .into())
        }
        _ => {
            obj.insert("_id".into(), id.clone().into());
        }
    }
    let (at, rev) = broker.account_types.put(doc).await?;
    tracing::info!(account_type = %at.id, "account type stored");
    Ok(HttpResponse::Ok().json(json!({"ok": true, "id": at.id, "rev": rev})))
}

/// Deletes an account type.
pub async fn delete_account_type(
    req: HttpRequest,
    path: web::Path<String>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    require_admin(&req, &broker)?;
    let id = type_id(path.into_inner());
    if broker.account_types.delete(&id).await? {
        tracing::info!(account_type = %id, "account type deleted");
        Ok(HttpResponse::Ok().json(json!({"ok": true, "id": id})))
    } else {
        Err(AppError::NotFound("account type").into())
    }
}

/// Body of `POST /admin/instances`.
#[derive(Debug, Deserialize)]
pub struct NewInstance {
    domain: String,
    #[serde(default)]
    context: Option<String>,
}

/// Every instance.
pub async fn list_instances(
    req: HttpRequest,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    require_admin(&req, &broker)?;
    let list: Vec<Value> = broker
        .instances
        .list()
        .await?
        .iter()
        .map(|i| json!({"domain": i.domain, "prefix": i.prefix, "context": i.context}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"instances": list})))
}

/// Adds an instance, prefix computed as cozy-stack does.
pub async fn add_instance(
    req: HttpRequest,
    body: web::Payload,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    require_admin(&req, &broker)?;
    let new: NewInstance = read_json(body, r#"{"domain": .., "context": ..}"#).await?;
    let domain = Domain::parse(&new.domain).map_err(|detail| AppError::BadRequest {
        code: "invalid_domain",
        detail,
    })?;
    let inst = broker
        .instances
        .add(domain, new.context)
        .await
        .map_err(|e| match e {
            AddError::Exists(d) => AppError::Conflict(format!("instance `{d}` already exists")),
            AddError::Store(s) => AppError::Store(s),
        })?;
    tracing::info!(instance = %inst.domain, "instance added");
    Ok(HttpResponse::Created()
        .json(json!({"domain": inst.domain, "prefix": inst.prefix, "context": inst.context})))
}

async fn known_instance(broker: &Broker, raw: &str) -> Result<Domain, AppError> {
    let domain = Domain::parse(raw).map_err(|detail| AppError::BadRequest {
        code: "invalid_domain",
        detail,
    })?;
    broker
        .instances
        .get(&domain)
        .await?
        .map(|i| i.domain)
        .ok_or_else(|| AppError::UnknownInstance(domain.to_string()))
}

/// Issues a one-time session code for `start`.
pub async fn issue_session_code(
    req: HttpRequest,
    path: web::Path<String>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    require_admin(&req, &broker)?;
    let domain = known_instance(&broker, &path.into_inner()).await?;
    let ttl = broker.session_code_ttl.as_secs() as i64;
    let code = broker
        .credentials
        .issue_session_code(&domain, now() + ttl)
        .await?;
    Ok(HttpResponse::Created().json(json!({"session_code": code.expose(), "expires_in": ttl})))
}

/// Issues an instance API token, shown once.
pub async fn issue_api_token(
    req: HttpRequest,
    path: web::Path<String>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    require_admin(&req, &broker)?;
    let domain = known_instance(&broker, &path.into_inner()).await?;
    let token = broker.credentials.issue_api_token(&domain, now()).await?;
    tracing::info!(instance = %domain, "API token issued");
    Ok(HttpResponse::Created().json(json!({"token": token.expose()})))
}

/// Body of `POST /admin/tokens/revoke`.
#[derive(Debug, Deserialize)]
pub struct RevokeToken {
    token: String,
}

/// Revokes an instance API token.
pub async fn revoke_api_token(
    req: HttpRequest,
    body: web::Payload,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    require_admin(&req, &broker)?;
    let revoke: RevokeToken = read_json(body, r#"{"token": ..}"#).await?;
    if broker.credentials.revoke_api_token(&revoke.token).await? {
        tracing::info!("API token revoked");
        Ok(HttpResponse::Ok().json(json!({"ok": true})))
    } else {
        Err(AppError::NotFound("token").into())
    }
}

/// Every client the broker registered with a provider, secrets redacted.
pub async fn list_registered_clients(
    req: HttpRequest,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    require_admin(&req, &broker)?;
    let clients = broker.registrations.list().await?;
    Ok(HttpResponse::Ok().json(json!({"registered_clients": clients})))
}

/// What `GET /admin/registered_clients/{id}` reads: the stored registration, or with
/// `?remote=true` what the provider says now (RFC 7592 read).
#[derive(Deserialize)]
pub struct ReadQuery {
    #[serde(default)]
    remote: bool,
}

/// One registered client, secrets redacted.
pub async fn get_registered_client(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ReadQuery>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    require_admin(&req, &broker)?;
    let id = type_id(path.into_inner());
    let doc = if query.remote {
        broker.registrations.read_at_provider(&id).await?
    } else {
        broker.registrations.get(&id).await?
    };
    Ok(HttpResponse::Ok().json(doc))
}

/// Body of `PUT /admin/registered_clients/{id}`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default)]
    reset_secret: bool,
}

/// Sends the client's metadata again (RFC 7592 update); `{"reset_secret": true}` also
/// asks for a new secret.
pub async fn update_registered_client(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    require_admin(&req, &broker)?;
    let id = type_id(path.into_inner());
    let raw = crate::http::read_body(body).await?;
    let update: UpdateBody = if raw.is_empty() {
        UpdateBody::default()
    } else {
        serde_json::from_slice(&raw).map_err(|e| AppError::BadRequest {
            code: "invalid_body",
            detail: format!("expected {{\"reset_secret\": true|false}}: {e}"),
        })?
    };
    let doc = broker.update_registration(&id, update.reset_secret).await?;
    Ok(HttpResponse::Ok().json(doc))
}

/// Deletes the client at the provider (RFC 7592) and here.
pub async fn unregister_client(
    req: HttpRequest,
    path: web::Path<String>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    require_admin(&req, &broker)?;
    let id = type_id(path.into_inner());
    broker.registrations.unregister(&id).await?;
    Ok(HttpResponse::NoContent().finish())
}
