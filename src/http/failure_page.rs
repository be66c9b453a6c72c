//! The page a person sees when a connection fails after they consented: what failed and
//! what to do, in French or English as `Accept-Language` asks, with the way back to the
//! app (whose URL tells it the error). Harvest closes the popup on any `?error=` without
//! a word, so sending the browser there silently would hide the failure.

use crate::domain::ErrorKind;
use crate::http::error::{escape_html, status_of};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

/// The languages the page speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    Fr,
}

/// The first of French or English the browser lists, else English.
fn lang_of(req: &HttpRequest) -> Lang {
    let accepted = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut ranked: Vec<(f32, Lang)> = accepted
        .split(',')
        .filter_map(|item| {
            let mut parts = item.trim().split(';');
            let tag = parts.next()?.trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=")?.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = match tag.split('-').next()? {
                "fr" => Lang::Fr,
                "en" => Lang::En,
                _ => return None,
            };
            Some((q, lang))
        })
        .collect();
    // Stable: among equal weights the browser's order stands.
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranked.first().map_or(Lang::En, |(_, l)| *l)
}

/// What failed and what to do, for `kind`, about `service`.
fn words(kind: ErrorKind, lang: Lang, service: &str) -> (String, &'static str) {
    use ErrorKind::*;
    match (lang, kind) {
        (Lang::En, Upstream | UpstreamTimeout) => (
            format!("{service} is not answering properly, so the connection could not be completed."),
            "Try again in a few minutes.",
        ),
        (Lang::Fr, Upstream | UpstreamTimeout) => (
            format!("{service} ne répond pas correctement : la connexion n'a pas pu aboutir."),
            "Réessayez dans quelques minutes.",
        ),
        (Lang::En, Refused | GrantRevoked) => (
            format!("{service} refused the connection after you allowed it."),
            "Try again. If it keeps failing, contact the administrator of your Cozy.",
        ),
        (Lang::Fr, Refused | GrantRevoked) => (
            format!("{service} a refusé la connexion après votre accord."),
            "Réessayez. Si cela se reproduit, contactez l'administrateur de votre Cozy.",
        ),
        (Lang::En, Unavailable | Busy) => (
            "Your Cozy could not save the connection: its storage is having trouble.".into(),
            "Try again in a few minutes.",
        ),
        (Lang::Fr, Unavailable | Busy) => (
            "Votre Cozy n'a pas pu enregistrer la connexion : son stockage a un problème.".into(),
            "Réessayez dans quelques minutes.",
        ),
        (Lang::En, Misconfigured | KeyUnavailable) => (
            format!("{service} is not set up correctly on your Cozy."),
            "Contact the administrator of your Cozy.",
        ),
        (Lang::Fr, Misconfigured | KeyUnavailable) => (
            format!("{service} n'est pas configuré correctement sur votre Cozy."),
            "Contactez l'administrateur de votre Cozy.",
        ),
        (Lang::En, _) => (
            format!("The answer of {service} could not be used, so the connection was not made."),
            "Start the connection again.",
        ),
        (Lang::Fr, _) => (
            format!("La réponse de {service} n'a pas pu être utilisée : la connexion n'a pas été faite."),
            "Relancez la connexion.",
        ),
    }
}

/// The page for a flow that failed with `kind` (code `code`) after consent; `back` is
/// the app's URL with `?error=`.
pub(crate) fn failure_page(
    req: &HttpRequest,
    kind: ErrorKind,
    code: &str,
    service: &str,
    back: &str,
) -> HttpResponse {
    let lang = lang_of(req);
    let (what, todo) = words(kind, lang, service);
    let (title, link, html_lang) = match lang {
        Lang::En => ("The connection failed", "Back to your Cozy", "en"),
        Lang::Fr => ("La connexion a échoué", "Revenir à votre Cozy", "fr"),
    };
    let body = format!(
        "<!doctype html><html lang=\"{html_lang}\"><head><meta charset=\"utf-8\">\
         <title>{t}</title></head><body><h1>{t}</h1><p id=\"what\">{w}</p><p>{d}</p>\
         <p><a id=\"back\" href=\"{b}\">{l}</a></p><p><code>error: {c}</code></p></body></html>",
        t = escape_html(title),
        w = escape_html(&what),
        d = escape_html(todo),
        b = escape_html(back),
        l = escape_html(link),
        c = escape_html(code),
    );
    HttpResponse::build(status_of(kind))
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_LANGUAGE, html_lang))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn french_where_the_browser_prefers_it_else_english() {
        let lang = |v: &str| {
            lang_of(
                &TestRequest::default()
                    .insert_header(("accept-language", v))
                    .to_http_request(),
            )
        };
        assert_eq!(lang("fr-FR,fr;q=0.9,en;q=0.8"), Lang::Fr);
        assert_eq!(lang("en-US,en;q=0.9,fr;q=0.8"), Lang::En);
        assert_eq!(lang("de-DE,fr;q=0.5"), Lang::Fr);
        assert_eq!(lang("de-DE"), Lang::En);
        assert_eq!(lang("en;q=0.4,fr;q=0.6"), Lang::Fr);
        assert_eq!(lang_of(&TestRequest::default().to_http_request()), Lang::En);
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let req = TestRequest::default().to_http_request();
        let page = failure_page(
            &req,
            ErrorKind::Upstream,
            "server_error",
            "<svc>",
            "https://home.a/?error=x&state=\"",
        );
        let body = actix_web::body::to_bytes(page.into_body());
        let body = futures::executor::block_on(body).unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("<svc>") && text.contains("&lt;svc&gt;"),
            "{text}"
        );
        assert!(!text.contains("state=\""), "{text}");
    }
}
