//! `/admin/*`: operators provision account types and instances, issue credentials and
//! manage registered clients. Every handler takes [`AdminCaller`].

use crate::app::account_health::Filter;
use crate::app::{Error, Services};
use crate::domain::time::parse_since;
use crate::domain::ErrorCode;
use crate::domain::Timestamp;
use crate::http::error::Api;
use crate::http::extractors::AdminCaller;
use crate::http::query::Query;
use crate::http::{read_body, read_json};
use actix_web::{web, HttpRequest, HttpResponse};
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
    caller: AdminCaller,
    path: web::Path<String>,
    body: web::Payload,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let id = type_id(path.into_inner());
    let mut doc: Value = read_json(body, "an account type document").await?;
    let obj = doc.as_object_mut().ok_or_else(|| Error::BadRequest {
        code: ErrorCode::InvalidJson,
        detail: "the body must be a JSON object".into(),
    })?;
    match obj.get("_id").and_then(Value::as_str) {
        Some(body_id) if body_id != id => {
            return Err(Error::BadRequest {
                code: ErrorCode::IdMismatch,
                detail: format!("the body's _id `{body_id}` differs from the URL's `{id}`"),
            }
            .into())
        }
        _ => {
            obj.insert("_id".into(), id.into());
        }
    }
    let (at, rev) = services.admin.put_account_type(&caller.0, doc).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "id": at.id, "rev": rev})))
}

/// Deletes an account type.
pub(crate) async fn delete_account_type(
    caller: AdminCaller,
    path: web::Path<String>,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let id = type_id(path.into_inner());
    services.admin.delete_account_type(&caller.0, &id).await?;
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
    caller: AdminCaller,
    body: web::Payload,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let new: NewInstance = read_json(body, r#"{"domain": .., "context": ..}"#).await?;
    let inst = services
        .admin
        .add_instance(&caller.0, &new.domain, new.context)
        .await?;
    Ok(HttpResponse::Created()
        .json(json!({"domain": inst.domain, "prefix": inst.prefix, "context": inst.context})))
}

/// Issues a one-time session code for `start`.
pub(crate) async fn issue_session_code(
    caller: AdminCaller,
    path: web::Path<String>,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let (code, ttl) = services
        .admin
        .issue_session_code(&caller.0, &path.into_inner())
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
    caller: AdminCaller,
    path: web::Path<String>,
    body: web::Payload,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let raw = read_body(body).await?;
    let limits: NewToken = if raw.is_empty() {
        NewToken::default()
    } else {
        serde_json::from_slice(&raw).map_err(|e| Error::BadRequest {
            code: ErrorCode::InvalidBody,
            detail: format!("expected {{\"expires_in\": seconds, \"account_types\": [..]}}: {e}"),
        })?
    };
    let token = services
        .admin
        .issue_api_token(
            &caller.0,
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
    caller: AdminCaller,
    body: web::Payload,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let revoke: RevokeToken = read_json(body, r#"{"token": ..}"#).await?;
    services
        .admin
        .revoke_api_token(&caller.0, &revoke.token)
        .await?;
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
    caller: AdminCaller,
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
            code: ErrorCode::InvalidBody,
            detail: format!("expected {{\"reset_secret\": true|false}}: {e}"),
        })?
    };
    let doc = services
        .admin
        .update_registered_client(&caller.0, &id, update.reset_secret)
        .await?;
    Ok(HttpResponse::Ok().json(doc))
}

/// Deletes the client at the provider (RFC 7592) and here.
pub(crate) async fn unregister_client(
    caller: AdminCaller,
    path: web::Path<String>,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    services
        .admin
        .unregister_client(&caller.0, &type_id(path.into_inner()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Most records one listing page holds.
const MAX_PAGE: usize = 1000;
/// Records a listing page holds when the caller names no `limit`.
const DEFAULT_PAGE: usize = 100;

/// `limit` as a page size, bounded.
fn page_size(q: &Query) -> Result<usize, Error> {
    match q.one("limit")? {
        None => Ok(DEFAULT_PAGE),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(Error::BadRequest {
                code: ErrorCode::InvalidLimit,
                detail: format!("limit must be a whole number from 1 to {MAX_PAGE}"),
            }),
        },
    }
}

/// Accounts the broker keeps fresh, with their health, a page at a time:
/// `?instance=&type=&reconnect_needed=true&failing=true&after=&limit=`.
pub(crate) async fn list_accounts(
    _: AdminCaller,
    req: HttpRequest,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let q = Query::parse(req.query_string())?;
    let filter = Filter {
        instance: q.one("instance")?.map(str::to_owned),
        account_type: q.one("type")?.map(str::to_owned),
        reconnect_needed: q.flag("reconnect_needed")?,
        failing: q.flag("failing")?,
    };
    let page = services
        .admin
        .accounts_health(&filter, q.one("after")?, page_size(&q)?)
        .await?;
    Ok(HttpResponse::Ok().json(json!({"accounts": page.records, "next": page.next})))
}

/// Each provider's health: accounts, healthy, failing, needing reconnection, token
/// endpoint p50/p99, last error.
pub(crate) async fn providers_health(
    _: AdminCaller,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let providers = services.admin.providers_health().await?;
    Ok(HttpResponse::Ok().json(json!({"providers": providers})))
}

/// The audit trail since `?since=` (RFC 3339, or seconds ago like `3600`), a page at a
/// time (`after`, `limit`).
pub(crate) async fn audit(
    _: AdminCaller,
    req: HttpRequest,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let q = Query::parse(req.query_string())?;
    let now = services.clock.now();
    let since = match q.one("since")? {
        None => Timestamp::from_unix_secs(0),
        Some(raw) => parse_since(raw, now).ok_or_else(|| Error::BadRequest {
            code: ErrorCode::InvalidSince,
            detail: "since must be an RFC 3339 time or a number of seconds ago".into(),
        })?,
    };
    let (entries, next) = services
        .admin
        .audit_since(since, q.one("after")?, page_size(&q)?)
        .await?;
    Ok(HttpResponse::Ok().json(json!({"entries": entries, "next": next})))
}
