//! Every route the broker serves, walked from its own table (`oauth_broker::http::ROUTES`):
//! a route that needs a caller refuses one without credentials, and the routes a
//! stranger can hammer draw on a rate limit before anything else.

use crate::both_stores;
use crate::helpers::*;
use oauth_broker::http::{Access, ROUTES};

/// A concrete path for a route pattern.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| match seg {
            "{type}" => "some-type",
            "{id}" | "{id:.+}" => "some-id",
            "{domain}" => "unknown.example",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn call(app: &TestApp, method: &str, path: &str, bearer: Option<&str>) -> reqwest::Response {
    let url = format!("{}{path}", app.address);
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.http.request(method, url).body("{}");
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn code_of(resp: reqwest::Response) -> String {
    let text = resp.text().await.unwrap();
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => v["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        // Browser routes answer a page whose last line names the code.
        Err(_) => text
            .split("error: ")
            .nth(1)
            .map(|t| {
                t.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .next()
                    .unwrap_or("")
            })
            .unwrap_or_default()
            .to_owned(),
    }
}

async fn every_guarded_route_refuses_a_caller_without_credentials(b: Backend) {
    let app = spawn_app(b).await;
    assert!(ROUTES.len() >= 20, "the table lists every route");
    for r in ROUTES {
        let path = concrete(r.path);
        let resp = call(&app, r.method, &path, None).await;
        let status = resp.status().as_u16();
        let code = code_of(resp).await;
        let expected = match r.access {
            Access::Public => (200, ""),
            Access::Admin => (401, "admin_unauthorized"),
            Access::Instance => (401, "no_credentials"),
            Access::Start => (403, "login_required"),
            // The state is the redirect's only credential.
            Access::Redirect => (400, "state_missing"),
        };
        assert_eq!((status, code.as_str()), expected, "{} {}", r.method, r.path);
        // A wrong credential is refused too, never taken for an anonymous call.
        if matches!(r.access, Access::Admin | Access::Instance | Access::Start) {
            let resp = call(&app, r.method, &path, Some("not-a-real-token")).await;
            assert!(
                matches!(resp.status().as_u16(), 401 | 403),
                "{} {} with a wrong token: {}",
                r.method,
                r.path,
                resp.status()
            );
        }
    }
}

async fn rate_limited_routes_answer_429_before_looking_at_credentials(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.rate_limit.per_minute = 1;
        s.rate_limit.burst = 1;
    })
    .await;
    for r in ROUTES {
        // Instance routes are limited per token (here, one wrong token) as well.
        if !matches!(
            r.access,
            Access::Admin | Access::Start | Access::Redirect | Access::Instance
        ) {
            continue;
        }
        // Each group has its own budget: the first call of a group spends it.
        let path = concrete(r.path);
        let mut last = 0;
        for _ in 0..2 {
            last = call(&app, r.method, &path, Some(ADMIN_TOKEN))
                .await
                .status()
                .as_u16();
        }
        assert_eq!(last, 429, "{} {}", r.method, r.path);
    }
}

both_stores!(
    every_guarded_route_refuses_a_caller_without_credentials,
    rate_limited_routes_answer_429_before_looking_at_credentials,
);
