//! Secrets at rest: sealed client secrets and refresh tokens, and key rotation.

use crate::both_stores;
use crate::helpers::*;
use base64::Engine;
use oauth_broker::store::ACCOUNT_TYPES_DB;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, path};
use wiremock::{Mock, ResponseTemplate};

fn key(id: &str, byte: u8) -> String {
    format!(
        "{id}:{}",
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    )
}

async fn flow(app: &TestApp, inst: &oauth_broker::domain::Instance, t: &str) -> String {
    let url = app.start_flow(inst, t).await;
    let loc = location(
        &app.redirect(t, &[("code", "C"), ("state", &TestApp::state_in(&url))])
            .await,
    );
    query_of(&loc)
        .get("account")
        .cloned()
        .unwrap_or_else(|| panic!("flow failed: {loc}"))
}

async fn secrets_rotate_from_key_1_to_key_2_and_everything_keeps_working(b: Backend) {
    let (k1, k2) = (key("k1", 1), key("k2", 2));
    let ring1 = k1.clone();
    // Its own database namespace on CouchDB: the rotation re-seals every account type.
    let namespace = format!("{}_", unique("rot"));
    let app = spawn_app_with(b, move |s| {
        s.encryption_keys = Some(ring1);
        s.encrypt_refresh_tokens = true;
        s.couchdb.db_prefix = namespace;
    })
    .await;
    let inst = app.new_instance(None).await;
    // Provisioned through the broker: sealed. Provisioned with curl: plaintext, still works.
    let sealed_type = app.code_type(json!({})).await;
    let curl_type = unique("curl");
    app.store
        .put(
            ACCOUNT_TYPES_DB,
            &json!({"_id": curl_type, "grant_mode": "authorization_code",
            "client_id": "the-client-id", "client_secret": "curl-secret",
            "auth_endpoint": format!("{}/authorize", app.provider.uri()),
            "token_endpoint": format!("{}/token", app.provider.uri())}),
        )
        .await
        .unwrap();
    let stored = app
        .store
        .get(ACCOUNT_TYPES_DB, &sealed_type)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("enc:v1:k1:"),
        "{stored}"
    );
    for secret in ["the-client-secret", "curl-secret"] {
        Mock::given(path("/token"))
            .and(body_string_contains(format!("client_secret={secret}")))
            .and(body_string_contains("grant_type=authorization_code"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"access_token": "at", "refresh_token": format!("rt-{secret}")}),
            ))
            .mount(&app.provider)
            .await;
        Mock::given(path("/token"))
            .and(body_string_contains(format!("client_secret={secret}")))
            .and(body_string_contains(format!("refresh_token=rt-{secret}")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"access_token": "refreshed"})),
            )
            .mount(&app.provider)
            .await;
    }
    let account = flow(&app, &inst, &sealed_type).await;
    let curl_account = flow(&app, &inst, &curl_type).await;
    let doc = app.account(&inst, &account).await;
    let rt = doc["oauth"]["refresh_token"].as_str().unwrap();
    assert!(
        rt.starts_with("enc:v1:k1:") && !rt.contains("rt-the"),
        "{rt}"
    );

    // Rotate with the CLI: key 2 first, key 1 still there to open what it sealed.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_oauth-broker"));
    cmd.args(["keys", "rotate"])
        .env("BROKER__ENCRYPTION_KEYS", format!("{k2},{k1}"))
        .env("BROKER__ENCRYPT_REFRESH_TOKENS", "true")
        .env("BROKER__DATA_DIR", app._dir.path())
        .env(
            "BROKER__COUCHDB__DB_PREFIX",
            &app.settings.couchdb.db_prefix,
        )
        .env(
            "BROKER__COUCHDB__URL",
            app.settings.couchdb.url.clone().unwrap_or_default(),
        );
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A broker that knows only key 2 runs every flow and refresh.
    let mut settings = app.settings.clone();
    settings.encryption_keys = Some(k2.clone());
    let rotated = spawn_with_settings(
        settings,
        app._dir.clone(),
        wiremock::MockServer::start().await,
    )
    .await;
    let token = rotated.api_token(&inst).await;
    for (t, id) in [(&sealed_type, &account), (&curl_type, &curl_account)] {
        let resp = rotated.refresh(t, id, Some(&token)).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        flow(&rotated, &inst, t).await;
    }
    let mut docs: Vec<Value> = rotated.accounts(&inst).await;
    for id in [&sealed_type, &curl_type] {
        docs.push(
            rotated
                .store
                .get(ACCOUNT_TYPES_DB, id)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(docs.len(), 6);
    for d in &docs {
        assert!(
            !d.to_string().contains("enc:v1:k1:"),
            "still under key 1: {d}"
        );
    }
    for id in [&sealed_type, &curl_type] {
        let d = rotated
            .store
            .get(ACCOUNT_TYPES_DB, id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            d["client_secret"]
                .as_str()
                .unwrap()
                .starts_with("enc:v1:k2:"),
            "{d}"
        );
    }
}

async fn a_secret_sealed_with_an_unknown_key_names_the_field(b: Backend) {
    let k1 = key("k1", 1);
    let app = spawn_app_with(b, move |s| s.encryption_keys = Some(k1)).await;
    let inst = app.new_instance(None).await;
    let t = unique("lost");
    let foreign = oauth_broker::domain::sealed::Keyring::parse(&key("k9", 9)).unwrap();
    let sealed = foreign
        .seal("x", &format!("account_type/{t}/client_secret"))
        .unwrap();
    app.store
        .put(
            ACCOUNT_TYPES_DB,
            &json!({"_id": t, "grant_mode": "authorization_code", "client_id": "c",
            "client_secret": sealed, "auth_endpoint": "https://p.example/a"}),
        )
        .await
        .unwrap();
    let code = app.session_code(&inst).await;
    let resp = app.start_raw(&t, &format!("session_code={code}")).await;
    assert_eq!(resp.status(), 500);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("client_secret") && body.contains("k9"),
        "{body}"
    );
}

