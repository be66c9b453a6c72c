//! `GET /accounts/{type}/redirect`: the provider sends the browser back here.

use crate::app::flows::{Confirmation, RedirectParams, Redirected};
use crate::app::{Error, Services};
use crate::domain::ErrorCode;
use crate::domain::FlowState;
use crate::http::error::{escape_html, Page};
use crate::http::extractors::{host, RedirectCaller};
use crate::http::failure_page::failure_page;
use crate::http::query::Query;
use crate::http::read_body;
use actix_web::cookie::Cookie;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

/// Consumes the state, obtains the tokens, writes the account and returns to the app;
/// a flow whose binding cookie did not come back goes on to the instance's host, or to
/// a page asking the person to confirm.
pub(crate) async fn redirect(
    _: RedirectCaller,
    req: HttpRequest,
    path: web::Path<String>,
    services: web::Data<Services>,
) -> Result<HttpResponse, Page> {
    let params = match parse(&req, path.into_inner(), req.query_string(), false) {
        Ok(p) => p,
        Err(e) => return Err(services.flows.refused_before_state(e).into()),
    };
    answer(&req, &services, params).await
}

/// Completes a flow the person confirmed (`POST` of the confirmation page, whose form
/// carries the provider's query as `query`): the binding cookie is not asked for; the
/// state is spent as on `GET`. A form without `query` is a redirect without state.
pub(crate) async fn confirm(
    _: RedirectCaller,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    services: web::Data<Services>,
) -> Result<HttpResponse, Page> {
    let body = read_body(payload).await?;
    let query = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "query")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let params = match parse(&req, path.into_inner(), &query, true) {
        Ok(p) => p,
        Err(e) => return Err(services.flows.refused_before_state(e).into()),
    };
    answer(&req, &services, params).await
}

async fn answer(
    req: &HttpRequest,
    services: &Services,
    params: RedirectParams,
) -> Result<HttpResponse, Page> {
    let host = params.host.clone();
    let service = params.service_id.clone();
    let done = match services.flows.complete(params).await? {
        Redirected::Completed(done) => done,
        Redirected::ToInstanceHost(location) => {
            return Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location))
                .insert_header((header::REFERRER_POLICY, "no-referrer"))
                .finish())
        }
        Redirected::Confirm(c) => return Ok(confirmation(req, &c)),
    };
    let mut answer = match done.failed {
        // A failure after consent is shown, with the way back to the app.
        Some(f) => failure_page(req, f.kind, &f.code, &service, &done.location),
        None => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, done.location))
            .finish(),
    };
    if let Some(name) = done.binding_cookie {
        let mut gone = Cookie::build(name, "").path("/accounts").finish();
        if let Some(d) = services.flows.cookie_domain_for(host.as_deref()) {
            gone.set_domain(d.to_owned());
        }
        gone.make_removal();
        let _ = answer.add_cookie(&gone);
    }
    Ok(answer)
}

/// The page that names the instance and the service, and completes the connection only
/// when the person confirms (a form posted to this same path).
fn confirmation(req: &HttpRequest, c: &Confirmation) -> HttpResponse {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Confirm the connection</title></head><body>\
         <h1>Connect {service} to {instance}?</h1>\
         <p>This connection came back to a browser that did not start it (or that blocked \
         its cookie). Confirm only if <strong>{instance}</strong> is your own Cozy and you \
         just allowed {service} for it. If you do not know this Cozy, close this window: \
         someone may be trying to connect your {service} account to theirs.</p>\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"query\" value=\"{query}\">\
         <button id=\"confirm\" type=\"submit\">Connect {service} to {instance}</button>\
         </form></body></html>",
        service = escape_html(&c.service),
        instance = escape_html(&c.instance),
        action = escape_html(req.path()),
        query = escape_html(&c.query),
    );
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

fn parse(
    req: &HttpRequest,
    service_id: String,
    query: &str,
    confirmed: bool,
) -> Result<RedirectParams, Error> {
    let q = Query::parse(query)?;
    let state = q.one("state")?.ok_or_else(|| Error::BadRequest {
        code: ErrorCode::StateMissing,
        detail: "the provider came back without a state; start the connection again".into(),
    })?;
    let present = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    // Past the state, a parameter given twice is read as absent rather than refused:
    // the app is then told the outcome.
    let lenient = |key| q.one(key).ok().flatten().map(str::to_owned);
    Ok(RedirectParams {
        service_id,
        binding_cookie: req
            .cookie(&FlowState::binding_cookie_name(state))
            .map(|c| c.value().to_owned()),
        state: state.to_owned(),
        connection_id: present(q.bounded("connection_id", 256)?),
        connection_deleted: present(q.bounded("connection_deleted", 256)?),
        error: lenient("error"),
        iss: lenient("iss"),
        code: lenient("code"),
        access_token: lenient("access_token"),
        pairs: q.pairs().to_vec(),
        confirmed,
        host: host(req),
        query: query.to_owned(),
    })
}
