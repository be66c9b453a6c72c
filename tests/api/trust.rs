//! Attacks on what the broker trusts (issue "Trust"): a `provider_url` edited in an
//! account document, a type whose one secret would go to any subdomain.

use crate::both_stores;
use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A per-account type with a fixed client allowed on one host only.
async fn sso_type(app: &TestApp) -> String {
    let ty = unique("sso");
    app.put_account_type(json!({
        "_id": ty, "grant_mode": "authorization_code",
        "client_id": "sso-client", "client_secret": "sso-secret-value",
        "auth_endpoint": "{provider_url}/oauth/authorize",
        "token_endpoint": "{provider_url}/oauth/token",
        "provider_url_pattern": "https://sso.example.org",
    }))
    .await;
    ty
}

/// A listener that answers anything with a token, and counts what it was sent.
async fn attacker() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "attacker", "expires_in": 3600})),
        )
        .mount(&server)
        .await;
    server
}

async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or_default();
    (
        status,
        body["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn an_account_pointed_at_another_host_gets_no_secret_and_no_token_from_it(b: Backend) {
    let app = spawn_app(b).await;
    let ty = sso_type(&app).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let evil = attacker().await;
    // The account's owner edits its document: any app allowed on io.cozy.accounts can.
    let id = app
        .seed_account(
            &inst,
            json!({"account_type": ty, "oauth": {
                "access_token": "at", "refresh_token": "victim-refresh-token",
                "provider_url": evil.uri()}}),
        )
        .await;

    let refresh = error_code(app.refresh(&ty, &id, Some(&token)).await).await;
    assert_eq!(refresh, (400, "invalid_provider_url".into()));
    let status = app
        .http
        .get(format!("{}/accounts/{ty}/{id}/status", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(status).await,
        (400, "invalid_provider_url".into())
    );
    let reconnect = app
        .http
        .get(format!("{}/accounts/{ty}/{id}/reconnect", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(reconnect.status(), 400);
    assert!(reconnect
        .text()
        .await
        .unwrap()
        .contains("invalid_provider_url"));

    assert!(
        evil.received_requests().await.unwrap().is_empty(),
        "the broker called the host the account named"
    );
    let doc = app.account(&inst, &id).await;
    assert_eq!(doc["oauth"]["access_token"], "at");
}

async fn an_edited_https_provider_url_outside_the_patterns_is_refused_even_in_development(
    b: Backend,
) {
    // Development mode lets loopback http through, and nothing else the patterns refuse.
    let app = spawn_app_with(b, |s| s.allow_insecure_provider_urls = true).await;
    let ty = sso_type(&app).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let id = app
        .seed_account(
            &inst,
            json!({"account_type": ty, "oauth": {
                "access_token": "at", "refresh_token": "rt",
                "provider_url": "https://sso.example.org.evil.example"}}),
        )
        .await;
    let refresh = error_code(app.refresh(&ty, &id, Some(&token)).await).await;
    assert_eq!(refresh, (400, "invalid_provider_url".into()));
}

async fn a_fixed_secret_with_a_wildcard_pattern_is_refused(b: Backend) {
    let app = spawn_app(b).await;
    let ty = unique("wild");
    let resp = app
        .admin(reqwest::Method::PUT, &format!("/admin/account_types/{ty}"))
        .json(&json!({
            "_id": ty, "grant_mode": "authorization_code",
            "client_id": "c", "client_secret": "one-secret-for-every-host",
            "auth_endpoint": "{provider_url}/oauth/authorize",
            "token_endpoint": "{provider_url}/oauth/token",
            "provider_url_pattern": "https://*.mycozy.cloud",
        }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("client_secret") && body.contains("any subdomain"),
        "{body}"
    );
    assert!(!body.contains("one-secret-for-every-host"), "{body}");
}

both_stores!(
    an_account_pointed_at_another_host_gets_no_secret_and_no_token_from_it,
    an_edited_https_provider_url_outside_the_patterns_is_refused_even_in_development,
    a_fixed_secret_with_a_wildcard_pattern_is_refused,
);

async fn a_forged_access_token_on_a_code_flow_redirect_is_not_stored(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({"pkce": true})).await;
    // A new flow: the attacker holds a state and skips the code exchange.
    let url = app.start_flow(&inst, &t).await;
    let loc = app_return(
        app.redirect(
            &t,
            &[
                ("state", &TestApp::state_in(&url)),
                ("access_token", "ATTACKER"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        query_of(&loc).get("error").map(String::as_str),
        Some("invalid_request"),
        "{loc}"
    );
    assert!(app.accounts(&inst).await.is_empty());

    // A reconnection: the existing account keeps its own token.
    let id = app
        .seed_account(
            &inst,
            json!({"account_type": t, "oauth": {"access_token": "victim", "refresh_token": "rt"}}),
        )
        .await;
    let url = app.reconnect_flow(&inst, &t, &id).await;
    let loc = app_return(
        app.redirect(
            &t,
            &[
                ("state", &TestApp::state_in(&url)),
                ("access_token", "ATTACKER"),
            ],
        )
        .await,
    )
    .await;
    assert!(query_of(&loc).contains_key("error"), "{loc}");
    assert_eq!(
        app.account(&inst, &id).await["oauth"]["access_token"],
        "victim"
    );
}

both_stores!(a_forged_access_token_on_a_code_flow_redirect_is_not_stored);

async fn a_management_url_on_another_host_never_gets_the_registration_token(b: Backend) {
    use crate::common::registering_provider::RegisteringProvider;
    let app = spawn_app(b).await;
    let provider = RegisteringProvider::mount(&app.provider).await;
    let evil = attacker().await;
    // The registration answer points management elsewhere.
    provider.with(|s| {
        s.refuse_registration = Some((
            201,
            json!({"client_id": "c-evil", "client_secret": "s-evil",
                   "registration_access_token": "rat-evil",
                   "registration_client_uri": format!("{}/manage/c-evil", evil.uri())}),
        ))
    });
    let ty = crate::registration::registering_type(&app, json!({})).await;
    let inst = app.new_instance(None).await;
    let started = crate::registration::start_with(&app, &inst, &ty, "").await;
    assert_eq!(started.status(), 303, "{}", started.text().await.unwrap());

    for method in [reqwest::Method::DELETE, reqwest::Method::PUT] {
        let resp = app
            .admin(method.clone(), &format!("/admin/registered_clients/{ty}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(resp).await,
            (409, "not_manageable".into()),
            "{method}"
        );
    }
    let read = app
        .admin(
            reqwest::Method::GET,
            &format!("/admin/registered_clients/{ty}?remote=true"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(read).await, (409, "not_manageable".into()));
    assert!(
        evil.received_requests().await.unwrap().is_empty(),
        "the registration access token went to another host"
    );
}

both_stores!(a_management_url_on_another_host_never_gets_the_registration_token);

async fn admin_guesses(app: &TestApp, forwarded_for: &str, n: usize, rotate: bool) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..n {
        let resp = app
            .http
            .get(format!("{}/admin/instances", app.address))
            .bearer_auth(format!("guess-{i}"))
            // Forged by the client: `Forwarded` is never read, and only the hop the
            // trusted proxy appended (right-most) names the client.
            .header(
                "Forwarded",
                format!("for=198.18.0.{}", if rotate { i } else { 0 }),
            )
            .header(
                "X-Forwarded-For",
                format!("198.18.1.{}, {forwarded_for}", if rotate { i } else { 0 }),
            )
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    statuses
}

async fn forged_forwarding_headers_do_not_escape_the_rate_limit(b: Backend) {
    for proxies in ["", "127.0.0.1"] {
        let app = spawn_app_with(b, move |s| {
            s.rate_limit.per_minute = 10;
            s.rate_limit.burst = 5;
            s.rate_limit.trusted_proxies = proxies.into();
        })
        .await;
        let statuses = admin_guesses(&app, "203.0.113.7", 20, true).await;
        assert!(
            statuses.iter().filter(|s| **s == 429).count() >= 10,
            "proxies `{proxies}`: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| matches!(s, 401 | 429)),
            "{statuses:?}"
        );
    }
}

async fn behind_a_trusted_proxy_each_client_has_its_own_budget(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.rate_limit.per_minute = 10;
        s.rate_limit.burst = 5;
        s.rate_limit.trusted_proxies = "127.0.0.0/8".into();
    })
    .await;
    let first = admin_guesses(&app, "203.0.113.7", 8, false).await;
    assert_eq!(first.last(), Some(&429), "{first:?}");
    let other = admin_guesses(&app, "203.0.113.8", 1, false).await;
    assert_eq!(other, [401], "another client is not limited by the first");
}

both_stores!(
    forged_forwarding_headers_do_not_escape_the_rate_limit,
    behind_a_trusted_proxy_each_client_has_its_own_budget,
);

#[tokio::test]
async fn unsafe_settings_are_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let short = |s: &mut oauth_broker::config::Settings| s.admin_token = Some("change-me".into());
    let blind_trust =
        |s: &mut oauth_broker::config::Settings| s.rate_limit.trust_forwarded_for = true;
    let bad_block = |s: &mut oauth_broker::config::Settings| {
        s.rate_limit.trusted_proxies = "10.0.0.0/40".into()
    };
    type Tweak<'a> = &'a dyn Fn(&mut oauth_broker::config::Settings);
    let cases: [(Tweak, &str); 3] = [
        (&short, "admin_token"),
        (&blind_trust, "trusted_proxies"),
        (&bad_block, "trusted_proxies"),
    ];
    for (tweak, named) in cases {
        let mut s = test_settings(Backend::Embedded, dir.path());
        tweak(&mut s);
        let refused = oauth_broker::startup::Application::build(&s).await;
        let e = format!("{:#}", refused.err().expect("refused"));
        assert!(e.contains(named), "{e}");
    }
}

async fn a_provider_name_resolving_to_a_private_address_is_not_contacted(b: Backend) {
    for (private_hosts, reached) in [("", false), ("localhost", true)] {
        let app = spawn_app_with(b, move |s| s.provider_private_hosts = private_hosts.into()).await;
        let inst = app.new_instance(None).await;
        let token = app.api_token(&inst).await;
        // The same local listener, reached by a name that resolves to 127.0.0.1.
        let port = app.provider.address().port();
        let t = app
            .code_type(json!({"token_endpoint": format!("http://localhost:{port}/token")}))
            .await;
        Mock::given(wiremock::matchers::path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "new"})))
            .mount(&app.provider)
            .await;
        let id = app
            .seed_account(
                &inst,
                json!({"account_type": t, "oauth": {"access_token": "old", "refresh_token": "rt"}}),
            )
            .await;
        let (status, code) = error_code(app.refresh(&t, &id, Some(&token)).await).await;
        let asked = !app.provider.received_requests().await.unwrap().is_empty();
        assert_eq!(
            asked, reached,
            "private_hosts `{private_hosts}`: {status} {code}"
        );
        if !reached {
            assert_eq!((status, code.as_str()), (502, "provider_error"));
        }
    }
}

both_stores!(a_provider_name_resolving_to_a_private_address_is_not_contacted);

async fn a_redirect_naming_another_issuer_is_refused_before_any_exchange(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({"issuer": "https://as.example"})).await;
    Mock::given(wiremock::matchers::path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "a"})))
        .mount(&app.provider)
        .await;
    let mut exchanges = 0;
    for (iss, accepted) in [
        (Some("https://evil.example"), false),
        (Some("https://as.example"), true),
        (Some("https://as.example/"), true),
        (None, true),
    ] {
        let url = app.start_flow(&inst, &t).await;
        let state = TestApp::state_in(&url);
        let mut pairs = vec![("code", "C"), ("state", state.as_str())];
        if let Some(i) = iss {
            pairs.push(("iss", i));
        }
        let loc = app_return(app.redirect(&t, &pairs).await).await;
        assert_eq!(
            query_of(&loc).contains_key("account"),
            accepted,
            "{iss:?}: {loc}"
        );
        if accepted {
            exchanges += 1;
        } else {
            assert_eq!(query_of(&loc)["error"], "invalid_request");
        }
        assert_eq!(
            app.provider.received_requests().await.unwrap().len(),
            exchanges,
            "{iss:?}"
        );
    }
}

