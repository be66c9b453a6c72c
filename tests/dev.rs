//! `oauth-broker dev login/refresh/token` against a provider played locally, and a real
//! cozy-konnector-libs konnector in standalone mode reading what `dev login` wrote.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

#[path = "common/needs.rs"]
mod needs;

use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const CLIENT_SECRET: &str = "dev-client-secret-value";

/// What the played provider remembers between the authorization and the token request.
#[derive(Default)]
struct Grants {
    challenge: Option<String>,
    issued: u32,
}

/// A provider with PKCE, HTTP Basic client authentication and refresh tokens.
struct Provider {
    server: MockServer,
    grants: Arc<Mutex<Grants>>,
}

fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

impl Provider {
    async fn start() -> Provider {
        let server = MockServer::start().await;
        let grants = Arc::new(Mutex::new(Grants::default()));
        let g = grants.clone();
        Mock::given(method("GET"))
            .and(path("/authorize"))
            .respond_with(move |req: &Request| {
                let q: std::collections::HashMap<String, String> =
                    req.url.query_pairs().into_owned().collect();
                let ok = q.get("client_id").map(String::as_str) == Some("dev-client")
                    && q.get("response_type").map(String::as_str) == Some("code")
                    && q.get("code_challenge_method").map(String::as_str) == Some("S256")
                    && q.get("scope").map(String::as_str) == Some("read,write");
                if !ok {
                    return ResponseTemplate::new(400)
                        .set_body_string(format!("bad authorize {q:?}"));
                }
                g.lock().unwrap().challenge = q.get("code_challenge").cloned();
                let back = format!("{}?code=the-code&state={}", q["redirect_uri"], q["state"]);
                ResponseTemplate::new(302).insert_header("Location", back.as_str())
            })
            .mount(&server)
            .await;
        let g = grants.clone();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("dev-client:{CLIENT_SECRET}"))
        );
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(header("authorization", basic.as_str()))
            .respond_with(move |req: &Request| {
                let f = form(&req.body);
                let mut g = g.lock().unwrap();
                let valid = match f.get("grant_type").map(String::as_str) {
                    Some("authorization_code") => {
                        let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .encode(sha2::Sha256::digest(verifier.as_bytes()));
                        f.get("code").map(String::as_str) == Some("the-code")
                            && g.challenge.as_deref() == Some(challenge.as_str())
                    }
                    Some("refresh_token") => {
                        f.get("refresh_token").map(String::as_str) == Some("refresh-1")
                    }
                    _ => false,
                };
                if !valid {
                    return ResponseTemplate::new(400)
                        .set_body_json(json!({"error": "invalid_grant"}));
                }
                g.issued += 1;
                ResponseTemplate::new(200).set_body_json(json!({
                    "access_token": format!("access-{}", g.issued),
                    "refresh_token": "refresh-1",
                    "token_type": "bearer",
                    "expires_in": 3600,
                }))
            })
            .mount(&server)
            .await;
        Provider { server, grants }
    }

    fn issued(&self) -> u32 {
        self.grants.lock().unwrap().issued
    }

    /// The account-type file a konnector developer points `dev login` at.
    fn account_type(&self, dir: &Path) -> PathBuf {
        let f = dir.join("played.json");
        std::fs::write(
            &f,
            json!({"_id": "played", "grant_mode": "authorization_code",
                   "auth_endpoint": format!("{}/authorize", self.server.uri()),
                   "token_endpoint": format!("{}/token", self.server.uri()),
                   "token_mode": "basic", "pkce": true, "scope_delimiter": ",",
                   "scope": "read write"})
            .to_string(),
        )
        .unwrap();
        f
    }
}

/// A konnector folder (a git repository) and a secrets folder outside it.
struct Workspace {
    _root: tempfile::TempDir,
    konnector: PathBuf,
    secret: PathBuf,
}

