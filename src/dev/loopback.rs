//! Catches the provider's redirect on a loopback port (RFC 8252 §7.3).

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::net::TcpListener;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

/// What the redirect brought.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Caught {
    /// An authorization code for this login.
    Code(String),
    /// The provider's `error` (a sanitized code).
    Refused(String),
}

struct Expect {
    state: String,
    tx: mpsc::Sender<Caught>,
}

/// Serves `path` on `listener` until a redirect carrying `state` arrives or `timeout`
/// passes (`None`). A redirect with another state is answered 400 and waited past, so a
/// forged one cannot end the login.
pub(crate) async fn catch(
    listener: TcpListener,
    path: &str,
    state: &str,
    timeout: Duration,
) -> std::io::Result<Option<Caught>> {
    let (tx, mut rx) = mpsc::channel(1);
    let expect = web::Data::new(Expect {
        state: state.to_owned(),
        tx,
    });
    let path = path.to_owned();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(expect.clone())
            .route(&path, web::get().to(callback))
            .default_service(web::to(|| async {
                HttpResponse::NotFound().body("This is not the login callback.")
            }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    let running = tokio::spawn(server);
    let caught = tokio::time::timeout(timeout, rx.recv())
        .await
        .ok()
        .flatten();
    // Graceful: the page telling the person to go back to the terminal is still sent.
    handle.stop(true).await;
    let _ = running.await;
    Ok(caught)
}

async fn callback(req: HttpRequest, expect: web::Data<Expect>) -> HttpResponse {
    let mut state = None;
    let mut code = None;
    let mut error = None;
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "state" => state = Some(v.into_owned()),
            "code" => code = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            _ => {}
        }
    }
    let ours = state
        .as_deref()
        .is_some_and(|s| bool::from(s.as_bytes().ct_eq(expect.state.as_bytes())));
    if !ours {
        return page(
            400,
            "This redirect does not belong to the login in progress (its state does not match). \
             Nothing was changed.",
        );
    }
    let caught = match (code, error) {
        (_, Some(e)) => {
            let e = if crate::oauth::provider::is_sane_code(&e) {
                e
            } else {
                "invalid_error_code".into()
            };
            Caught::Refused(e)
        }
        (Some(c), None) if !c.is_empty() && c.len() <= 4096 => Caught::Code(c),
        _ => return page(400, "The redirect carries neither a code nor an error."),
    };
    let body = match &caught {
        Caught::Code(_) => "Logged in. You can close this tab and go back to the terminal.".into(),
        Caught::Refused(e) => format!("The provider refused the authorization ({e})."),
    };
    // A second redirect after the first finds the channel full: the first one wins.
    let _ = expect.tx.try_send(caught);
    page(200, &body)
}

fn page(status: u16, text: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(format!(
            "<!doctype html><meta charset=utf-8><title>oauth-broker dev login</title><p>{}</p>",
            text.replace('&', "&amp;").replace('<', "&lt;")
        ))
}
