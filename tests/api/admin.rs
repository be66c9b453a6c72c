//! `/admin/*` and the account-type cache.

use crate::both_stores;
use crate::helpers::*;
use oauth_broker::store::{Store, ACCOUNT_TYPES_DB};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn admin_api_needs_the_admin_token(b: Backend) {
    let app = spawn_app(b).await;
    let url = format!("{}/admin/account_types", app.address);
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        app.http
            .get(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        app.admin(Method::GET, "/admin/account_types")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let off = spawn_app_with(b, |s| s.admin_token = None).await;
    let resp = off
        .http
        .get(format!("{}/admin/account_types", off.address))
        .bearer_auth("")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "admin_disabled");
}

async fn admin_reads_redact_secrets(b: Backend) {
    let app = spawn_app(b).await;
    let id = unique("fb");
    app.put_account_type(
        json!({"_id": id, "grant_mode": "authorization_code", "client_id": "cid",
        "client_secret": "super-secret-value", "secret": {"api": "konnector-secret"},
        "auth_endpoint": "https://www.facebook.com/dialog/oauth",
        "token_endpoint": "https://graph.facebook.com/oauth/access_token"}),
    )
    .await;
    let one = app
        .admin(Method::GET, &format!("/admin/account_types/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let one_text = one.text().await.unwrap();
    let all = app
        .admin(Method::GET, "/admin/account_types")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for text in [&one_text, &all] {
        assert!(
            !text.contains("super-secret-value") && !text.contains("konnector-secret"),
            "{text}"
        );
    }
    let doc: Value = serde_json::from_str(&one_text).unwrap();
    assert_eq!(doc["client_secret"], "[redacted]");
    assert_eq!(doc["client_id"], "cid");
    // Sending back what was read keeps the stored secret.
    let mut edited = doc.clone();
    edited["client_id"] = "cid2".into();
    edited.as_object_mut().unwrap().remove("_rev");
    app.put_account_type(edited).await;
    let stored = app.store.get(ACCOUNT_TYPES_DB, &id).await.unwrap().unwrap();
    assert_eq!(stored["client_secret"], "super-secret-value");
    assert_eq!(stored["client_id"], "cid2");
}

async fn admin_put_refuses_an_invalid_document_and_stores_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let id = unique("bad");
    for (doc, field) in [
        (
            json!({"grant_mode": "authorization_code", "client_id": "c", "auth_endpoint": "https://a", "extras": {"display": 1}}),
            "extras.display",
        ),
        (json!({"grant_mode": "bi_webview"}), "grant_mode"),
        (
            json!({"grant_mode": "authorization_code", "client_id": "c", "auth_endpoint": "ftp://a"}),
            "auth_endpoint",
        ),
        (
            json!({"grant_mode": "authorization_code", "auth_endpoint": "https://a"}),
            "client_id",
        ),
        (json!({"token_mode": "header"}), "token_mode"),
    ] {
        let resp = app
            .admin(Method::PUT, &format!("/admin/account_types/{id}"))
            .json(&doc)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["errors"][0]["detail"]
                .as_str()
                .unwrap()
                .contains(field),
            "{body}"
        );
    }
    for (raw, code) in [
        ("not json", "invalid_json"),
        ("[1]", "invalid_json"),
        (r#"{"_id":"other"}"#, "id_mismatch"),
    ] {
        let resp = app
            .admin(Method::PUT, &format!("/admin/account_types/{id}"))
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(
            resp.json::<Value>().await.unwrap()["errors"][0]["code"],
            code
        );
    }
    let big = "x".repeat(100 * 1024);
    let resp = app
        .admin(Method::PUT, &format!("/admin/account_types/{id}"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(app
        .store
        .get(ACCOUNT_TYPES_DB, &id)
        .await
        .unwrap()
        .is_none());
}

async fn admin_put_with_a_stale_rev_conflicts(b: Backend) {
    let app = spawn_app(b).await;
    let id = unique("t");
    let doc = json!({"_id": id, "grant_mode": "secret", "secret": "a"});
    app.put_account_type(doc.clone()).await;
    let mut stale = doc.clone();
    stale["_rev"] = "1-00000000000000000000000000000000".into();
    let resp = app
        .admin(Method::PUT, &format!("/admin/account_types/{id}"))
        .json(&stale)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
}

async fn admin_delete_removes_the_type(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    let t = app.code_type(json!({})).await;
    let resp = app
        .admin(Method::DELETE, &format!("/admin/account_types/{t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let again = app
        .admin(Method::DELETE, &format!("/admin/account_types/{t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    let code = app.session_code(&inst).await;
    assert_eq!(
        app.start_raw(&t, &format!("session_code={code}"))
            .await
            .status(),
        404
    );
}

async fn admin_context_overload_ids_work_with_slash_or_escaped(b: Backend) {
    let app = spawn_app(b).await;
    let id = format!("{}/google", unique("ctx"));
    app.put_account_type(json!({"_id": id, "grant_mode": "secret"}))
        .await;
    let escaped = id.replace('/', "%2F");
    let resp = app
        .admin(Method::GET, &format!("/admin/account_types/{escaped}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["_id"], id.as_str());
}

async fn instances_get_cozy_prefixes_and_are_unique(b: Backend) {
    let app = spawn_app(b).await;
    let domain = format!("{}.example.test", unique("alice"));
    let resp = app
        .admin(Method::POST, "/admin/instances")
        .json(&json!({"domain": domain, "context": "ctx"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let expected = oauth_broker::domain::instance::prefix_for(
        &oauth_broker::domain::Domain::parse(&domain).unwrap(),
    );
    assert_eq!(body["prefix"], expected.as_str());
    let doc = app
        .store
        .get("global/instances", &domain)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            doc["domain"].as_str(),
            doc["prefix"].as_str(),
            doc["context"].as_str()
        ),
        (Some(domain.as_str()), Some(expected.as_str()), Some("ctx"))
    );
    let dup = app
        .admin(Method::POST, "/admin/instances")
        .json(&json!({"domain": domain}))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409);
    let bad = app
        .admin(Method::POST, "/admin/instances")
        .json(&json!({"domain": "not a domain"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let missing = app
        .admin(Method::POST, "/admin/instances/nobody.example/tokens")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

async fn a_document_put_straight_into_the_store_is_in_force_within_a_second(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.new_instance(None).await;
    // Warm the cache with a miss, so the change must come through the feed.
    let id = unique("curl");
    let code = app.session_code(&inst).await;
    assert_eq!(
        app.start_raw(&id, &format!("session_code={code}"))
            .await
            .status(),
        404
    );
    // Another writer: CouchDB itself, or a second process on the embedded file.
    let writer: Box<dyn Store> = match b {
        Backend::Couch | Backend::Pouch => Box::new(
            oauth_broker::store::couch::CouchStore::new(
                app.settings.couchdb.url.as_deref().unwrap(),
                Duration::from_secs(5),
                "",
            )
            .unwrap(),
        ),
        Backend::Embedded => {
            Box::new(oauth_broker::store::embedded::EmbeddedStore::open(app._dir.path()).unwrap())
        }
    };
    let doc = json!({"_id": id, "grant_mode": "authorization_code", "client_id": "v1",
                     "auth_endpoint": "https://p.example/auth"});
    let rev = writer.put(ACCOUNT_TYPES_DB, &doc).await.unwrap();
    let started = Instant::now();
    loop {
        let code = app.session_code(&inst).await;
        let resp = app.start_raw(&id, &format!("session_code={code}")).await;
        if resp.status() == 303 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "new type not in force after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An update replaces the cached entry too.
    let mut v2 = doc.clone();
    v2["_rev"] = rev.into();
    v2["client_id"] = "v2".into();
    writer.put(ACCOUNT_TYPES_DB, &v2).await.unwrap();
    let started = Instant::now();
    loop {
        let code = app.session_code(&inst).await;
        let url = location(&app.start_raw(&id, &format!("session_code={code}")).await);
        if url.contains("client_id=v2") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "update not in force after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_stores!(
    admin_api_needs_the_admin_token,
    admin_reads_redact_secrets,
    admin_put_refuses_an_invalid_document_and_stores_nothing,
    admin_put_with_a_stale_rev_conflicts,
    admin_delete_removes_the_type,
    admin_context_overload_ids_work_with_slash_or_escaped,
    instances_get_cozy_prefixes_and_are_unique,
    a_document_put_straight_into_the_store_is_in_force_within_a_second,
);
