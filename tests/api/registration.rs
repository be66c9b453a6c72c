//! Dynamic client registration (RFC 7591/7592) against a provider played locally,
//! per-account providers (`provider_url`), introspection, user info and `login_hint`.

use crate::both_stores;
use crate::helpers::{location, query_of, spawn_app, spawn_app_with, unique, Backend, TestApp};
use oauth_broker::domain::Instance;
use serde_json::{json, Value};

use crate::common::registering_provider::RegisteringProvider;

/// A type that registers itself with the played provider (a fixed one).
pub(crate) async fn registering_type(app: &TestApp, extra: Value) -> String {
    let id = unique("reg");
    let base = app.provider.uri();
    let mut doc = json!({
        "_id": id, "grant_mode": "authorization_code",
        "auth_endpoint": format!("{base}/auth/authorize"),
        "token_endpoint": format!("{base}/auth/access_token"),
        "registration_endpoint": format!("{base}/auth/register"),
        "userinfo_endpoint": format!("{base}/auth/userinfo"),
        "introspection_endpoint": format!("{base}/auth/introspect"),
        "client_metadata": {"client_name": "Cozy broker", "software_id": "github.com/cozy/oauth-broker",
                            "client_kind": "web", "client_uri": "https://broker.example",
                            "logo_uri": "https://broker.example/logo.png", "policy_uri": "https://broker.example/privacy"}
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    app.put_account_type(doc).await;
    id
}

/// Starts a flow with `query` added and returns the provider URL.
pub(crate) async fn start_with(
    app: &TestApp,
    inst: &Instance,
    ty: &str,
    query: &str,
) -> reqwest::Response {
    let code = app.session_code(inst).await;
    app.start_raw(ty, &format!("state=s&slug=home&session_code={code}{query}"))
        .await
}

pub(crate) async fn connect(
    app: &TestApp,
    inst: &Instance,
    ty: &str,
    query: &str,
) -> (String, String) {
    let resp = start_with(app, inst, ty, query).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let url = location(&resp);
    let q = query_of(&url);
    let back = app
        .redirect(ty, &[("state", &q["state"]), ("code", "the-code")])
        .await;
    assert_eq!(back.status(), 303);
    let home = query_of(&location(&back));
    let account = home
        .get("account")
        .unwrap_or_else(|| panic!("no account in {home:?}"))
        .clone();
    (url, account)
}

async fn admin_json(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.admin(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn first_start_registers_and_later_ones_reuse_the_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let provider = RegisteringProvider::mount(&app.provider).await;
    let ty = registering_type(&app, json!({})).await;
    let inst = app.new_instance(None).await;

    let (url, account_id) = connect(&app, &inst, &ty, "").await;
    assert_eq!(query_of(&url)["client_id"], "client-1");
    let (url2, _) = connect(&app, &inst, &ty, "").await;
    assert_eq!(query_of(&url2)["client_id"], "client-1");
    provider.with(|s| {
        assert_eq!(s.registrations, 1, "{:?}", s.complaints);
        let meta = &s.clients["client-1"].metadata;
        assert_eq!(
            meta["redirect_uris"],
            json!([format!("https://broker.example/accounts/{ty}/redirect")])
        );
        assert_eq!(meta["client_name"], "Cozy broker");
        assert_eq!(
            meta["grant_types"],
            json!(["authorization_code", "refresh_token"])
        );
    });
    // The exchange authenticated as the registered client.
    let account = app.account(&inst, &account_id).await;
    assert_eq!(account["oauth"]["access_token"], "access-for-client-1");

    // The stored registration has cozy's io.cozy.oauth.clients fields; reads hide secrets.
    let (status, doc) = admin_json(
        &app,
        reqwest::Method::GET,
        &format!("/admin/registered_clients/{ty}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["client_id"], "client-1");
    assert_eq!(doc["client_secret"], "[redacted]");
    assert_eq!(doc["registration_access_token"], "[redacted]");
    for field in [
        "client_secret_expires_at",
        "redirect_uris",
        "client_name",
        "client_kind",
        "client_uri",
        "logo_uri",
        "policy_uri",
        "software_id",
    ] {
        assert!(doc.get(field).is_some(), "{field} in {doc}");
    }
    let (_, list) = admin_json(
        &app,
        reqwest::Method::GET,
        "/admin/registered_clients",
        None,
    )
    .await;
    assert!(
        !list.to_string().contains("secret-1-a") && !list.to_string().contains("rat-1"),
        "{list}"
    );
    let (status, remote) = admin_json(
        &app,
        reqwest::Method::GET,
        &format!("/admin/registered_clients/{ty}?remote=true"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{remote}");
    assert_eq!(remote["client_id"], "client-1");
    assert_eq!(remote["client_secret"], "[redacted]");
}

async fn update_reset_secret_and_unregister(backend: Backend) {
    let app = spawn_app(backend).await;
    let provider = RegisteringProvider::mount(&app.provider).await;
    let ty = registering_type(&app, json!({})).await;
    let inst = app.new_instance(None).await;
    let (_, account_id) = connect(&app, &inst, &ty, "").await;
    let token = app.api_token(&inst).await;

    // Update: the metadata again, with the registration access token.
    let (status, doc) = admin_json(
        &app,
        reqwest::Method::PUT,
        &format!("/admin/registered_clients/{ty}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(provider.with(|s| s.updates), 1);
    assert_eq!(doc["client_secret"], "[redacted]");

    // Reset: a new secret, which the next token request uses (the old one is refused).
    let (status, doc) = admin_json(
        &app,
        reqwest::Method::PUT,
        &format!("/admin/registered_clients/{ty}"),
        Some(json!({"reset_secret": true})),
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(
        provider.with(|s| s.clients["client-1"].secret.clone()),
        "secret-1-a-rotated"
    );
    let resp = app.refresh(&ty, &account_id, Some(&token)).await;
    assert_eq!(
        resp.status(),
        200,
        "{} {:?}",
        resp.text().await.unwrap(),
        provider.with(|s| s.complaints.clone())
    );

    // A bad update body is refused before anything is sent.
    let (status, _) = admin_json(
        &app,
        reqwest::Method::PUT,
        &format!("/admin/registered_clients/{ty}"),
        Some(json!({"reset": 1})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(provider.with(|s| s.updates), 2);

    // Unregister: deleted at the provider and here; the next start registers anew.
    let (status, _) = admin_json(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/registered_clients/{ty}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(provider.with(|s| (s.deletions, s.clients.len())), (1, 0));
    let (status, doc) = admin_json(
        &app,
        reqwest::Method::GET,
        &format!("/admin/registered_clients/{ty}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "{doc}");
    assert_eq!(doc["errors"][0]["code"], "not_registered");
    let (status, _) = admin_json(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/registered_clients/{ty}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (url, _) = connect(&app, &inst, &ty, "").await;
    assert_eq!(query_of(&url)["client_id"], "client-2");
}

async fn an_expired_client_secret_is_registered_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let provider = RegisteringProvider::mount(&app.provider).await;
    // The first client's secret is already past its expiry when the second start comes.
    provider.with(|s| s.next_expiry = chrono::Utc::now().timestamp() - 1);
    let ty = registering_type(&app, json!({})).await;
    let inst = app.new_instance(None).await;
    let first = location(&start_with(&app, &inst, &ty, "").await);
    assert_eq!(query_of(&first)["client_id"], "client-1");
    provider.with(|s| s.next_expiry = 0);
    let (second, account_id) = connect(&app, &inst, &ty, "").await;
    assert_eq!(query_of(&second)["client_id"], "client-2");
    assert_eq!(provider.with(|s| s.registrations), 2);
    assert_eq!(
        app.account(&inst, &account_id).await["oauth"]["access_token"],
        "access-for-client-2"
    );
}

async fn a_registration_refused_by_the_provider_is_a_clear_error_and_stores_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let provider = RegisteringProvider::mount(&app.provider).await;
    provider
        .with(|s| s.refuse_registration = Some((400, json!({"error": "invalid_client_metadata"}))));
    let ty = registering_type(&app, json!({})).await;
    let inst = app.new_instance(None).await;
    let resp = start_with(&app, &inst, &ty, "").await;
    assert_eq!(resp.status(), 502);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("registration") && page.contains("invalid_client_metadata"),
        "{page}"
    );
    let (status, _) = admin_json(
        &app,
        reqwest::Method::GET,
        &format!("/admin/registered_clients/{ty}"),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // A provider answering garbage is refused the same way.
    provider.with(|s| s.refuse_registration = Some((200, json!({"no": "client id"}))));
    let resp = start_with(&app, &inst, &ty, "").await;
    assert_eq!(resp.status(), 502);
}

async fn a_provider_url_flow_registers_with_that_server_and_the_account_remembers_it(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| s.allow_insecure_provider_urls = true).await;
    let provider = RegisteringProvider::mount(&app.provider).await;
    let ty = unique("cozy");
    app.put_account_type(json!({
        "_id": ty, "grant_mode": "authorization_code",
        "auth_endpoint": "{provider_url}/auth/authorize",
        "token_endpoint": "{provider_url}/auth/access_token",
        "registration_endpoint": "{provider_url}/auth/register",
        "provider_url_pattern": "https://*.mycozy.cloud",
        "client_metadata": {"client_name": "Cozy broker", "software_id": "github.com/cozy/oauth-broker"}
    }))
    .await;
    let inst = app.new_instance(None).await;
    let provider_url = app.provider.uri();
    let (url, account_id) =
        connect(&app, &inst, &ty, &format!("&provider_url={provider_url}")).await;
    assert!(
        url.starts_with(&format!("{provider_url}/auth/authorize?")),
        "{url}"
    );
    let account = app.account(&inst, &account_id).await;
    assert_eq!(account["oauth"]["provider_url"], provider_url);
    assert_eq!(account["oauth"]["access_token"], "access-for-client-1");
    // Refresh finds the same registration through the account's provider.
    let token = app.api_token(&inst).await;
    let resp = app.refresh(&ty, &account_id, Some(&token)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(provider.with(|s| s.registrations), 1);
    let authority = provider_url.trim_start_matches("http://");
    let (status, doc) = admin_json(
        &app,
        reqwest::Method::GET,
        &format!("/admin/registered_clients/{ty}@{authority}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["provider_url"], provider_url);
}

async fn provider_url_must_be_an_allowed_https_host_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let ty = unique("cozy");
    app.put_account_type(json!({
        "_id": ty, "grant_mode": "authorization_code",
        "auth_endpoint": "{provider_url}/auth/authorize",
        "token_endpoint": "{provider_url}/auth/access_token",
        "registration_endpoint": "{provider_url}/auth/register",
        "provider_url_pattern": ["https://*.mycozy.cloud"]
    }))
    .await;
    let fixed = app.code_type(json!({})).await;
    let inst = app.new_instance(None).await;
    let cases = [
        ("http://alice.mycozy.cloud", "must use https"),
        (
            "https://evil.example",
            "is not allowed for this account type (allowed: https://*.mycozy.cloud)",
        ),
        ("https://alice.mycozy.cloud.evil.example", "is not allowed"),
        ("https://bob:pw@alice.mycozy.cloud", "user name or password"),
        ("https://127.0.0.1", "not an IP address"),
        ("https://[::1]", "not an IP address"),
        ("http://127.0.0.1:8080", "must use https"),
        ("https://alice.mycozy.cloud/auth", "must be an origin"),
        ("not-a-url", "is not a URL"),
    ];
    for (raw, says) in cases {
        let q = format!(
            "&provider_url={}",
            url::form_urlencoded::byte_serialize(raw.as_bytes()).collect::<String>()
        );
        let resp = start_with(&app, &inst, &ty, &q).await;
        assert_eq!(resp.status(), 400, "{raw}");
        let page = resp.text().await.unwrap();
        assert!(
            page.contains(says) && page.contains("invalid_provider_url"),
            "{raw}: {page}"
        );
    }
    let resp = start_with(&app, &inst, &ty, "").await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("give provider_url"));
    let resp = start_with(
        &app,
        &inst,
        &fixed,
        "&provider_url=https%3A%2F%2Falice.mycozy.cloud",
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("takes no provider_url"));
}

async fn user_info_names_the_account_and_its_failure_loses_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let _provider = RegisteringProvider::mount(&app.provider).await;
    let ty = registering_type(&app, json!({})).await;
    let inst = app.new_instance(None).await;
    let (_, id) = connect(&app, &inst, &ty, "").await;
    let account = app.account(&inst, &id).await;
    assert_eq!(account["auth"]["login"], "alice@example.org");
    assert_eq!(account["name"], "Alice Martin");

    // A user info endpoint that fails: the account is still created, unnamed.
    let broken = registering_type(
        &app,
        json!({"userinfo_endpoint": format!("{}/auth/nowhere", app.provider.uri())}),
    )
    .await;
    let (_, id) = connect(&app, &inst, &broken, "").await;
    let account = app.account(&inst, &id).await;
    assert!(account["oauth"]["access_token"].is_string());
    assert!(account.get("auth").is_none(), "{account}");
}

async fn status_introspects_the_token_or_answers_from_the_store(backend: Backend) {
    let app = spawn_app(backend).await;
    let _provider = RegisteringProvider::mount(&app.provider).await;
    let ty = registering_type(&app, json!({})).await;
    let inst = app.new_instance(None).await;
    let (_, id) = connect(&app, &inst, &ty, "").await;
    let token = app.api_token(&inst).await;
    let status = |ty: String, id: String, token: Option<String>| {
        let req = app
            .http
            .get(format!("{}/accounts/{ty}/{id}/status", app.address));
        async move {
            let req = match token {
                Some(t) => req.bearer_auth(t),
                None => req,
            };
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (code, body) = status(ty.clone(), id.clone(), Some(token.clone())).await;
    assert_eq!(code, 200, "{body}");
    let attrs = &body["data"]["attributes"];
    assert_eq!(attrs["active"], true);
    assert_eq!(attrs["expires_at"], "2033-05-18T03:33:20Z");
    assert_eq!(attrs["scope"], "io.cozy.files");
    assert_eq!(attrs["source"], "introspection");
    assert!(
        !body.to_string().contains("access-for-"),
        "no token in the answer"
    );

    // Failure paths: no credential, another instance's token, an unknown account.
    assert_eq!(status(ty.clone(), id.clone(), None).await.0, 401);
    let other = app.new_instance(None).await;
    let other_token = app.api_token(&other).await;
    assert_eq!(
        status(ty.clone(), id.clone(), Some(other_token)).await.0,
        404
    );
    assert_eq!(
        status(ty.clone(), "nope".into(), Some(token.clone()))
            .await
            .0,
        404
    );

    // Without an introspection endpoint, the stored expiry speaks.
    let plain = app.code_type(json!({})).await;
    let expired = app
        .seed_account(&inst, json!({"account_type": plain, "oauth": {"access_token": "a", "expires_at": "2001-01-01T00:00:00Z"}}))
        .await;
    let (code, body) = status(plain.clone(), expired, Some(token.clone())).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["attributes"]["active"], false);
    assert_eq!(body["data"]["attributes"]["source"], "stored");
    let fresh = app
        .seed_account(&inst, json!({"account_type": plain, "oauth": {"access_token": "a", "expires_at": "2099-01-01T00:00:00Z"}}))
        .await;
    assert_eq!(
        status(plain.clone(), fresh, Some(token.clone())).await.1["data"]["attributes"]["active"],
        true
    );

    // An introspection endpoint answering garbage: 502, nothing changes.
    let garbage = registering_type(
        &app,
        json!({"introspection_endpoint": format!("{}/auth/nowhere", app.provider.uri())}),
    )
    .await;
    let (_, id) = connect(&app, &inst, &garbage, "").await;
    let before = app.account(&inst, &id).await;
    let (code, body) = status(garbage, id.clone(), Some(token)).await;
    assert_eq!(code, 502, "{body}");
    assert_eq!(app.account(&inst, &id).await, before);
}

async fn login_hint_reaches_the_provider(backend: Backend) {
    let app = spawn_app(backend).await;
    let ty = app.code_type(json!({})).await;
    let inst = app.new_instance(None).await;
    let resp = start_with(&app, &inst, &ty, "&login_hint=alice%40example.org").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        query_of(&location(&resp))["login_hint"],
        "alice@example.org"
    );
    let resp = start_with(&app, &inst, &ty, "").await;
    assert!(!query_of(&location(&resp)).contains_key("login_hint"));
    let resp = start_with(&app, &inst, &ty, "&login_hint=a%0Ab").await;
    assert_eq!(resp.status(), 400);
    let long = "a".repeat(300);
    let resp = start_with(&app, &inst, &ty, &format!("&login_hint={long}")).await;
    assert_eq!(resp.status(), 400);
}

async fn concurrent_first_starts_end_with_one_sealed_client(backend: Backend) {
    use base64::Engine;
    let key = format!(
        "k1:{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let app = spawn_app_with(backend, move |s| s.encryption_keys = Some(key)).await;
    let provider = RegisteringProvider::mount(&app.provider).await;
    let ty = registering_type(&app, json!({})).await;
    let inst = app.new_instance(None).await;
    let starts = (0..6).map(|_| start_with(&app, &inst, &ty, ""));
    let mut client_ids = Vec::new();
    for resp in futures::future::join_all(starts).await {
        assert_eq!(resp.status(), 303);
        client_ids.push(query_of(&location(&resp))["client_id"].clone());
    }
    client_ids.dedup();
    assert_eq!(
        client_ids.len(),
        1,
        "every flow uses the one stored client: {client_ids:?}"
    );
    // Registrations that lost the race were deleted at the provider.
    provider.with(|s| {
        assert_eq!(s.clients.len(), 1, "{:?}", s.clients.keys());
        assert_eq!(s.registrations - s.deletions, 1);
    });
    let raw = app
        .store
        .get("broker/registered_clients", &ty)
        .await
        .unwrap()
        .unwrap();
    for secret in ["client_secret", "registration_access_token"] {
        assert!(
            raw[secret].as_str().unwrap().starts_with("enc:v1:k1:"),
            "{secret} sealed: {raw}"
        );
    }
    // Sealed at rest, and still usable.
    let (_, id) = connect(&app, &inst, &ty, "").await;
    assert!(app.account(&inst, &id).await["oauth"]["access_token"]
        .as_str()
        .unwrap()
        .starts_with("access-for-client-"));
}

async fn a_slow_registration_endpoint_is_a_timeout(backend: Backend) {
    let app = spawn_app(backend).await;
    wiremock::Mock::given(wiremock::matchers::path("/slow/register"))
        .respond_with(
            wiremock::ResponseTemplate::new(201)
                .set_body_json(json!({"client_id": "late"}))
                .set_delay(std::time::Duration::from_secs(4)),
        )
        .mount(&app.provider)
        .await;
    let ty = registering_type(
        &app,
        json!({"registration_endpoint": format!("{}/slow/register", app.provider.uri())}),
    )
    .await;
    let inst = app.new_instance(None).await;
    let resp = start_with(&app, &inst, &ty, "").await;
    assert_eq!(resp.status(), 504);
    let (status, _) = admin_json(
        &app,
        reqwest::Method::GET,
        &format!("/admin/registered_clients/{ty}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "nothing stored");
}

async fn concurrent_updates_all_land_and_keep_the_newest_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let provider = RegisteringProvider::mount(&app.provider).await;
    let ty = registering_type(&app, json!({})).await;
    let inst = app.new_instance(None).await;
    connect(&app, &inst, &ty, "").await;
    let path = format!("/admin/registered_clients/{ty}");
    let updates = (0..5).map(|_| admin_json(&app, reqwest::Method::PUT, &path, None));
    for (status, body) in futures::future::join_all(updates).await {
        assert_eq!(
            status, 200,
            "a write conflict is re-applied, not a failure: {body}"
        );
    }
    assert_eq!(provider.with(|s| s.updates), 5);
    // A rotation racing a plain update: the stored secret is the provider's newest.
    let rotate = admin_json(
        &app,
        reqwest::Method::PUT,
        &path,
        Some(json!({"reset_secret": true})),
    );
    let plain = admin_json(&app, reqwest::Method::PUT, &path, None);
    let (a, b) = futures::future::join(rotate, plain).await;
    assert_eq!((a.0, b.0), (200, 200), "{} {}", a.1, b.1);
    let (_, id) = connect(&app, &inst, &ty, "").await;
    assert_eq!(
        app.account(&inst, &id).await["oauth"]["access_token"],
        "access-for-client-1",
        "{:?}",
        provider.with(|s| s.complaints.clone())
    );
}

async fn a_client_unregistered_on_another_replica_is_forgotten_here_within_seconds(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let provider = RegisteringProvider::mount(&app.provider).await;
    let ty = registering_type(&app, json!({})).await;
    let inst = app.new_instance(None).await;
    let (url, _) = connect(&app, &inst, &ty, "").await;
    assert_eq!(query_of(&url)["client_id"], "client-1");

    // Another replica on the same store unregisters it.
    let mut settings = app.settings.clone();
    settings.listen = "127.0.0.1:0".into();
    let other = crate::helpers::spawn_with_settings(
        settings,
        app._dir.clone(),
        wiremock::MockServer::start().await,
    )
    .await;
    let (status, _) = admin_json(
        &other,
        reqwest::Method::DELETE,
        &format!("/admin/registered_clients/{ty}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(provider.with(|s| s.deletions), 1);

    // This replica had client-1 cached: its changes feed makes it register anew.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let resp = start_with(&app, &inst, &ty, "").await;
        assert_eq!(resp.status(), 303);
        let client = query_of(&location(&resp))["client_id"].clone();
        if client == "client-2" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still using the deleted {client}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

both_stores!(
    a_client_unregistered_on_another_replica_is_forgotten_here_within_seconds,
    concurrent_updates_all_land_and_keep_the_newest_secret,
    concurrent_first_starts_end_with_one_sealed_client,
    a_slow_registration_endpoint_is_a_timeout,
    first_start_registers_and_later_ones_reuse_the_client,
    update_reset_secret_and_unregister,
    an_expired_client_secret_is_registered_again,
    a_registration_refused_by_the_provider_is_a_clear_error_and_stores_nothing,
    a_provider_url_flow_registers_with_that_server_and_the_account_remembers_it,
    provider_url_must_be_an_allowed_https_host_name,
    user_info_names_the_account_and_its_failure_loses_nothing,
    status_introspects_the_token_or_answers_from_the_store,
    login_hint_reaches_the_provider,
);

#[tokio::test]
async fn store_down_answers_503_and_the_provider_is_not_asked() {
    let Some(relay) = crate::helpers::CouchRelay::start().await else {
        return;
    };
    let app = crate::helpers::spawn_relayed_app(&relay).await;
    let provider = RegisteringProvider::mount(&app.provider).await;
    let ty = registering_type(&app, json!({})).await;
    let inst = app.new_instance(None).await;
    let (_, id) = connect(&app, &inst, &ty, "").await;
    let token = app.api_token(&inst).await;
    relay.set_down(true).await;
    let path = format!("/admin/registered_clients/{ty}");
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let (status, body) = admin_json(&app, method.clone(), &path, None).await;
        assert_eq!(status, 503, "{method}: {body}");
        assert_eq!(body["errors"][0]["code"], "store_unavailable");
    }
    let status = app
        .http
        .get(format!("{}/accounts/{ty}/{id}/status", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 503);
    assert_eq!(provider.with(|s| (s.updates, s.deletions)), (0, 0));
    relay.set_down(false).await;
    let (status, body) = admin_json(&app, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
}
