//! `spawn_app()` and friends: a real broker on 127.0.0.1:0, providers played by
//! wiremock, the store played by pouchdb-server (CouchDB) or the embedded store.

use oauth_broker::app::Services;
use oauth_broker::config::Settings;
use oauth_broker::domain::secret::random_hex;
use oauth_broker::domain::{Clock, Domain, Instance};
use oauth_broker::startup::Application;
use oauth_broker::store::schedule::Schedule;
use oauth_broker::store::SharedStore;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wiremock::MockServer;

/// Refresh plans on the margin alone (no share of the token's lifetime, no floor), for
/// tests that need a short-lived token due at once rather than after most of its life.
pub fn on_the_margin_alone(s: &mut Settings) {
    s.refresh.lifetime_share_percent = 0;
    s.refresh.floor_secs = 0;
}

/// Which store the broker runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Apache CouchDB 3.5 (a single node), started by `scripts/test.sh`.
    Couch,
    /// pouchdb-server, started by `scripts/test.sh` for the Store contract only: more
    /// lenient than CouchDB in ways the broker must not rely on.
    Pouch,
    /// The embedded SQLite store in a temporary directory.
    Embedded,
}

impl Backend {
    /// Whether this store runs here; a bare `cargo test` has only the embedded one.
    pub fn available(self) -> bool {
        match self {
            Backend::Couch => {
                super::needs::env("BROKER_TEST_COUCHDB_URL", "Apache CouchDB").is_some()
            }
            Backend::Pouch => {
                super::needs::env("BROKER_TEST_POUCHDB_URL", "pouchdb-server").is_some()
            }
            Backend::Embedded => true,
        }
    }
}

/// Runs each named `async fn(Backend)` once per store, as `name::couchdb` and `name::embedded`.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn couchdb() {
                    if $crate::helpers::Backend::Couch.available() {
                        super::$name($crate::helpers::Backend::Couch).await
                    }
                }
                #[tokio::test]
                async fn embedded() {
                    super::$name($crate::helpers::Backend::Embedded).await
                }
            }
        )*
    };
}

/// Runs each named `async fn(Backend)` on every store: CouchDB, pouchdb-server, embedded.
#[macro_export]
macro_rules! every_store {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn couchdb() {
                    if $crate::helpers::Backend::Couch.available() {
                        super::$name($crate::helpers::Backend::Couch).await
                    }
                }
                #[tokio::test]
                async fn pouchdb() {
                    if $crate::helpers::Backend::Pouch.available() {
                        super::$name($crate::helpers::Backend::Pouch).await
                    }
                }
                #[tokio::test]
                async fn embedded() {
                    super::$name($crate::helpers::Backend::Embedded).await
                }
            }
        )*
    };
}

/// The Apache CouchDB the tests use.
pub fn couch_url() -> String {
    std::env::var("BROKER_TEST_COUCHDB_URL").expect(
        "BROKER_TEST_COUCHDB_URL is not set: run the tests with scripts/test.sh, which starts Apache CouchDB",
    )
}

/// The pouchdb-server the Store contract tests also run on.
pub fn pouch_url() -> String {
    std::env::var("BROKER_TEST_POUCHDB_URL").expect(
        "BROKER_TEST_POUCHDB_URL is not set: run the tests with scripts/test.sh, which starts pouchdb-server",
    )
}

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdefghijkl";

/// A running broker and what a test needs around it.
pub struct TestApp {
    pub address: String,
    pub provider: MockServer,
    pub http: reqwest::Client,
    pub store: SharedStore,
    pub services: Arc<Services>,
    pub settings: Settings,
    pub _dir: Arc<tempfile::TempDir>,
    /// Flow binding cookies a browser would hold, by state (`name=value`).
    pub cookies: Arc<std::sync::Mutex<HashMap<String, String>>>,
}

/// Base settings for a test broker.
pub fn test_settings(backend: Backend, dir: &std::path::Path) -> Settings {
    let mut s = Settings::load(None).expect("default settings");
    s.listen = "127.0.0.1:0".into();
    s.public_url = "https://broker.example".into();
    s.admin_token = Some(ADMIN_TOKEN.into());
    s.data_dir = dir.to_path_buf();
    s.provider_timeout_secs = 2;
    // Tests make many requests from one address; the limit tests turn it back on.
    s.rate_limit.per_minute = 0;
    // The refresher would act on other tests' accounts in the shared CouchDB; its own
    // tests turn it on in a database namespace of their own.
    s.refresh.enabled = false;
    s.couchdb.url = match backend {
        Backend::Couch => Some(couch_url()),
        Backend::Pouch => Some(pouch_url()),
        Backend::Embedded => None,
    };
    s
}

