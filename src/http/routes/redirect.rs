//! `GET /accounts/{type}/redirect`: the provider sends the browser back here.

use crate::app::flows::RedirectParams;
use crate::app::{Error, Services};
use crate::domain::ErrorCode;
use crate::domain::FlowState;
use crate::http::error::Page;
use crate::http::extractors::RedirectCaller;
use crate::http::query::Query;
use actix_web::cookie::Cookie;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

/// Consumes the state, obtains the tokens, writes the account and returns to the app.
pub(crate) async fn redirect(
    _: RedirectCaller,
    req: HttpRequest,
    path: web::Path<String>,
    services: web::Data<Services>,
) -> Result<HttpResponse, Page> {
    let params = match parse(&req, path.into_inner()) {
        Ok(p) => p,
        Err(e) => return Err(services.flows.refused_before_state(e).into()),
    };
    let done = services.flows.complete(params).await?;
    let mut answer = HttpResponse::SeeOther();
    answer.insert_header((header::LOCATION, done.location));
    if let Some(name) = done.binding_cookie {
        let mut gone = Cookie::build(name, "").path("/accounts").finish();
        if let Some(d) = &services.flows.cookie_domain {
            gone.set_domain(d.clone());
        }
        gone.make_removal();
        answer.cookie(gone);
    }
    Ok(answer.finish())
}

fn parse(req: &HttpRequest, service_id: String) -> Result<RedirectParams, Error> {
    let q = Query::parse(req.query_string())?;
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
    })
}
