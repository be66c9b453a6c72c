//! The `oauth-broker` command line, run as a process against both stores.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

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
    if common::needs::env("BROKER_TEST_COUCHDB_URL", "Apache CouchDB").is_none() {
        return;
    }
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
            .put(
                &inst.accounts_db(),
                &json!({"_id": "cli-account", "account_type": "svc", "name": ""}),
            )
            .await
            .unwrap();
        "cli-account".to_owned()
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

fn secret_file(dir: &Path, value: &str) -> String {
    let f = dir.join("client-secret");
    std::fs::write(&f, format!("{value}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    f.display().to_string()
}

#[test]
fn templates_lists_the_whole_catalogue_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = broker(dir.path(), false, &["account-types", "templates"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(listed >= 250, "{listed}");
    assert!(text(&out).contains("zendesk\tZendesk\tsupport\t--param subdomain=.."));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{listed} templates")), "{stderr}");
}

#[test]
fn templates_filter_by_category_and_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let lines = |args: &[&str]| {
        let out = broker(dir.path(), false, args);
        assert!(out.status.success(), "{}", text(&out));
        let rows: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        (rows, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (banking, note) = lines(&["account-types", "templates", "--category", "banking"]);
    assert!(
        banking
            .iter()
            .all(|l| l.split('\t').nth(2) == Some("banking")),
        "{banking:?}"
    );
    assert!(
        banking.iter().any(|l| l.starts_with("qonto\t")),
        "{banking:?}"
    );
    assert!(note.contains(&format!("{} of ", banking.len())), "{note}");
    // By template name or provider name, any case.
    let (named, _) = lines(&["account-types", "templates", "--name", "QONTO"]);
    assert_eq!(named.len(), 1, "{named:?}");
    let (both, _) = lines(&[
        "account-types",
        "templates",
        "--category",
        "storage",
        "--name",
        "cloud",
    ]);
    assert!(
        both.iter().any(|l| l.starts_with("nextcloud\t")),
        "{both:?}"
    );
    assert!(both.iter().all(|l| l.contains("\tstorage\t")), "{both:?}");
    let bad = broker(
        dir.path(),
        false,
        &["account-types", "templates", "--category", "bank"],
    );
    assert!(!bad.status.success());
    assert!(text(&bad).contains("expected one of"), "{}", text(&bad));
}

/// Every template, filled in with a client id, a secret and a value for each parameter,
/// passes `account-types validate`, as an operator would run it.
#[test]
fn every_template_validates_with_its_parameters_filled() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "client-secret-value");
    let out = broker(dir.path(), false, &["account-types", "templates"]);
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    let catalogue = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("account_types");
    let mut failed = Vec::new();
    for line in list.lines() {
        let name = line.split('\t').next().unwrap();
        let doc: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(catalogue.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let mut args = vec![
            "account-types".to_owned(),
            "validate".to_owned(),
            name.to_owned(),
            "--client-id".to_owned(),
            "cid".to_owned(),
            "--client-secret-file".to_owned(),
            secret.clone(),
        ];
        if let Some(params) = doc["template"]["parameters"].as_object() {
            for (p, spec) in params {
                let value = match spec["kind"].as_str().unwrap() {
                    "choice" => spec["values"][0].as_str().unwrap().to_owned(),
                    "label" => "acme".to_owned(),
                    "host" => "sso.acme.example".to_owned(),
                    _ => "sso.acme.example/realms/main".to_owned(),
                };
                args.push("--param".to_owned());
                args.push(format!("{p}={value}"));
            }
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = broker(dir.path(), false, &argv);
        if !out.status.success() || !text(&out).contains("valid account type") {
            failed.push(format!("{name}: {}", text(&out)));
        }
    }
    assert!(list.lines().count() >= 250);
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// put from a template, then diff, on one store.
fn put_and_diff_from_a_template(couch: bool) {
    let dir = tempfile::tempdir().unwrap();
    let id = format!("{}/zendesk", unique("ctx"));
    let secret = secret_file(dir.path(), "first-secret-value");
    let put = broker(
        dir.path(),
        couch,
        &[
            "account-types",
            "put",
            "zendesk",
            "--id",
            &id,
            "--param",
            "subdomain=acme",
            "--client-id",
            "cid",
            "--client-secret-file",
            &secret,
        ],
    );
    assert!(put.status.success(), "{}", text(&put));
    assert!(!text(&put).contains("first-secret-value"));

    let get = text(&broker(dir.path(), couch, &["account-types", "get", &id]));
    assert!(
        get.contains("https://acme.zendesk.com/oauth/tokens"),
        "{get}"
    );
    assert!(
        get.contains("[redacted]") && !get.contains("first-secret-value"),
        "{get}"
    );
    assert!(!get.contains("\"template\""), "{get}");

    let same = broker(
        dir.path(),
        couch,
        &[
            "account-types",
            "diff",
            "zendesk",
            "--id",
            &id,
            "--param",
            "subdomain=acme",
            "--client-id",
            "cid",
            "--client-secret-file",
            &secret,
            "--exit-code",
        ],
    );
    assert!(same.status.success(), "{}", text(&same));
    assert!(text(&same).contains("no changes"), "{}", text(&same));

    let secret2 = secret_file(dir.path(), "second-secret-value");
    let diff = broker(
        dir.path(),
        couch,
        &[
            "account-types",
            "diff",
            "zendesk",
            "--id",
            &id,
            "--param",
            "subdomain=other",
            "--client-id",
            "cid",
            "--client-secret-file",
            &secret2,
            "--exit-code",
        ],
    );
    assert_eq!(diff.status.code(), Some(1), "{}", text(&diff));
    let shown = text(&diff);
    assert!(
        shown.contains("~ token_endpoint: \"https://acme.zendesk.com/oauth/tokens\" -> \"https://other.zendesk.com/oauth/tokens\""),
        "{shown}"
    );
    assert!(
        shown.contains("~ client_secret: \"[redacted]\" -> \"[changed]\""),
        "{shown}"
    );
    assert!(!shown.contains("secret-value"), "{shown}");
    // diff stored nothing.
    let get = text(&broker(dir.path(), couch, &["account-types", "get", &id]));
    assert!(get.contains("acme.zendesk.com"), "{get}");
}

#[test]
fn put_and_diff_from_a_template_on_the_embedded_store() {
    put_and_diff_from_a_template(false)
}

#[test]
fn put_and_diff_from_a_template_on_couchdb() {
    if common::needs::env("BROKER_TEST_COUCHDB_URL", "Apache CouchDB").is_none() {
        return;
    }
    put_and_diff_from_a_template(true)
}

/// A bad template, or a parameter that would move an endpoint, names the file and the
/// field and stores nothing.
fn bad_template_stores_nothing(couch: bool) {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalogue");
    std::fs::create_dir(&cat).unwrap();
    let name = unique("acme");
    std::fs::write(
        cat.join(format!("{name}.json")),
        json!({"_id": name, "grant_mode": "authorization_code",
               "auth_endpoint": "https://acme.example/auth", "token_endpoint": "https://acme.example/token",
               "token_mode": "sometimes",
               "template": {"category": "other", "source": {"docs": "https://acme.example/docs",
                   "checked": "2026-12-07", "checked_against": ["provider documentation"]}}})
        .to_string(),
    )
    .unwrap();
    let secret = secret_file(dir.path(), "s3cr3t-value");
    let out = broker(
        dir.path(),
        couch,
        &[
            "account-types",
            "put",
            &name,
            "--catalogue",
            cat.to_str().unwrap(),
            "--client-id",
            "cid",
            "--client-secret-file",
            &secret,
        ],
    );
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains(&format!("{name}.json")) && t.contains("field `token_mode`"),
        "{t}"
    );
    assert!(!broker(dir.path(), couch, &["account-types", "get", &name])
        .status
        .success());

    let id = format!("{}/zendesk", unique("ctx"));
    let out = broker(
        dir.path(),
        couch,
        &[
            "account-types",
            "put",
            "zendesk",
            "--id",
            &id,
            "--param",
            "subdomain=evil.example/x",
            "--client-id",
            "cid",
            "--client-secret-file",
            &secret,
        ],
    );
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("zendesk.json") && t.contains("--param subdomain"),
        "{t}"
    );
    assert!(!broker(dir.path(), couch, &["account-types", "get", &id])
        .status
        .success());
}

#[test]
fn bad_template_names_file_and_field_and_stores_nothing_on_the_embedded_store() {
    bad_template_stores_nothing(false)
}

#[test]
fn bad_template_names_file_and_field_and_stores_nothing_on_couchdb() {
    if common::needs::env("BROKER_TEST_COUCHDB_URL", "Apache CouchDB").is_none() {
        return;
    }
    bad_template_stores_nothing(true)
}

fn write_doc(dir: &Path, file: &str, doc: serde_json::Value) {
    std::fs::write(dir.join(file), serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

fn doc(id: &str, secret: &str) -> serde_json::Value {
    json!({"_id": id, "grant_mode": "authorization_code", "client_id": "cid",
           "client_secret": secret, "auth_endpoint": "https://p.example/auth",
           "token_endpoint": "https://p.example/token"})
}

fn import_a_folder(couch: bool) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("types");
    std::fs::create_dir(&src).unwrap();
    let ids: Vec<String> = (0..3).map(|i| unique(&format!("imp{i}-"))).collect();
    for (i, id) in ids.iter().enumerate() {
        write_doc(&src, &format!("{i}.json"), doc(id, "import-secret-value"));
    }
    let import = |d: &Path| {
        broker(
            dir.path(),
            couch,
            &["account-types", "import", d.to_str().unwrap()],
        )
    };

    let out = import(&src);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("3 created, 0 updated, 0 unchanged, 0 failed"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("import-secret-value"));

    let out = import(&src);
    assert!(
        text(&out).contains("0 created, 0 updated, 3 unchanged"),
        "{}",
        text(&out)
    );

    let mut changed = doc(&ids[1], "import-secret-value");
    changed["token_mode"] = json!("basic");
    write_doc(&src, "1.json", changed);
    let out = import(&src);
    assert!(
        text(&out).contains("0 created, 1 updated, 2 unchanged"),
        "{}",
        text(&out)
    );

    // One bad file: named with its field, and nothing at all is stored.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    let fresh = unique("fresh");
    write_doc(&bad, "a-good.json", doc(&fresh, "x"));
    let mut broken = doc(&unique("broken"), "x");
    broken["extras"] = json!({"display": 1});
    write_doc(&bad, "b-broken.json", broken);
    let out = import(&bad);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("b-broken.json") && t.contains("extras.display"),
        "{t}"
    );
    assert!(t.contains("nothing was imported"), "{t}");
    assert!(
        !broker(dir.path(), couch, &["account-types", "get", &fresh])
            .status
            .success()
    );
}

#[test]
fn import_creates_updates_and_skips_unchanged_on_the_embedded_store() {
    import_a_folder(false)
}

#[test]
fn import_creates_updates_and_skips_unchanged_on_couchdb() {
    if common::needs::env("BROKER_TEST_COUCHDB_URL", "Apache CouchDB").is_none() {
        return;
    }
    import_a_folder(true)
}

mod common;
use common::registering_provider;

/// `registered-clients register/get/update/reset-secret/list/unregister` on one store.
async fn registered_clients_round_trip(couch: bool) {
    let server = wiremock::MockServer::start().await;
    let provider = registering_provider::RegisteringProvider::mount(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let id = unique("reg");
    let file = dir.path().join("reg.json");
    std::fs::write(
        &file,
        json!({"_id": id, "grant_mode": "authorization_code",
               "auth_endpoint": format!("{}/auth/authorize", server.uri()),
               "token_endpoint": format!("{}/auth/access_token", server.uri()),
               "registration_endpoint": format!("{}/auth/register", server.uri()),
               "client_metadata": {"client_name": "CLI test", "software_id": "oauth-broker-tests"}})
        .to_string(),
    )
    .unwrap();
    // The played provider, like real ones, accepts only https redirect URIs.
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
            .args(args)
            .env("BROKER__DATA_DIR", dir.path())
            .env(
                "BROKER__COUCHDB__URL",
                if couch { couch_url() } else { String::new() },
            )
            .env("BROKER__PUBLIC_URL", "https://broker.example")
            .env("RUST_LOG", "warn")
            .output()
            .expect("binary runs")
    };
    assert!(run(&["account-types", "put", file.to_str().unwrap()])
        .status
        .success());

    let out = run(&["registered-clients", "register", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("as client client-1"), "{}", text(&out));
    assert_eq!(provider.with(|s| s.registrations), 1);

    let shown = text(&run(&["registered-clients", "get", &id]));
    assert!(
        shown.contains("\"client_id\": \"client-1\"") && shown.contains("[redacted]"),
        "{shown}"
    );
    assert!(
        !shown.contains("secret-1-a") && !shown.contains("rat-1"),
        "{shown}"
    );
    let remote = text(&run(&["registered-clients", "get", &id, "--remote"]));
    assert!(
        remote.contains("client-1") && !remote.contains("secret-1-a"),
        "{remote}"
    );

    assert!(run(&["registered-clients", "update", &id]).status.success());
    assert_eq!(provider.with(|s| s.updates), 1);
    let out = run(&["registered-clients", "reset-secret", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("rotated"),
        "the new secret is not printed"
    );
    assert_eq!(
        provider.with(|s| s.clients["client-1"].secret.clone()),
        "secret-1-a-rotated"
    );
    assert!(text(&run(&["registered-clients", "list"])).contains(&format!("{id}\tclient-1")));

    assert!(run(&["registered-clients", "unregister", &id])
        .status
        .success());
    assert_eq!(provider.with(|s| s.deletions), 1);
    let gone = run(&["registered-clients", "get", &id]);
    assert!(!gone.status.success());
    assert!(
        text(&gone).contains(&format!("no registered client `{id}`")),
        "{}",
        text(&gone)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn registered_clients_from_the_cli_on_the_embedded_store() {
    registered_clients_round_trip(false).await
}

#[tokio::test(flavor = "multi_thread")]
async fn registered_clients_from_the_cli_on_couchdb() {
    if common::needs::env("BROKER_TEST_COUCHDB_URL", "Apache CouchDB").is_none() {
        return;
    }
    registered_clients_round_trip(true).await
}

#[test]
fn import_with_the_store_down_says_so_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("types");
    std::fs::create_dir(&src).unwrap();
    write_doc(&src, "a.json", doc(&unique("down"), "down-secret-value"));
    let out = Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
        .args(["account-types", "import", src.to_str().unwrap()])
        // Nothing listens on the discard port.
        .env("BROKER__COUCHDB__URL", "http://127.0.0.1:9")
        .env("BROKER__COUCHDB__TIMEOUT_SECS", "2")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("store unavailable"), "{t}");
    assert!(!t.contains("down-secret-value"), "{t}");
}

#[test]
fn templates_into_a_closed_pipe_end_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
        .args(["account-types", "templates"])
        .env("BROKER__DATA_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A reader that is gone before the listing is written (`| head` that has had enough).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{err}");
}

#[test]
fn validate_says_a_missing_parameter_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = broker(dir.path(), false, &["account-types", "validate", "zendesk"]);
    assert!(!out.status.success());
    let t = text(&out);
    assert_eq!(t.matches("is required").count(), 1, "{t}");
    assert!(t.contains("--param subdomain"), "{t}");
}

#[test]
fn validate_names_a_placeholder_left_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("zendesk.json");
    std::fs::write(
        &file,
        json!({"_id": "zendesk", "grant_mode": "authorization_code", "client_id": "c",
        "auth_endpoint": "https://[subdomain].zendesk.com/oauth/authorizations/new",
        "token_endpoint": "https://[subdomain].zendesk.com/oauth/tokens"})
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
    assert!(t.contains("`[subdomain]`"), "{t}");
    assert!(!t.contains("IPv6"), "{t}");
}

#[test]
fn log_lines_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
        .env("BROKER__DATA_DIR", dir.path())
        .env("BROKER__LISTEN", "127.0.0.1:0")
        .env("BROKER__REFRESH__ENABLED", "false")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(logs.contains("listening"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "{logs:?}");
}

/// Runs the binary with the settings' store (embedded directory or CouchDB namespace).
fn broker_on(settings: &oauth_broker::config::Settings, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
        .args(args)
        .env("BROKER__DATA_DIR", &settings.data_dir)
        .env(
            "BROKER__COUCHDB__URL",
            settings.couchdb.url.clone().unwrap_or_default(),
        )
        .env("BROKER__COUCHDB__DB_PREFIX", &settings.couchdb.db_prefix)
        .env("RUST_LOG", "warn")
        .output()
        .expect("binary runs")
}

/// Accounts cozy-stack created on three instances it created: the backfill plans those
/// with a refresh token and a known type, resumes after an interruption, and a second
/// run plans nothing.
async fn backfill_plans_cozy_stack_accounts(couch: bool) {
    use oauth_broker::domain::{Domain, Instance};
    use oauth_broker::store::schedule::Schedule;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = oauth_broker::config::Settings::load(None).unwrap();
    settings.data_dir = dir.path().to_path_buf();
    settings.couchdb.url = couch.then(couch_url);
    settings.couchdb.db_prefix = format!("{}_", unique("backfill"));
    let svc = unique("svc");
    let domains: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|l| format!("{l}-{}.cozy.test", unique("x")))
        .collect();
    let instances: Vec<Instance> = domains
        .iter()
        .map(|d| Instance::new(Domain::parse(d).unwrap(), None))
        .collect();
    {
        let store = oauth_broker::app::open_store(&settings).await.unwrap();
        store
            .put(
                "secrets/io-cozy-account_types",
                &json!({"_id": svc, "grant_mode": "authorization_code", "client_id": "c",
                        "client_secret": "s", "auth_endpoint": "https://p.example/a",
                        "token_endpoint": "https://p.example/t"}),
            )
            .await
            .unwrap();
        for inst in &instances {
            // As cozy-stack writes them: ids of its own, the domain in a field.
            store
                .put(
                    "global/instances",
                    &json!({"_id": unique("i"), "domain": inst.domain.as_str(),
                            "prefix": inst.prefix, "session_secret": "AAEC"}),
                )
                .await
                .unwrap();
            store.ensure_db(&inst.accounts_db()).await.unwrap();
            for (id, doc) in [
                (
                    "with-rt-1",
                    json!({"account_type": svc, "oauth": {"access_token": "a", "refresh_token": "r", "expires_at": "2030-01-01T00:00:00Z"}}),
                ),
                (
                    "with-rt-2",
                    json!({"account_type": svc, "oauth": {"access_token": "a", "refresh_token": "r"}}),
                ),
                (
                    "no-rt",
                    json!({"account_type": svc, "oauth": {"access_token": "a"}}),
                ),
                (
                    "unknown-type",
                    json!({"account_type": "nobody-knows", "oauth": {"refresh_token": "r"}}),
                ),
            ] {
                let mut doc = doc;
                doc["_id"] = id.into();
                store.put(&inst.accounts_db(), &doc).await.unwrap();
            }
        }
        // One already planned by the broker; a run interrupted after the first instance.
        Schedule::new(store.clone())
            .set(
                &instances[1].domain,
                "with-rt-1",
                42,
                0,
                Some(&oauth_broker::domain::account_health::AccountHealth::new(
                    instances[1].domain.as_str(),
                    "with-rt-1",
                    &svc,
                )),
            )
            .await
            .unwrap();
        store
            .put(
                "broker/jobs",
                &json!({"_id": "refresh-plan-backfill",
                        "progress": {"last_domain": instances[0].domain.as_str()}}),
            )
            .await
            .unwrap();
    }
    let summary = |out: &Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", text(out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // Other tests' instances share CouchDB's global/instances under other prefixes only.
    let first = summary(&broker_on(
        &settings,
        &["refresh-plan", "backfill", "--json"],
    ));
    assert_eq!(first["resumed_past"], 1, "{first}");
    assert_eq!(first["instances"], 2);
    assert_eq!(first["with_refresh_token"], 6);
    assert_eq!(first["planned"], 3);
    assert_eq!(first["already_planned"], 1);
    assert_eq!(first["skipped"], 2);
    // The checkpoint is gone: the next run covers every instance, and plans the first.
    let second = summary(&broker_on(
        &settings,
        &["refresh-plan", "backfill", "--json"],
    ));
    assert_eq!(second["instances"], 3, "{second}");
    assert_eq!(second["planned"], 2);
    assert_eq!(second["already_planned"], 4);
    let third = summary(&broker_on(
        &settings,
        &["refresh-plan", "backfill", "--json"],
    ));
    assert_eq!(third["planned"], 0, "{third}");
    let store = oauth_broker::app::open_store(&settings).await.unwrap();
    let plans = Schedule::new(store);
    for inst in &instances {
        assert!(plans
            .due_at(&inst.domain, "with-rt-2")
            .await
            .unwrap()
            .is_some());
        assert!(plans.due_at(&inst.domain, "no-rt").await.unwrap().is_none());
        assert!(plans
            .due_at(&inst.domain, "unknown-type")
            .await
            .unwrap()
            .is_none());
    }
    // The plan the broker had is kept, not overwritten.
    assert_eq!(
        plans
            .due_at(&instances[1].domain, "with-rt-1")
            .await
            .unwrap(),
        Some((42, 0))
    );
    // The human summary says what happened.
    let human = broker_on(&settings, &["refresh-plan", "backfill"]);
    assert!(text(&human).contains("0 planned"), "{}", text(&human));
}

#[tokio::test]
async fn backfill_plans_cozy_stack_accounts_on_the_embedded_store() {
    backfill_plans_cozy_stack_accounts(false).await
}

#[tokio::test]
async fn backfill_plans_cozy_stack_accounts_on_couchdb() {
    if common::needs::env("BROKER_TEST_COUCHDB_URL", "Apache CouchDB").is_none() {
        return;
    }
    backfill_plans_cozy_stack_accounts(true).await
}

/// Operators read health and the audit trail from the command line: `accounts list`
/// filters and pages, `providers health` draws a plain table into a pipe (and JSON with
/// `--json`), and `audit` lists what earlier commands changed, by whom.
async fn operators_read_health_and_the_audit_trail(couch: bool) {
    use oauth_broker::domain::account_health::Outcome;
    use oauth_broker::store::health_records::{HealthRecords, Record};
    let dir = tempfile::tempdir().unwrap();
    let mut settings = oauth_broker::config::Settings::load(None).unwrap();
    settings.data_dir = dir.path().to_path_buf();
    settings.couchdb.url = couch.then(couch_url);
    settings.couchdb.db_prefix = format!("{}_", unique("ops"));
    let domain = format!("{}.cozy.test", unique("h"));
    let added = broker_on(&settings, &["instances", "add", &domain]);
    assert!(added.status.success(), "{}", text(&added));
    {
        let store = oauth_broker::app::open_store(&settings).await.unwrap();
        let records = HealthRecords::new(store);
        let record = |id: &str, t: &str, outcome: Outcome| Record {
            instance: domain.clone(),
            account_id: id.into(),
            account_type: t.into(),
            outcome,
            scope_missing: None,
        };
        let fail = |reconnect: bool| Outcome::Failure {
            cause: if reconnect {
                "invalid_grant"
            } else {
                "upstream_timeout"
            }
            .into(),
            token_ms: Some(900),
            reconnect,
        };
        records
            .record_many(
                &[
                    record("a1", "google", Outcome::Success { token_ms: Some(80) }),
                    record("a2", "google", fail(false)),
                    record("a3", "google", fail(true)),
                    record("b1", "dropbox", Outcome::Success { token_ms: Some(40) }),
                ],
                1_795_000_000,
            )
            .await
            .unwrap();
    }

    let listed = broker_on(
        &settings,
        &["accounts", "list", "--instance", &domain, "--limit", "2"],
    );
    assert!(listed.status.success(), "{}", text(&listed));
    let out = String::from_utf8_lossy(&listed.stdout).to_string();
    assert_eq!(out.lines().count(), 3, "a header and a page of two: {out}");
    let more = String::from_utf8_lossy(&listed.stderr).to_string();
    let cursor = more
        .split("--after '")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap_or_else(|| panic!("no cursor: {more}"))
        .to_owned();
    let next = broker_on(
        &settings,
        &[
            "accounts",
            "list",
            "--instance",
            &domain,
            "--limit",
            "2",
            "--after",
            &cursor,
        ],
    );
    assert_eq!(String::from_utf8_lossy(&next.stdout).lines().count(), 3);
    for (flag, id) in [("--failing", "a2"), ("--reconnect-needed", "a3")] {
        let only = broker_on(
            &settings,
            &["accounts", "list", "--instance", &domain, flag, "--json"],
        );
        let page: serde_json::Value = serde_json::from_slice(&only.stdout).unwrap();
        let ids: Vec<&str> = page["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["account_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [id], "{flag}");
    }

    let table = broker_on(&settings, &["providers", "health"]);
    assert!(table.status.success(), "{}", text(&table));
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(
        !table.contains('\u{1b}'),
        "no colour into a pipe: {table:?}"
    );
    let google = table
        .lines()
        .find(|l| l.starts_with("google"))
        .unwrap_or_else(|| panic!("{table}"));
    let cells: Vec<&str> = google.split_whitespace().collect();
    assert_eq!(&cells[1..5], ["3", "1", "1", "1"], "{google}");
    assert!(google.contains("invalid_grant") || google.contains("upstream_timeout"));
    let json = broker_on(&settings, &["providers", "health", "--json"]);
    let health: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(health["providers"][0]["account_type"], "dropbox");

    let rotated = broker_on(&settings, &["keys", "rotate"]);
    assert!(rotated.status.success(), "{}", text(&rotated));
    let trail = broker_on(&settings, &["audit", "--since", "1h", "--json"]);
    assert!(trail.status.success(), "{}", text(&trail));
    let entries: serde_json::Value = serde_json::from_slice(&trail.stdout).unwrap();
    let added: Vec<&serde_json::Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "instance.add" && e["target"] == domain.as_str())
        .collect();
    assert_eq!(added.len(), 1, "{entries}");
    assert!(added[0]["actor"].as_str().unwrap().starts_with("cli:"));
    let rotations = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "keys.rotate")
        .count();
    assert_eq!(rotations, 1, "{entries}");
    let bad = broker_on(&settings, &["audit", "--since", "yesterday"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("--since"), "{}", text(&bad));
}

#[tokio::test]
async fn operators_read_health_and_the_audit_trail_on_the_embedded_store() {
    operators_read_health_and_the_audit_trail(false).await;
}

#[tokio::test]
async fn operators_read_health_and_the_audit_trail_on_couchdb() {
    if common::needs::env("BROKER_TEST_COUCHDB_URL", "Apache CouchDB").is_none() {
        return;
    }
    operators_read_health_and_the_audit_trail(true).await;
}