/// A broker with default test settings.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// A broker whose settings `tweak` adjusts.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut settings = test_settings(backend, dir.path());
    tweak(&mut settings);
    spawn_with_settings(settings, dir, MockServer::start().await).await
}

/// A CouchDB broker that reaches the store through `relay`, with short store timeouts.
pub async fn spawn_relayed_app(relay: &CouchRelay) -> TestApp {
    let url = relay.url.clone();
    spawn_app_with(Backend::Couch, move |s| {
        s.couchdb.url = Some(url);
        s.couchdb.timeout_secs = 2;
    })
    .await
}

/// A broker on given settings, sharing a data directory and a provider with others.
pub async fn spawn_with_settings(
    settings: Settings,
    dir: Arc<tempfile::TempDir>,
    provider: MockServer,
) -> TestApp {
    spawn_with_clock(settings, dir, provider, Clock::system()).await
}

/// A broker on given settings whose clock the test holds.
pub async fn spawn_with_clock(
    settings: Settings,
    dir: Arc<tempfile::TempDir>,
    provider: MockServer,
    clock: Clock,
) -> TestApp {
    let app = Application::build_with_clock(&settings, clock)
        .await
        .expect("broker builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let services = app.services();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        provider,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        store: services.store(),
        services,

        settings,
        _dir: dir,
        cookies: Arc::default(),
    }
}

/// The `name=value` of the binding cookie a start answer set (empty if none).
pub fn binding_cookie_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_owned()
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", random_hex(6))
}

