//! `GET /accounts/{type}/{id}/status`: what an account's token is worth now.
//!
//! With an `introspection_endpoint` (RFC 7662) the provider says; without one, the
//! broker answers from what it stored (`"source": "stored"`).

use crate::broker::Broker;
use crate::domain::account::{self, RECONNECT_NEEDED};
use crate::domain::account_type::service_id_of;
use crate::http::auth::token_instance;
use crate::http::error::{Api, AppError};
use crate::oauth::{token_request, ProviderError};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// Answers `active`, `expires_at` and `scope` of the account's access token.
pub async fn status(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    broker: web::Data<Broker>,
) -> Result<HttpResponse, Api> {
    let (service_id, account_id) = path.into_inner();
    // Permission before existence, as for refresh.
    let inst = token_instance(&req, &broker).await?;
    let doc = broker
        .accounts
        .get(&inst, &account_id)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    let type_id = doc
        .get("account_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if service_id_of(type_id) != service_id {
        return Err(AppError::NotFound("account of this type").into());
    }
    let at = broker
        .account_types
        .lookup(&service_id, inst.context.as_deref())
        .await?;
    let at = broker
        .client_type(&at, account::provider_url_of(&doc).as_ref())
        .await?;
    let token = doc
        .pointer("/oauth/access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    let reconnect_needed = doc.get(RECONNECT_NEEDED).is_some();

    let mut attributes = match token.and_then(|t| token_request::introspection(&at, t)) {
        Some(request) => {
            let (_, reply) = broker
                .metrics
                .time_provider("introspect", broker.provider.form_json(&request))
                .await
                .map_err(AppError::Provider)?;
            introspected(&reply)
                .ok_or(AppError::Provider(ProviderError::Garbage { status: 200 }))?
        }
        None => {
            let expires_at = account::expires_at_of(&doc);
            let active =
                token.is_some() && !reconnect_needed && expires_at.is_none_or(|e| e > Utc::now());
            let mut m = Map::new();
            m.insert("active".into(), active.into());
            m.insert("expires_at".into(), rfc3339(expires_at));
            m.insert(
                "scope".into(),
                doc.pointer("/oauth_callback_results/scope")
                    .cloned()
                    .unwrap_or(Value::Null),
            );
            m.insert("source".into(), "stored".into());
            m
        }
    };
    attributes.insert("reconnect_needed".into(), reconnect_needed.into());
    let body = json!({"data": {"type": "io.cozy.accounts.status", "id": account_id,
                               "attributes": attributes}});
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/vnd.api+json"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body.to_string()))
}

/// The RFC 7662 reply's `active`, `exp` and `scope`; `None` without a boolean `active`.
fn introspected(reply: &Map<String, Value>) -> Option<Map<String, Value>> {
    let active = reply.get("active")?.as_bool()?;
    let expires_at = reply
        .get("exp")
        .and_then(Value::as_i64)
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0));
    let mut m = Map::new();
    m.insert("active".into(), active.into());
    m.insert("expires_at".into(), rfc3339(expires_at));
    m.insert(
        "scope".into(),
        reply
            .get("scope")
            .filter(|v| v.is_string())
            .cloned()
            .unwrap_or(Value::Null),
    );
    m.insert("source".into(), "introspection".into());
    Some(m)
}

fn rfc3339(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| {
        t.to_rfc3339_opts(SecondsFormat::Secs, true).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_introspection_reply_without_a_boolean_active_is_garbage() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert!(introspected(&m(json!({"active": "true"}))).is_none());
        assert!(introspected(&m(json!({"exp": 1}))).is_none());
        let ok = introspected(&m(
            json!({"active": true, "exp": 2000000000, "scope": "a b"}),
        ))
        .unwrap();
        assert_eq!(ok["expires_at"], "2033-05-18T03:33:20Z");
        assert_eq!(ok["scope"], "a b");
    }
}