both_stores!(a_redirect_naming_another_issuer_is_refused_before_any_exchange);

async fn a_token_limited_to_one_account_type_acts_on_that_type_only(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let allowed = app.code_type(json!({})).await;
    let other = app.code_type(json!({})).await;
    Mock::given(wiremock::matchers::path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "new"})))
        .mount(&app.provider)
        .await;
    let token = app
        .api_token_with(&inst, json!({"account_types": [allowed]}))
        .await;
    let seed = |t: String| {
        let app = &app;
        let inst = &inst;
        async move {
            app.seed_account(
                inst,
                json!({"account_type": t, "oauth": {"access_token": "a", "refresh_token": "r"}}),
            )
            .await
        }
    };
    let mine = seed(allowed.clone()).await;
    let theirs = seed(other.clone()).await;
    let ok = app.refresh(&allowed, &mine, Some(&token)).await;
    assert_eq!(ok.status(), 200);
    // The path's type is ignored on refresh: the account's own type decides.
    for path_type in [&other, &allowed] {
        let refused = error_code(app.refresh(path_type, &theirs, Some(&token)).await).await;
        assert_eq!(refused, (403, "token_not_allowed".into()));
    }
    let status = app
        .http
        .get(format!("{}/accounts/{other}/{theirs}/status", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(status).await, (403, "token_not_allowed".into()));
    let delete = app
        .http
        .delete(format!("{}/accounts/{allowed}/{theirs}", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(delete).await, (403, "token_not_allowed".into()));
    assert_eq!(
        app.account(&inst, &theirs).await["oauth"]["access_token"],
        "a"
    );
    let start = app
        .http
        .get(format!("{}/accounts/{other}/start?state=s", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 403);
    assert!(start.text().await.unwrap().contains("token_not_allowed"));
}

async fn an_expired_token_is_refused(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let id = app
        .seed_account(
            &inst,
            json!({"account_type": t, "oauth": {"access_token": "a"}}),
        )
        .await;
    // Expiry is counted in whole seconds: a token issued late in a second has a little
    // over `expires_in - 1` of life, so 3 leaves the first call two seconds at least.
    let token = app.api_token_with(&inst, json!({"expires_in": 3})).await;
    let status = |token: String| {
        let app = &app;
        let (t, id) = (t.clone(), id.clone());
        async move {
            app.http
                .get(format!("{}/accounts/{t}/{id}/status", app.address))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(status(token.clone()).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(
        error_code(status(token).await).await,
        (403, "bad_credentials".into())
    );
}

async fn each_konnector_token_has_its_own_budget(b: Backend) {
    let app = spawn_app_with(b, |s| {
        // One request back every 10 s: a slow machine cannot refill the budget mid-test.
        s.rate_limit.per_minute = 6;
        s.rate_limit.burst = 8;
    })
    .await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let id = app
        .seed_account(
            &inst,
            json!({"account_type": t, "oauth": {"access_token": "a"}}),
        )
        .await;
    let (noisy, quiet) = (app.api_token(&inst).await, app.api_token(&inst).await);
    let status = |token: &str| {
        app.http
            .get(format!("{}/accounts/{t}/{id}/status", app.address))
            .bearer_auth(token)
            .send()
    };
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(status(&noisy).await.unwrap().status().as_u16());
    }
    assert_eq!(codes.last(), Some(&429), "{codes:?}");
    assert_eq!(status(&quiet).await.unwrap().status(), 200);
}

both_stores!(
    a_token_limited_to_one_account_type_acts_on_that_type_only,
    an_expired_token_is_refused,
    each_konnector_token_has_its_own_budget,
);

async fn a_token_with_malformed_limits_is_not_issued(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    for (body, code) in [
        (json!({"expires_in": "soon"}), "invalid_body"),
        (json!({"account_types": "google"}), "invalid_body"),
        (json!({"scope": "everything"}), "invalid_body"),
        (
            json!({"account_types": ["no spaces allowed"]}),
            "invalid_account_type",
        ),
    ] {
        let resp = app
            .admin(
                reqwest::Method::POST,
                &format!("/admin/instances/{}/tokens", inst.domain),
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(resp).await, (400, code.into()), "{body}");
    }
}

both_stores!(a_token_with_malformed_limits_is_not_issued);

async fn a_token_refused_for_a_type_causes_no_registration_at_its_provider(b: Backend) {
    use crate::common::registering_provider::RegisteringProvider;
    let app = spawn_app(b).await;
    let provider = RegisteringProvider::mount(&app.provider).await;
    let registering = crate::registration::registering_type(&app, json!({})).await;
    let inst = app.new_instance(None).await;
    let id = app
        .seed_account(
            &inst,
            json!({"account_type": registering, "oauth": {"access_token": "a"}}),
        )
        .await;
    let token = app
        .api_token_with(&inst, json!({"account_types": ["something-else"]}))
        .await;
    for (method, path) in [
        (
            reqwest::Method::DELETE,
            format!("/accounts/{registering}/{id}"),
        ),
        (
            reqwest::Method::GET,
            format!("/accounts/{registering}/{id}/status"),
        ),
        (
            reqwest::Method::POST,
            format!("/accounts/{registering}/{id}/refresh"),
        ),
    ] {
        let resp = app
            .http
            .request(method.clone(), format!("{}{path}", app.address))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(resp).await,
            (403, "token_not_allowed".into()),
            "{method} {path}"
        );
    }
    assert_eq!(
        provider.with(|s| s.registrations),
        0,
        "nothing registered for a refused caller"
    );
    assert_eq!(app.accounts(&inst).await.len(), 1);
}

both_stores!(a_token_refused_for_a_type_causes_no_registration_at_its_provider);