impl Workspace {
    fn new() -> Workspace {
        let root = tempfile::tempdir().unwrap();
        let konnector = root.path().join("my-konnector");
        std::fs::create_dir_all(konnector.join(".git")).unwrap();
        let secrets = root.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        let secret = secrets.join("played");
        std::fs::write(&secret, CLIENT_SECRET).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(
            konnector.join("konnector-dev-config.json"),
            r#"{"COZY_URL": "http://cozy.localhost:8080", "fields": {"login": "alice"}}"#,
        )
        .unwrap();
        Workspace {
            _root: root,
            konnector,
            secret,
        }
    }

    fn config(&self) -> Value {
        let text =
            std::fs::read_to_string(self.konnector.join("konnector-dev-config.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_oauth-broker"));
        c.args(args)
            .current_dir(&self.konnector)
            .env("OAUTH_CLIENT_ID", "dev-client")
            .env("OAUTH_CLIENT_SECRET_FILE", &self.secret)
            .env_remove("OAUTH_CLIENT_SECRET")
            // Dev mode needs no store: point CouchDB nowhere to prove it.
            .env("BROKER__COUCHDB__URL", "http://127.0.0.1:9")
            .env("RUST_LOG", "warn");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Starts `dev login` and returns it with the authorization URL it printed.
    fn start_login(&self, account_type: &Path, extra: &[&str]) -> (Child, String) {
        let mut args = vec![
            "dev",
            "login",
            account_type.to_str().unwrap(),
            "--no-browser",
            "--redirect-uri",
            "http://127.0.0.1:0/callback",
        ];
        args.extend_from_slice(extra);
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("dev login printed a URL").unwrap();
            if line.starts_with("http") {
                break line;
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        (child, url)
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn finish(child: Child) -> (bool, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Plays the browser: follows the provider's redirect to the loopback callback.
async fn browse(url: &str) -> (u16, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let at_provider = http.get(url).send().await.unwrap();
    assert_eq!(
        at_provider.status(),
        302,
        "{}",
        at_provider.text().await.unwrap()
    );
    let back = at_provider.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let r = http.get(&back).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_login_writes_the_tokens_and_keeps_every_other_field() {
    let provider = Provider::start().await;
    let ws = Workspace::new();
    let (child, url) = ws.start_login(&provider.account_type(ws.konnector.parent().unwrap()), &[]);
    let (status, page) = browse(&url).await;
    assert_eq!(status, 200, "{page}");
    let (ok, err) = finish(child);
    assert!(ok, "{err}");
    let c = ws.config();
    assert_eq!(c["COZY_URL"], "http://cozy.localhost:8080");
    assert_eq!(c["fields"]["login"], "alice");
    assert_eq!(c["fields"]["access_token"], "access-1");
    assert_eq!(c["fields"]["refresh_token"], "refresh-1");
    assert!(c["fields"]["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(c["oauth_broker"]["account_type"]
        .as_str()
        .unwrap()
        .ends_with("played.json"));
    assert!(
        !c.to_string().contains(CLIENT_SECRET),
        "no client secret in the dev config"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_login_with_a_forged_state_is_refused_and_the_real_redirect_still_wins() {
    let provider = Provider::start().await;
    let ws = Workspace::new();
    let (child, url) = ws.start_login(&provider.account_type(ws.konnector.parent().unwrap()), &[]);
    let redirect: url::Url = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    let forged = reqwest::get(format!("{redirect}?code=stolen&state=forged"))
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let (status, _) = browse(&url).await;
    assert_eq!(status, 200);
    let (ok, err) = finish(child);
    assert!(ok, "{err}");
    assert_eq!(ws.config()["fields"]["access_token"], "access-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_login_refused_by_the_person_changes_nothing() {
    let provider = Provider::start().await;
    let ws = Workspace::new();
    let before = ws.config();
    let (child, url) = ws.start_login(&provider.account_type(ws.konnector.parent().unwrap()), &[]);
    let q: std::collections::HashMap<String, String> = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let r = reqwest::get(format!(
        "{}?error=access_denied&state={}",
        q["redirect_uri"], q["state"]
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let (ok, err) = finish(child);
    assert!(!ok);
    assert!(
        err.contains("refused the authorization: access_denied"),
        "{err}"
    );
    assert_eq!(ws.config(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_login_without_a_redirect_gives_up_and_changes_nothing() {
    let provider = Provider::start().await;
    let ws = Workspace::new();
    let before = ws.config();
    let (child, _) = ws.start_login(
        &provider.account_type(ws.konnector.parent().unwrap()),
        &["--wait-secs", "1"],
    );
    let (ok, err) = finish(child);
    assert!(!ok);
    assert!(err.contains("no redirect came back within 1 s"), "{err}");
    assert_eq!(ws.config(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_login_with_a_provider_answering_garbage_changes_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/authorize"))
        .respond_with(|req: &Request| {
            let q: std::collections::HashMap<String, String> =
                req.url.query_pairs().into_owned().collect();
            ResponseTemplate::new(302).insert_header(
                "Location",
                format!("{}?code=c&state={}", q["redirect_uri"], q["state"]).as_str(),
            )
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
        .mount(&server)
        .await;
    let ws = Workspace::new();
    let before = ws.config();
    let at = ws.konnector.parent().unwrap().join("garbage.json");
    std::fs::write(
        &at,
        json!({"_id": "garbage", "grant_mode": "authorization_code", "client_id": "x",
               "auth_endpoint": format!("{}/authorize", server.uri()),
               "token_endpoint": format!("{}/token", server.uri())})
        .to_string(),
    )
    .unwrap();
    let (child, url) = ws.start_login(&at, &[]);
    browse(&url).await;
    let (ok, err) = finish(child);
    assert!(!ok);
    assert!(
        err.contains("token request to") && err.contains("/token"),
        "{err}"
    );
    assert_eq!(ws.config(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_refresh_and_token_keep_the_token_fresh() {
    let provider = Provider::start().await;
    let ws = Workspace::new();
    let (child, url) = ws.start_login(&provider.account_type(ws.konnector.parent().unwrap()), &[]);
    browse(&url).await;
    assert!(finish(child).0);

    // Valid for an hour: `token` prints it without asking the provider.
    let out = ws.run(&["dev", "token"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "access-1");
    assert_eq!(provider.issued(), 1);

    let out = ws.run(&["dev", "refresh"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("access-2") && !text(&out).contains("refresh-1"));
    assert_eq!(ws.config()["fields"]["access_token"], "access-2");

    // Asking for more validity than is left forces a refresh first.
    let out = ws.run(&["dev", "token", "--min-validity-secs", "7200"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "access-3");
    assert_eq!(ws.config()["fields"]["login"], "alice");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_refresh_with_a_revoked_refresh_token_says_to_log_in_again() {
    let provider = Provider::start().await;
    let ws = Workspace::new();
    let (child, url) = ws.start_login(&provider.account_type(ws.konnector.parent().unwrap()), &[]);
    browse(&url).await;
    assert!(finish(child).0);
    let mut c = ws.config();
    c["fields"]["refresh_token"] = json!("revoked");
    std::fs::write(
        ws.konnector.join("konnector-dev-config.json"),
        c.to_string(),
    )
    .unwrap();
    let out = ws.run(&["dev", "refresh"]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("invalid_grant") && t.contains("dev login"),
        "{t}"
    );
    assert_eq!(ws.config(), c, "nothing changed");
}

#[test]
fn dev_refresh_before_any_login_says_what_to_do() {
    let ws = Workspace::new();
    let out = ws.run(&["dev", "refresh"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("run `oauth-broker dev login TYPE` first"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_client_secret_inside_the_konnector_repository_is_refused() {
    let ws = Workspace::new();
    let inside = ws.konnector.join("secret.txt");
    std::fs::write(&inside, CLIENT_SECRET).unwrap();
    let out = ws.run(&[
        "dev",
        "login",
        "google",
        "--no-browser",
        "--client-secret-file",
        inside.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("inside the konnector's repository"), "{t}");
    assert!(!t.contains(CLIENT_SECRET));
}

#[test]
fn dev_login_refuses_a_redirect_uri_that_is_not_loopback() {
    let ws = Workspace::new();
    let out = ws.run(&[
        "dev",
        "login",
        "google",
        "--no-browser",
        "--redirect-uri",
        "http://evil.example:80/cb",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--redirect-uri"), "{}", text(&out));
}

/// The real cozy-konnector-libs (npm), in standalone mode: `start(fields)` gets the token
/// `dev login` wrote and calls the provider's API with it.
#[tokio::test(flavor = "multi_thread")]
async fn a_cozy_konnector_libs_konnector_receives_the_token_dev_login_wrote() {
    let Some(libs) = needs::env("BROKER_TEST_KONNECTOR_LIBS", "cozy-konnector-libs (npm)") else {
        return;
    };
    let provider = Provider::start().await;
    Mock::given(method("GET"))
        .and(path("/api/me"))
        .and(header("authorization", "Bearer access-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "Alice"})))
        .expect(1)
        .mount(&provider.server)
        .await;
    let ws = Workspace::new();
    let mut c = ws.config();
    c["fields"]["api_url"] = json!(format!("{}/api/me", provider.server.uri()));
    std::fs::write(
        ws.konnector.join("konnector-dev-config.json"),
        c.to_string(),
    )
    .unwrap();

    let (child, url) = ws.start_login(&provider.account_type(ws.konnector.parent().unwrap()), &[]);
    browse(&url).await;
    assert!(finish(child).0);

    std::fs::write(
        ws.konnector.join("index.js"),
        r#"
const { BaseKonnector, log } = require('cozy-konnector-libs')
module.exports = new BaseKonnector(async function start(fields) {
  const res = await fetch(fields.api_url, { headers: { Authorization: `Bearer ${fields.access_token}` } })
  if (!res.ok) throw new Error(`api answered ${res.status}`)
  const me = await res.json()
  log('info', `connected as ${me.name}`)
  console.log(`KONNECTOR-SAW ${fields.login} ${me.name}`)
})
"#,
    )
    .unwrap();
    // What cozy-jobs-cli's `cozy-konnector-standalone` sets up.
    let out = Command::new("node")
        .arg("index.js")
        .current_dir(&ws.konnector)
        .env("NODE_PATH", &libs)
        .env("NODE_ENV", "standalone")
        .env(
            "COZY_FIELDS",
            r#"{"account": "standalone-account", "folder_to_save": "."}"#,
        )
        .env("COZY_URL", "http://cozy.localhost:8080")
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("KONNECTOR-SAW alice Alice"), "{shown}");
    provider.server.verify().await;
}

#[test]
fn dev_login_with_a_catalogue_template_sends_its_extras_scope_and_pkce() {
    let ws = Workspace::new();
    let mut child = ws
        .command(&[
            "dev",
            "login",
            "google",
            "--no-browser",
            "--redirect-uri",
            "http://127.0.0.1:0/callback",
            "--login-hint",
            "alice@example.org",
            "--wait-secs",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("a URL").unwrap();
        if line.starts_with("http") {
            break line;
        }
    };
    child.kill().unwrap();
    let _ = child.wait();
    let parsed = url::Url::parse(&url).unwrap();
    let q: std::collections::HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    assert_eq!(parsed.host_str(), Some("accounts.google.com"));
    assert_eq!(q["client_id"], "dev-client");
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(q["scope"], "openid email");
    assert_eq!(q["login_hint"], "alice@example.org");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["redirect_uri"].starts_with("http://127.0.0.1:"));
}
