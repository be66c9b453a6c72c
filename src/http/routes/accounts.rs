//! `POST /accounts/{type}` (client credentials accounts), `DELETE /accounts/{type}/{id}`
//! (revoke an account's tokens and delete it), `POST /accounts/{type}/{id}/refresh`
//! (konnectors get fresh tokens) and `GET /accounts/{type}/{id}/status`.

use crate::app::audit::Actor;
use crate::app::Services;
use crate::domain::account::Account;
use crate::http::error::Api;
use crate::http::extractors::InstanceCaller;
use crate::http::query::Query;
use crate::http::request_log::current_request_id;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

/// For a `client_credentials` type, obtains a token and stores it as a new account.
pub(crate) async fn create(
    InstanceCaller(access): InstanceCaller,
    path: web::Path<String>,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let saved = services
        .accounts
        .create_client_credentials(&access, &path.into_inner())
        .await?;
    Ok(jsonapi(HttpResponse::Created(), &jsonapi_account(&saved)))
}

/// Revokes the tokens at the provider when it can, then deletes the account.
pub(crate) async fn delete(
    InstanceCaller(access): InstanceCaller,
    path: web::Path<(String, String)>,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let (_, account_id) = path.into_inner();
    let actor = Actor::konnector(access.instance.domain.as_str(), current_request_id());
    let revoked = services
        .accounts
        .revoke_and_delete(&actor, &access, &account_id)
        .await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "id": account_id, "revoked": revoked})))
}

/// Refreshes the account and answers it as a JSON:API document, as cozy-stack does.
///
/// A refresh asked within `refresh.fresh_window_secs` (5 s by default) of the last one,
/// while the access token outlives that window, answers the tokens just stored without
/// calling the provider: concurrent konnectors and a late caller get one refresh, not two.
/// `?force=true` (a konnector whose new token the provider refused) refreshes anyway.
pub(crate) async fn refresh(
    InstanceCaller(access): InstanceCaller,
    path: web::Path<(String, String)>,
    req: actix_web::HttpRequest,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    // The `{type}` segment is ignored, as in cozy-stack: the account names its type.
    let (_, account_id) = path.into_inner();
    let force = Query::parse(req.query_string())?.flag("force")?;
    let saved = services
        .refreshes
        .refresh_as(&access, &account_id, force)
        .await?;
    Ok(jsonapi(HttpResponse::Ok(), &jsonapi_account(&saved)))
}

/// Answers `active`, `expires_at` and `scope` of the account's access token.
pub(crate) async fn status(
    InstanceCaller(access): InstanceCaller,
    path: web::Path<(String, String)>,
    services: web::Data<Services>,
) -> Result<HttpResponse, Api> {
    let (service_id, account_id) = path.into_inner();
    let s = services
        .accounts
        .status(&access, &service_id, &account_id)
        .await?;
    let mut attributes = Map::new();
    attributes.insert("active".into(), s.active.into());
    attributes.insert(
        "expires_at".into(),
        s.expires_at.map_or(Value::Null, |t| t.to_rfc3339().into()),
    );
    attributes.insert("scope".into(), s.scope.map_or(Value::Null, Value::from));
    attributes.insert("source".into(), s.source.into());
    attributes.insert("reconnect_needed".into(), s.reconnect_needed.into());
    let body = json!({"data": {"type": "io.cozy.accounts.status", "id": account_id,
                               "attributes": attributes}});
    Ok(jsonapi(HttpResponse::Ok(), &body))
}

fn jsonapi(mut builder: actix_web::HttpResponseBuilder, body: &Value) -> HttpResponse {
    builder
        .insert_header((header::CONTENT_TYPE, "application/vnd.api+json"))
        .body(body.to_string())
}

/// cozy-stack's JSON:API envelope: the document minus `_id`/`_rev` as attributes.
fn jsonapi_account(account: &Account) -> Value {
    let doc = account.document();
    let id = doc.get("_id").cloned().unwrap_or(Value::Null);
    let rev = doc.get("_rev").cloned().unwrap_or(Value::Null);
    let mut attributes = doc.clone();
    if let Some(o) = attributes.as_object_mut() {
        o.remove("_id");
        o.remove("_rev");
    }
    let link = format!("/data/io.cozy.accounts/{}", id.as_str().unwrap_or_default());
    json!({"data": {"type": "io.cozy.accounts", "id": id, "attributes": attributes,
                    "meta": {"rev": rev}, "links": {"self": link}}})
}
