//! The `oauth-broker` command line, run as a process against both stores.

use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

fn couch_url() -> String {
    std::env::var("BROKER_TEST_COUCHDB_URL").expect("run the tests with scripts/test.sh")
}

/// Runs the binary on the embedded store in `dir`, or on CouchDB when `couch` is set.
fn broker(dir: &Path, couch: bool, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
        .args(args)
        .env("BROKER__DATA_DIR", dir)
        .env(
            "BROKER__COUCHDB__URL",
            if couch { couch_url() } else { String::new() },
        )
        .env("RUST_LOG", "warn")
        .output()
        .expect("binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn unique(p: &str) -> String {
    format!("{p}{}", oauth_broker::domain::secret::random_hex(6))
}

#[test]
fn validate_names_the_file_and_the_field_of_a_bad_document() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        json!({"_id": "x", "grant_mode": "authorization_code", "client_id": "c",
        "auth_endpoint": "https://a.example", "extras": {"display": 1}})
        .to_string(),
    )
    .unwrap();
    let out = broker(
        dir.path(),
        false,
        &["account-types", "validate", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("bad.json") && t.contains("extras.display"),
        "{t}"
    );
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        json!({"_id": "x", "grant_mode": "secret"}).to_string(),
    )
    .unwrap();
    assert!(broker(
        dir.path(),
        false,
        &["account-types", "validate", good.to_str().unwrap()]
    )
    .status
    .success());
}

fn account_type_round_trip(couch: bool) {
    let dir = tempfile::tempdir().unwrap();
    let id = unique("facebook");
    let file = dir.path().join("fb.json");
    std::fs::write(&file, json!({"_id": id, "grant_mode": "authorization_code", "client_id": "cid",
        "client_secret": "cli-secret-value", "auth_endpoint": "https://www.facebook.com/dialog/oauth",
        "token_endpoint": "https://graph.facebook.com/oauth/access_token"}).to_string()).unwrap();
    let put = broker(
        dir.path(),
        couch,
        &["account-types", "put", file.to_str().unwrap()],
    );
    assert!(put.status.success(), "{}", text(&put));
    let get = broker(dir.path(), couch, &["account-types", "get", &id]);
    assert!(get.status.success());
    let shown = text(&get);
    assert!(
        shown.contains("[redacted]") && !shown.contains("cli-secret-value"),
        "{shown}"
    );
    let list = text(&broker(dir.path(), couch, &["account-types", "list"]));
    assert!(
        list.contains(&format!("{id}\tauthorization_code")),
        "{list}"
    );
    assert!(broker(dir.path(), couch, &["account-types", "rm", &id])
        .status
        .success());
    assert!(!broker(dir.path(), couch, &["account-types", "get", &id])
        .status
        .success());
    assert!(!broker(dir.path(), couch, &["account-types", "rm", &id])
        .status
        .success());
}

#[test]
fn account_types_put_get_list_rm_on_the_embedded_store() {
    account_type_round_trip(false)
}

#[test]
fn account_types_put_get_list_rm_on_couchdb() {
    account_type_round_trip(true)
}

#[test]
fn a_bad_document_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let id = unique("bad");
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        json!({"_id": id, "grant_mode": "bi_webauth"}).to_string(),
    )
    .unwrap();
    let out = broker(
        dir.path(),
        false,
        &["account-types", "put", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("Budget Insight"), "{}", text(&out));
    assert!(!broker(dir.path(), false, &["account-types", "get", &id])
        .status
        .success());
}

#[test]
fn instances_add_computes_the_cozy_prefix_and_refuses_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let domain = format!("{}.example.test", unique("alice"));
    let out = broker(
        dir.path(),
        false,
        &["instances", "add", &domain, "--context", "ctx"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let prefix = oauth_broker::domain::instance::prefix_for(
        &oauth_broker::domain::Domain::parse(&domain).unwrap(),
    );
    assert!(text(&out).contains(&prefix));
    assert!(!broker(dir.path(), false, &["instances", "add", &domain])
        .status
        .success());
    let token = broker(dir.path(), false, &["instances", "token", &domain]);
    assert_eq!(String::from_utf8_lossy(&token.stdout).trim().len(), 64);
    assert!(
        !broker(dir.path(), false, &["instances", "token", "nobody.example"])
            .status
            .success()
    );
}

#[test]
fn serve_runs_on_the_embedded_store_with_no_settings() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
        .current_dir(dir.path())
        .env("BROKER__LISTEN", format!("127.0.0.1:{port}"))
        .env("BROKER__COUCHDB__URL", "")
        .env_remove("BROKER__DATA_DIR")
        .spawn()
        .unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            ready = answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200");
            if ready {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(ready, "the broker answered /readyz");
    assert!(
        dir.path().join("data/broker.sqlite3").exists(),
        "default data dir ./data"
    );
}

#[tokio::test]
async fn accounts_rm_deletes_an_account_of_an_instance() {
    use oauth_broker::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let domain = format!("{}.example.test", unique("bob"));
    assert!(broker(dir.path(), false, &["instances", "add", &domain])
        .status
        .success());
    let inst = oauth_broker::domain::Instance::new(
        oauth_broker::domain::Domain::parse(&domain).unwrap(),
        None,
    );
    let file = dir.path().join("t.json");
    std::fs::write(
        &file,
        json!({"_id": "svc", "grant_mode": "secret"}).to_string(),
    )
    .unwrap();
    assert!(broker(
        dir.path(),
        false,
        &["account-types", "put", file.to_str().unwrap()]
    )
    .status
    .success());
    let id = {
        let store = oauth_broker::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
        store.ensure_db(&inst.accounts_db()).await.unwrap();
        store
            .create(
                &inst.accounts_db(),
                &json!({"account_type": "svc", "name": ""}),
            )
            .await
            .unwrap()
            .0
    };
    let out = broker(dir.path(), false, &["accounts", "rm", &domain, &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("deleted `{id}`")));
    let again = broker(dir.path(), false, &["accounts", "rm", &domain, &id]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("account not found"),
        "{}",
        text(&again)
    );
}