both_stores!(
    secrets_rotate_from_key_1_to_key_2_and_everything_keeps_working,
    a_secret_sealed_with_an_unknown_key_names_the_field,
);

async fn a_refresh_token_sealed_with_an_unknown_key_is_a_clear_error(b: Backend) {
    let k1 = key("k1", 1);
    let app = spawn_app_with(b, move |s| s.encryption_keys = Some(k1)).await;
    let inst = app.new_instance(None).await;
    let token = app.api_token(&inst).await;
    let t = app.code_type(json!({})).await;
    let id = app
        .seed_account(
            &inst,
            json!({"account_type": t, "name": "", "oauth": {"access_token": "a"}}),
        )
        .await;
    let foreign = oauth_broker::domain::sealed::Keyring::parse(&key("k9", 9)).unwrap();
    let sealed = foreign
        .seal("rt", &format!("account/{id}/refresh_token"))
        .unwrap();
    let mut doc = app.account(&inst, &id).await;
    doc["oauth"]["refresh_token"] = sealed.into();
    app.store.put(&inst.accounts_db(), &doc).await.unwrap();
    let resp = app.refresh(&t, &id, Some(&token)).await;
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "key_unavailable");
    assert!(body["errors"][0]["detail"].as_str().unwrap().contains("k9"));
    assert!(
        app.provider.received_requests().await.unwrap().is_empty(),
        "nothing sent to the provider"
    );
}

both_stores!(a_refresh_token_sealed_with_an_unknown_key_is_a_clear_error);

async fn a_state_made_before_a_key_rotation_completes_after_it(b: Backend) {
    let k1 = key("k1", 1);
    let ring1 = k1.clone();
    let app = spawn_app_with(b, move |s| s.encryption_keys = Some(ring1)).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let url = app.start_flow(&inst, &t).await;
    let state = TestApp::state_in(&url);
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "a"})))
        .mount(&app.provider)
        .await;
    let respawn = |keys: String| {
        let mut settings = app.settings.clone();
        settings.listen = "127.0.0.1:0".into();
        settings.encryption_keys = Some(keys);
        let (dir, cookies) = (app._dir.clone(), app.cookies.clone());
        // The type's endpoints stay on the first app's mock provider.
        async move {
            let mut other =
                spawn_with_settings(settings, dir, wiremock::MockServer::start().await).await;
            other.cookies = cookies;
            other
        }
    };
    // A broker that no longer has the key the state was sealed with does not know it.
    let forgot = respawn(key("k2", 2)).await;
    let resp = forgot
        .redirect(&t, &[("code", "C"), ("state", &state)])
        .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("state_unknown"));
    // One that rotated (new key first, the old one kept) completes it.
    let rotated = respawn(format!("{},{k1}", key("k2", 2))).await;
    let loc = location(
        &rotated
            .redirect(&t, &[("code", "C"), ("state", &state)])
            .await,
    );
    assert!(loc.contains("account="), "{loc}");
}

both_stores!(a_state_made_before_a_key_rotation_completes_after_it);

