//! `GET /accounts/{type}/start` (the Home app sends the browser here to begin a flow),
//! `GET /accounts/{type}/{id}/reconnect` (the same, for an account that exists) and
//! `GET /accounts/{type}/{id}/manage` (Budget Insight's webview, not run here).

use crate::app::Services;
use crate::domain::ErrorCode;
use crate::http::error::Page;
use crate::http::extractors::StartCaller;
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// Seals a flow into its state and answers 303 to the provider's authorization page; the same
/// handler serves reconnect, whose path names the account.
pub(crate) async fn start(
    caller: StartCaller,
    services: web::Data<Services>,
) -> Result<HttpResponse, Page> {
    let started = services.flows.begin(&caller.access, caller.params).await?;
    let mut answer = HttpResponse::SeeOther();
    answer.insert_header((header::LOCATION, started.location));
    if let Some((name, secret)) = started.binding {
        let mut cookie = Cookie::build(name, secret)
            .path("/accounts")
            .http_only(true)
            .secure(true)
            .same_site(SameSite::Lax)
            .max_age(CookieDuration::seconds(services.flows.ttl.as_secs() as i64))
            .finish();
        // Start and redirect on two hosts under one parent (beside cozy-stack): the
        // cookie must reach the redirect host too. A host outside that parent (a custom
        // domain) gets it host-only: the redirect sends the browser on to it.
        if let Some(d) = services.flows.cookie_domain_for(caller.host.as_deref()) {
            cookie.set_domain(d.to_owned());
        }
        answer.cookie(cookie);
    }
    if let Some(session) = caller.new_session {
        // cozy-stack's short-run session cookie: five minutes, the whole instance.
        answer.cookie(
            Cookie::build(session.name, session.value)
                .domain(session.domain)
                .path("/")
                .http_only(true)
                .secure(true)
                .same_site(SameSite::Lax)
                .max_age(CookieDuration::seconds(
                    crate::domain::cozy::session::SHORT_RUN_COOKIE_SECS,
                ))
                .finish(),
        );
    }
    Ok(answer.finish())
}

/// cozy-stack opens Budget Insight's management webview here; the broker runs no Budget
/// Insight type, so a logged-in caller is told so (cozy-stack answers "Wrong account
/// type" for every other type too).
pub(crate) async fn manage(caller: StartCaller) -> Result<HttpResponse, Page> {
    Err(Page(crate::app::Error::BadRequest {
        code: ErrorCode::WrongAccountType,
        detail: format!(
            "`manage` opens a Budget Insight webview; account type `{}` is not a Budget \
             Insight type here (such konnectors stay on cozy-stack)",
            caller.params.service_id
        ),
    }))
}
