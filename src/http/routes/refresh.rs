//! `POST /accounts/{type}/{id}/refresh`: konnectors get fresh tokens.

use crate::broker::Broker;
use crate::http::auth::token_instance;
use crate::http::error::Api;
use crate::refresh::refresh_account;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

/// Refreshes the account and answers it as a JSON:API document, as cozy-stack does.
pub async fn refresh(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    // The `{type}` segment is ignored, as in cozy-stack: the account names its type.
    let (_, account_id) = path.into_inner();
    // Permission before existence: an unauthenticated caller learns nothing about accounts.
    let inst = token_instance(&req, &broker).await?;
    let saved = refresh_account(&broker, &inst, &account_id).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/vnd.api+json"))
        .body(jsonapi_account(&saved).to_string()))
}

/// cozy-stack's JSON:API envelope: the document minus `_id`/`_rev` as attributes.
pub fn jsonapi_account(doc: &Value) -> Value {
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