async fn a_damaged_flow_key_stops_start_up_with_its_name(b: Backend) {
    // Its own namespace: the flow key is shared by every broker on a store.
    let namespace = format!("{}_", unique("flowkey"));
    let app = spawn_app_with(b, move |s| s.couchdb.db_prefix = namespace).await;
    let mut key = app
        .store
        .get(oauth_broker::store::KEYS_DB, "flow-state-key")
        .await
        .unwrap()
        .expect("drawn at first start");
    key["key"] = "not a key".into();
    app.store
        .put(oauth_broker::store::KEYS_DB, &key)
        .await
        .unwrap();
    let mut settings = app.settings.clone();
    settings.listen = "127.0.0.1:0".into();
    let refused = oauth_broker::startup::Application::build(&settings)
        .await
        .err()
        .expect("a broker does not start on a damaged flow key");
    assert!(
        format!("{refused:#}").contains("broker/keys/flow-state-key is damaged"),
        "{refused:#}"
    );
}

both_stores!(a_damaged_flow_key_stops_start_up_with_its_name);

/// `oauth-broker keys rotate` on the app's store with `keys`; its output.
fn rotate(app: &TestApp, keys: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
        .args(["keys", "rotate"])
        .env("BROKER__ENCRYPTION_KEYS", keys)
        .env("BROKER__DATA_DIR", app._dir.path())
        .env(
            "BROKER__COUCHDB__DB_PREFIX",
            &app.settings.couchdb.db_prefix,
        )
        .env(
            "BROKER__COUCHDB__URL",
            app.settings.couchdb.url.clone().unwrap_or_default(),
        )
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

async fn registered_clients_rotate_with_the_keys_and_stay_usable_and_removable(b: Backend) {
    use crate::common::registering_provider::RegisteringProvider;
    let (k1, k2) = (key("k1", 1), key("k2", 2));
    let ring1 = k1.clone();
    let namespace = format!("{}_", unique("rotreg"));
    let app = spawn_app_with(b, move |s| {
        s.encryption_keys = Some(ring1);
        s.couchdb.db_prefix = namespace;
    })
    .await;
    let provider = RegisteringProvider::mount(&app.provider).await;
    let ty = crate::registration::registering_type(&app, json!({})).await;
    let inst = app.new_instance(None).await;
    let (_, account) = crate::registration::connect(&app, &inst, &ty, "").await;
    let stored = app
        .store
        .get("broker/registered_clients", &ty)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("enc:v1:k1:"),
        "{stored}"
    );

    let out = rotate(&app, &format!("{k2},{k1}"));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("1 registered client(s)"), "{said}");

    // Key 1 is gone: the registered client still refreshes and can still be deleted.
    let mut settings = app.settings.clone();
    settings.encryption_keys = Some(k2);
    let rotated = spawn_with_settings(
        settings,
        app._dir.clone(),
        wiremock::MockServer::start().await,
    )
    .await;
    let token = rotated.api_token(&inst).await;
    let resp = rotated.refresh(&ty, &account, Some(&token)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let stored = rotated
        .store
        .get("broker/registered_clients", &ty)
        .await
        .unwrap()
        .unwrap();
    for m in ["client_secret", "registration_access_token"] {
        assert!(
            stored[m].as_str().unwrap().starts_with("enc:v1:k2:"),
            "{stored}"
        );
    }
    let gone = rotated
        .admin(
            reqwest::Method::DELETE,
            &format!("/admin/registered_clients/{ty}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204, "{}", gone.text().await.unwrap());
    assert_eq!(provider.with(|s| s.registrations), 1);
}

async fn a_refresh_token_no_key_opens_fails_the_rotation_by_name(b: Backend) {
    let k1 = key("k1", 1);
    let ring = k1.clone();
    let namespace = format!("{}_", unique("rotbad"));
    let app = spawn_app_with(b, move |s| {
        s.encryption_keys = Some(ring);
        s.couchdb.db_prefix = namespace;
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
    let foreign = oauth_broker::domain::sealed::Keyring::parse(&key("k9", 9)).unwrap();
    let mut doc = app.account(&inst, &id).await;
    doc["oauth"]["refresh_token"] = foreign
        .seal("rt", &format!("account/{id}/refresh_token"))
        .unwrap()
        .into();
    app.store.put(&inst.accounts_db(), &doc).await.unwrap();

    let out = rotate(&app, &format!("{},{k1}", key("k2", 2)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a token left behind is a failure: {err}"
    );
    assert!(err.contains(&id) && err.contains("k9"), "{err}");
    // Left as it was, not dropped.
    assert_eq!(
        app.account(&inst, &id).await["oauth"]["refresh_token"],
        doc["oauth"]["refresh_token"]
    );
}

both_stores!(
    registered_clients_rotate_with_the_keys_and_stay_usable_and_removable,
    a_refresh_token_no_key_opens_fails_the_rotation_by_name,
);
