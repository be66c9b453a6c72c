//! `oauth-broker doctor` and the checks `serve` makes at start-up, run as processes
//! against the embedded store, Apache CouchDB and Redis, each fault caused for real (a
//! closed port, a wrong password, a database the user may not read, a key that is gone).

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

#[path = "common/needs.rs"]
mod needs;

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

fn couch_url() -> String {
    std::env::var("BROKER_TEST_COUCHDB_URL").expect("run the tests with scripts/test.sh")
}

fn unique(p: &str) -> String {
    format!("{p}{}", oauth_broker::domain::secret::random_hex(6))
}

/// The binary with `args`, its data in `dir`, the embedded store unless `env` names a
/// CouchDB.
fn broker(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oauth-broker"));
    cmd.args(args)
        .env("BROKER__DATA_DIR", dir)
        .env("BROKER__COUCHDB__URL", "")
        .env("BROKER__COUCHDB__TIMEOUT_SECS", "3")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The table's error lines.
fn error_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with("error"))
        .map(str::to_owned)
        .collect()
}

fn key(id: &str) -> String {
    let out = broker(Path::new("/nonexistent"), &[], &["keys", "generate", id]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Writes an account type document and stores it with `account-types put`.
fn put_type(dir: &Path, env: &[(&str, &str)], doc: Value) {
    let file = dir.join(format!("{}.json", unique("type")));
    std::fs::write(&file, doc.to_string()).unwrap();
    let put = broker(dir, env, &["account-types", "put", file.to_str().unwrap()]);
    assert!(put.status.success(), "{}", text(&put));
}

#[test]
fn doctor_on_a_healthy_embedded_store_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("k1");
    let env = [("BROKER__ENCRYPTION_KEYS", k.as_str())];
    put_type(
        dir.path(),
        &env,
        json!({"_id": unique("svc"), "grant_mode": "authorization_code", "client_id": "cid",
            "client_secret": "healthy-secret-value",
            "auth_endpoint": "https://93.184.215.14/authorize",
            "token_endpoint": "https://93.184.215.14/token"}),
    );
    let out = broker(dir.path(), &env, &["doctor"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("stored secrets: 1 sealed, all open"), "{t}");
    assert!(t.contains("no error"), "{t}");
    assert!(!t.contains("healthy-secret-value"), "{t}");
}

#[test]
fn doctor_on_a_healthy_couchdb_holding_account_types_exits_zero() {
    if needs::env("BROKER_TEST_COUCHDB_URL", "Apache CouchDB").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let k = key("k1");
    let prefix = format!("{}_", unique("healthy"));
    let couch = couch_url();
    let env = [
        ("BROKER__ENCRYPTION_KEYS", k.as_str()),
        ("BROKER__COUCHDB__URL", couch.as_str()),
        ("BROKER__COUCHDB__DB_PREFIX", prefix.as_str()),
    ];
    for _ in 0..3 {
        put_type(
            dir.path(),
            &env,
            json!({"_id": unique("svc"), "grant_mode": "authorization_code", "client_id": "cid",
                "client_secret": "healthy-secret-value",
                "auth_endpoint": "https://93.184.215.14/authorize",
                "token_endpoint": "https://93.184.215.14/token"}),
        );
    }
    let out = broker(dir.path(), &env, &["doctor"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("stored secrets: 3 sealed, all open"), "{t}");
    assert!(!t.contains("healthy-secret-value"), "{t}");
}

#[test]
fn doctor_as_json_says_each_finding_with_its_severity() {
    let dir = tempfile::tempdir().unwrap();
    let out = broker(
        dir.path(),
        &[("BROKER__COUCHDB__URL", "http://127.0.0.1:9")],
        &["doctor", "--json"],
    );
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let couch = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "couchdb")
        .unwrap();
    assert_eq!(couch["severity"], "error");
    assert_eq!(couch["setting"], "couchdb.url");
}

#[test]
fn doctor_with_couchdb_unreachable_says_it_once_naming_couchdb_url() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on the discard port.
    let out = broker(
        dir.path(),
        &[("BROKER__COUCHDB__URL", "http://127.0.0.1:9")],
        &["doctor"],
    );
    assert!(!out.status.success());
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{}", text(&out));
    assert!(
        errors[0].contains("setting couchdb.url") && errors[0].contains("nothing answers"),
        "{errors:?}"
    );
}

#[test]
fn doctor_with_a_wrong_couchdb_password_names_couchdb_url_and_hides_the_password() {
    if needs::env("BROKER_TEST_COUCHDB_URL", "Apache CouchDB").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut url = url::Url::parse(&couch_url()).unwrap();
    url.set_password(Some("not-the-password-42")).unwrap();
    let out = broker(
        dir.path(),
        &[("BROKER__COUCHDB__URL", url.as_str())],
        &["doctor"],
    );
    assert!(!out.status.success());
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{}", text(&out));
    assert!(
        errors[0].contains("setting couchdb.url") && errors[0].contains("401"),
        "{errors:?}"
    );
    assert!(
        !text(&out).contains("not-the-password-42"),
        "{}",
        text(&out)
    );
}

/// A CouchDB user, and a database of the broker's (under `prefix`) whose `_security`
/// leaves that user out.
async fn user_left_out_of(prefix: &str) -> String {
    let admin = couch_url();
    let http = reqwest::Client::new();
    let user = unique("doctor");
    let created = http
        .put(format!("{admin}/_users/org.couchdb.user:{user}"))
        .json(&json!({"name": user, "password": "pw-of-the-user", "roles": [], "type": "user"}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    let db = format!("{prefix}secrets%2Fio-cozy-account_types");
    assert!(http
        .put(format!("{admin}/{db}"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let secured = http
        .put(format!("{admin}/{db}/_security"))
        .json(&json!({"admins": {"names": [], "roles": []}, "members": {"names": ["someone-else"], "roles": []}}))
        .send()
        .await
        .unwrap();
    assert!(secured.status().is_success());
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_username(&user).unwrap();
    url.set_password(Some("pw-of-the-user")).unwrap();
    url.to_string()
}

#[tokio::test]
async fn doctor_names_a_database_the_couchdb_user_may_not_read() {
    if needs::env("BROKER_TEST_COUCHDB_URL", "Apache CouchDB").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("{}_", unique("doctor"));
    let url = user_left_out_of(&prefix).await;
    let out = broker(
        dir.path(),
        &[
            ("BROKER__COUCHDB__URL", url.as_str()),
            ("BROKER__COUCHDB__DB_PREFIX", prefix.as_str()),
        ],
        &["doctor"],
    );
    assert!(!out.status.success());
    let errors = error_lines(&out);
    assert!(
        errors.iter().any(|l| l
            .contains(&format!("database {prefix}secrets/io-cozy-account_types"))
            && l.contains("setting couchdb.url")
            && l.contains("_security")),
        "{}",
        text(&out)
    );
}

#[test]
fn doctor_with_redis_refusing_names_cozy_redis_url() {
    let dir = tempfile::tempdir().unwrap();
    let out = broker(
        dir.path(),
        &[("BROKER__COZY__REDIS_URL", "redis://127.0.0.1:9/3")],
        &["doctor"],
    );
    assert!(!out.status.success());
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{}", text(&out));
    assert!(errors[0].contains("setting cozy.redis_url"), "{errors:?}");
}

#[test]
fn doctor_with_redis_answering_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = needs::env("BROKER_TEST_REDIS_URL", "Redis") else {
        return;
    };
    let out = broker(
        dir.path(),
        &[("BROKER__COZY__REDIS_URL", redis.as_str())],
        &["doctor"],
    );
    assert!(text(&out).contains("ok       redis:"), "{}", text(&out));
}

#[tokio::test]
async fn doctor_changes_nothing() {
    if needs::env("BROKER_TEST_COUCHDB_URL", "Apache CouchDB").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("{}_", unique("untouched"));
    let out = broker(
        dir.path(),
        &[
            ("BROKER__COUCHDB__URL", couch_url().as_str()),
            ("BROKER__COUCHDB__DB_PREFIX", prefix.as_str()),
        ],
        &["doctor"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not created yet"), "{}", text(&out));
    let dbs: Vec<String> = reqwest::get(format!("{}/_all_dbs", couch_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !dbs.iter().any(|d| d.starts_with(&prefix)),
        "doctor created {dbs:?}"
    );
    // On the embedded store, no file either.
    let embedded = broker(dir.path(), &[], &["doctor"]);
    assert!(embedded.status.success(), "{}", text(&embedded));
    assert!(!dir.path().join("broker.sqlite3").exists());
}

#[test]
fn doctor_finds_a_secret_sealed_with_a_key_no_longer_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (key("old"), key("new"));
    let id = unique("sealed");
    put_type(
        dir.path(),
        &[("BROKER__ENCRYPTION_KEYS", old.as_str())],
        json!({"_id": id, "grant_mode": "authorization_code", "client_id": "cid",
            "client_secret": "the-sealed-secret-value",
            "auth_endpoint": "https://93.184.215.14/authorize",
            "token_endpoint": "https://93.184.215.14/token"}),
    );
    let out = broker(
        dir.path(),
        &[("BROKER__ENCRYPTION_KEYS", new.as_str())],
        &["doctor"],
    );
    assert!(!out.status.success());
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{}", text(&out));
    assert!(
        errors[0].contains("setting encryption_keys") && errors[0].contains(&id),
        "{errors:?}"
    );
    assert!(!text(&out).contains("the-sealed-secret-value"));
}

#[test]
fn doctor_names_an_account_type_whose_token_endpoint_the_ssrf_rules_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let id = unique("internal");
    // Stored by an operator who allowed loopback once; the broker runs without it.
    put_type(
        dir.path(),
        &[("BROKER__ALLOW_INSECURE_PROVIDER_URLS", "true")],
        json!({"_id": id, "grant_mode": "authorization_code", "client_id": "cid",
            "client_secret": "s", "auth_endpoint": "https://93.184.215.14/authorize",
            "token_endpoint": "http://127.0.0.1:1/token"}),
    );
    let out = broker(dir.path(), &[], &["doctor"]);
    assert!(!out.status.success());
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{}", text(&out));
    assert!(
        errors[0].contains(&format!("account type {id}"))
            && errors[0].contains("token_endpoint")
            && errors[0].contains("SSRF")
            && errors[0].contains("setting provider_private_hosts"),
        "{errors:?}"
    );
    // Allowed, it passes.
    let allowed = broker(
        dir.path(),
        &[("BROKER__PROVIDER_PRIVATE_HOSTS", "127.0.0.1")],
        &["doctor"],
    );
    assert!(allowed.status.success(), "{}", text(&allowed));
}

#[test]
fn serve_refuses_to_start_on_an_unreachable_couchdb_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = broker(
        dir.path(),
        &[
            ("BROKER__COUCHDB__URL", "http://127.0.0.1:9"),
            ("BROKER__ENCRYPTION_KEYS", "not-a-key"),
            ("BROKER__LISTEN", "127.0.0.1:0"),
        ],
        &["serve"],
    );
    assert!(!out.status.success());
    let t = text(&out);
    // Every problem at once, each by its setting.
    assert!(t.contains("setting couchdb.url"), "{t}");
    assert!(t.contains("setting encryption_keys"), "{t}");
}

/// `serve` on `env`, given a few seconds to refuse; a serve that starts is killed and
/// counts as not refusing.
fn serve_refuses(dir: &Path, env: &[(&str, &str)]) -> Option<String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oauth-broker"));
    cmd.arg("serve")
        .env("BROKER__DATA_DIR", dir)
        .env("BROKER__COUCHDB__URL", "")
        .env("BROKER__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return (!out.status.success()).then(|| text(&out));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn doctor_and_serve_agree_on_every_bad_setting() {
    // Each refused by serve and an error for doctor, by its setting (doctor once called a
    // short admin token a warning, and never looked at the webhook secret or the proxies).
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "admin_token",
            &[("BROKER__ADMIN_TOKEN", "twenty-characters-ok")],
        ),
        (
            "webhooks.secret",
            &[
                ("BROKER__WEBHOOKS__URL", "https://hooks.example/in"),
                ("BROKER__WEBHOOKS__SECRET", "short"),
            ],
        ),
        (
            "rate_limit.trusted_proxies",
            &[("BROKER__RATE_LIMIT__TRUSTED_PROXIES", "10.0.0.0/99")],
        ),
        (
            "rate_limit.trust_forwarded_for",
            &[("BROKER__RATE_LIMIT__TRUST_FORWARDED_FOR", "true")],
        ),
        (
            "flow_binding_cookie_domain",
            &[("BROKER__FLOW_BINDING_COOKIE_DOMAIN", "elsewhere.example")],
        ),
        (
            "encryption_keys",
            &[("BROKER__ENCRYPTION_KEYS", "not-a-key")],
        ),
    ];
    for (setting, env) in cases {
        let dir = tempfile::tempdir().unwrap();
        let doctor = broker(dir.path(), env, &["doctor"]);
        assert!(
            !doctor.status.success(),
            "doctor passed {setting}: {}",
            text(&doctor)
        );
        let named = format!("setting {setting}");
        assert!(
            error_lines(&doctor).iter().any(|l| l.contains(&named)),
            "{setting}: {}",
            text(&doctor)
        );
        let serve = serve_refuses(dir.path(), env)
            .unwrap_or_else(|| panic!("serve started with a bad {setting}"));
        assert!(serve.contains(&named), "{setting}: {serve}");
        assert!(!serve.contains("twenty-characters-ok"), "{serve}");
        assert!(!text(&doctor).contains("twenty-characters-ok"));
    }
}

#[test]
fn serve_starts_with_redis_down_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
        .env("BROKER__DATA_DIR", dir.path())
        .env("BROKER__COUCHDB__URL", "")
        .env("BROKER__COZY__REDIS_URL", "redis://127.0.0.1:9/3")
        .env("BROKER__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(up, "serve listens: {}", text(&out));
    assert!(text(&out).contains("cozy.redis_url"), "{}", text(&out));
}