/// Query pairs of a URL.
pub fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The `Location` header of a response.
pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in a {} answer", resp.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Where a redirect sends the browser back to the app: its `Location`, or, when the flow
/// failed after consent, the failure page's link back (which carries `?error=`).
pub async fn app_return(resp: reqwest::Response) -> String {
    if resp.status() == 303 {
        return location(&resp);
    }
    let status = resp.status();
    let page = resp.text().await.unwrap();
    let start = page
        .find("id=\"back\" href=\"")
        .unwrap_or_else(|| panic!("neither a redirect nor a failure page ({status}): {page}"))
        + "id=\"back\" href=\"".len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end]
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl TestApp {
    /// When an account's next refresh is planned, and after how many failures.
    pub async fn planned(&self, inst: &Instance, id: &str) -> Option<(i64, u32)> {
        Schedule::new(self.store.clone())
            .due_at(&inst.domain, id)
            .await
            .expect("schedule readable")
    }

    /// An admin request.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// A new instance with a unique domain.
    pub async fn new_instance(&self, context: Option<&str>) -> Instance {
        let domain = format!("{}.example.test", unique("u"));
        let resp = self
            .admin(reqwest::Method::POST, "/admin/instances")
            .json(&json!({"domain": domain, "context": context}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        Instance::new(Domain::parse(&domain).unwrap(), context.map(str::to_owned))
    }

    /// Stores an account type through the admin API.
    pub async fn put_account_type(&self, doc: Value) {
        let id = doc["_id"].as_str().unwrap().to_owned();
        let resp = self
            .admin(reqwest::Method::PUT, &format!("/admin/account_types/{id}"))
            .json(&doc)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }

    /// An authorization-code account type on the mock provider, with `extra` merged in.
    pub async fn code_type(&self, extra: Value) -> String {
        let id = unique("svc");
        let mut doc = json!({
            "_id": id, "grant_mode": "authorization_code",
            "client_id": "the-client-id", "client_secret": "the-client-secret",
            "auth_endpoint": format!("{}/authorize", self.provider.uri()),
            "token_endpoint": format!("{}/token", self.provider.uri()),
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                doc.as_object_mut().unwrap().remove(k);
            } else {
                doc[k] = v.clone();
            }
        }
        // `extra` may name the type itself.
        let id = doc["_id"].as_str().unwrap().to_owned();
        self.put_account_type(doc).await;
        id
    }

    /// A one-time session code for an instance.
    pub async fn session_code(&self, inst: &Instance) -> String {
        let resp = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/instances/{}/session_codes", inst.domain),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.json::<Value>().await.unwrap()["session_code"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An API token for an instance.
    pub async fn api_token(&self, inst: &Instance) -> String {
        self.api_token_with(inst, json!({})).await
    }

    /// An API token for an instance, within `limits` (`expires_in`, `account_types`).
    pub async fn api_token_with(&self, inst: &Instance, limits: Value) -> String {
        let resp = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/instances/{}/tokens", inst.domain),
            )
            .json(&limits)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `GET /accounts/{type}/start` with a raw query string.
    pub async fn start_raw(&self, account_type: &str, query: &str) -> reqwest::Response {
        let resp = self
            .http
            .get(format!(
                "{}/accounts/{account_type}/start?{query}",
                self.address
            ))
            .send()
            .await
            .unwrap();
        self.keep_binding_cookie(&resp);
        resp
    }

    /// Keeps the flow binding cookie a start set, as the browser would.
    pub fn keep_binding_cookie(&self, resp: &reqwest::Response) {
        let Some(set) = resp.headers().get("set-cookie") else {
            return;
        };
        let Some(state) = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url::Url::parse(l).ok())
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "state")
                    .map(|(_, v)| v.into_owned())
            })
        else {
            return;
        };
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        self.cookies.lock().unwrap().insert(state, pair);
    }

    /// The binding cookie (`name=value`) of the flow with `state`, if its start set one.
    pub fn binding_cookie(&self, state: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(state).cloned()
    }

    /// Starts a flow as the Home app does and returns the provider URL.
    pub async fn start_flow(&self, inst: &Instance, account_type: &str) -> String {
        let code = self.session_code(inst).await;
        let resp = self
            .start_raw(account_type, &format!("state=client-state&nonce=1700000000000&slug=home&scope=the%20world&session_code={code}"))
            .await;
        assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
        location(&resp)
    }

    /// Reconnects account `id` as the Home app does and returns the provider URL.
    pub async fn reconnect_flow(&self, inst: &Instance, account_type: &str, id: &str) -> String {
        let code = self.session_code(inst).await;
        let resp = self
            .http
            .get(format!(
                "{}/accounts/{account_type}/{id}/reconnect?state=client-state&session_code={code}",
                self.address
            ))
            .send()
            .await
            .unwrap();
        self.keep_binding_cookie(&resp);
        assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
        location(&resp)
    }

    /// The broker's state in a provider URL.
    pub fn state_in(provider_url: &str) -> String {
        query_of(provider_url)["state"].clone()
    }

    /// `GET /accounts/{type}/redirect` with query pairs.
    pub async fn redirect(&self, account_type: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let mut req = self.http.get(format!(
            "{}/accounts/{account_type}/redirect?{query}",
            self.address
        ));
        // The browser that started the flow comes back with its cookie.
        let state = pairs.iter().find(|(k, _)| *k == "state").map(|(_, v)| *v);
        if let Some(cookie) = state.and_then(|s| self.binding_cookie(s)) {
            req = req.header("cookie", cookie);
        }
        req.send().await.unwrap()
    }

    /// `POST /accounts/{type}/{id}/refresh` with a bearer token.
    /// `GET /metrics`, as text (it must answer 200).
    pub async fn metrics_text(&self) -> String {
        let resp = self
            .http
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    pub async fn refresh(
        &self,
        account_type: &str,
        id: &str,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.http.post(format!(
            "{}/accounts/{account_type}/{id}/refresh",
            self.address
        ));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// `POST /accounts/{type}/{id}/refresh?force=true`: a refresh however new the tokens.
    pub async fn refresh_forced(
        &self,
        account_type: &str,
        id: &str,
        token: &str,
    ) -> reqwest::Response {
        self.http
            .post(format!(
                "{}/accounts/{account_type}/{id}/refresh?force=true",
                self.address
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// An account read straight from the store.
    pub async fn account(&self, inst: &Instance, id: &str) -> Value {
        self.store
            .get(&inst.accounts_db(), id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("account {id} not in the store"))
    }

    /// Every account of an instance.
    pub async fn accounts(&self, inst: &Instance) -> Vec<Value> {
        match self.store.all_docs(&inst.accounts_db()).await {
            Ok(docs) => docs,
            Err(oauth_broker::store::StoreError::NoDatabase(_)) => vec![],
            Err(e) => panic!("{e}"),
        }
    }

    /// Puts an account straight into the store, creating the database.
    pub async fn seed_account(&self, inst: &Instance, doc: Value) -> String {
        self.store.ensure_db(&inst.accounts_db()).await.unwrap();
        let id = random_hex(16);
        let mut doc = doc;
        doc["_id"] = id.clone().into();
        self.store.put(&inst.accounts_db(), &doc).await.unwrap();
        id
    }
}

/// Waits until `server` has received at least `n` requests (10 s at most): a condition
/// with a deadline, where a fixed sleep would guess how long the broker takes.
pub async fn provider_has(server: &MockServer, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.received_requests().await.unwrap_or_default().len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "the provider never received {n} request(s)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A TCP relay to CouchDB that a test can cut, to play "store down".
pub struct CouchRelay {
    pub url: String,
    down: Arc<AtomicBool>,
}

impl CouchRelay {
    /// Relays a local port to the test CouchDB; `None` where no CouchDB runs (a bare
    /// `cargo test`).
    pub async fn start() -> Option<CouchRelay> {
        if !Backend::Couch.available() {
            return None;
        }
        let target = url::Url::parse(&couch_url()).unwrap();
        let target_addr = format!(
            "{}:{}",
            target.host_str().unwrap(),
            target.port_or_known_default().unwrap()
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let flag = down.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target_addr = target_addr.clone();
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target_addr).await
                    else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.split();
                    let (mut ro, mut wo) = outbound.split();
                    let watch = async {
                        while !flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy(&mut ri, &mut wo) => {}
                        _ = tokio::io::copy(&mut ro, &mut wi) => {}
                        _ = watch => {}
                    }
                });
            }
        });
        let mut url = target.clone();
        url.set_port(Some(port)).unwrap();
        Some(CouchRelay {
            url: url.to_string(),
            down,
        })
    }

    /// Cuts or restores the relay, and waits until open connections noticed.
    pub async fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A broker running as its own OS process, killed when dropped.
pub struct BrokerProcess {
    pub address: String,
    pub child: std::process::Child,
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the `oauth-broker` binary on `settings` (store, namespace, timeouts), on a free port.
pub async fn spawn_process(settings: &Settings, lease_secs: u64) -> BrokerProcess {
    spawn_process_with(settings, lease_secs, &[]).await
}

/// [`spawn_process`] with more `BROKER__*` variables (they win over the defaults).
pub async fn spawn_process_with(
    settings: &Settings,
    lease_secs: u64,
    env: &[(&str, &str)],
) -> BrokerProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
        .env("BROKER__LISTEN", format!("127.0.0.1:{port}"))
        .env("BROKER__PUBLIC_URL", &settings.public_url)
        .env("BROKER__ADMIN_TOKEN", ADMIN_TOKEN)
        .env("BROKER__DATA_DIR", &settings.data_dir)
        .env(
            "BROKER__COUCHDB__URL",
            settings.couchdb.url.clone().unwrap_or_default(),
        )
        .env("BROKER__COUCHDB__DB_PREFIX", &settings.couchdb.db_prefix)
        .env(
            "BROKER__PROVIDER_TIMEOUT_SECS",
            settings.provider_timeout_secs.to_string(),
        )
        .env("BROKER__RATE_LIMIT__PER_MINUTE", "0")
        .env("BROKER__REFRESH__ENABLED", "false")
        .env("BROKER__REFRESH__LEASE_SECS", lease_secs.to_string())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .spawn()
        .expect("the broker binary starts");
    // Owned at once, so a failed start still kills the process.
    let process = BrokerProcess {
        address: format!("http://127.0.0.1:{port}"),
        child,
    };
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{}/readyz", process.address)).send().await {
            if r.status() == 200 {
                return process;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the broker process did not become ready");
}

/// A provider that rotates refresh tokens: `rt-1` gives `at-2`/`rt-2` once (after 300 ms),
/// and any reuse is refused with `invalid_grant` (expected never to happen).
pub async fn rotating_provider(server: &MockServer) {
    use wiremock::matchers::{body_string_contains, path};
    use wiremock::{Mock, ResponseTemplate};
    Mock::given(path("/token"))
        .and(body_string_contains("refresh_token=rt-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3600}))
                .set_delay(std::time::Duration::from_millis(300)),
        )
        .up_to_n_times(1)
        .expect(1)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": "invalid_grant"})),
        )
        .expect(0)
        .with_priority(2)
        .mount(server)
        .await;
}

/// Another broker in this process on `settings` (and so on the same store), serving on
/// its own port: start-up work (checks, the sweeper's first pass) runs again over what
/// is stored. Its address, or why it did not start.
pub async fn restarted(settings: &Settings) -> anyhow::Result<String> {
    let mut settings = settings.clone();
    settings.listen = "127.0.0.1:0".into();
    let again = oauth_broker::startup::Application::build(&settings).await?;
    let address = format!("http://127.0.0.1:{}", again.port());
    tokio::spawn(again.run_until_stopped());
    Ok(address)
}
