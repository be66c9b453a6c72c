//! cozy-stack, played by what it stores: an instance, login sessions and permission sets
//! written exactly as cozy-stack writes them (`shared/spec/cozy-auth.md`, never through
//! the broker's admin API), the spec's test vectors, and tokens signed as it signs them.

use super::helpers::{spawn_with_clock, test_settings, unique, Backend, TestApp};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use oauth_broker::config::Settings;
use oauth_broker::domain::instance::prefix_for;
use oauth_broker::domain::{Clock, Domain, Instance, Timestamp};
use serde_json::{json, Value};
use std::sync::Arc;
use wiremock::MockServer;

/// The spec's instance.
pub const DOMAIN: &str = "alice.cozy.example";
/// `iat` of the spec's tokens and `ts` of its cookies.
pub const IAT: i64 = 1_700_000_000;
/// The session the spec's cookies name.
pub const SID: &str = "5d2f6c1e0a4b4c3d9e8f7a6b5c4d3e2f";
/// `cozysessid` for [`SID`] (nested subdomains).
pub const NESTED_COOKIE: &str = "AAAAAGVT8QA1ZDJmNmMxZTBhNGI0YzNkOWU4ZjdhNmI1YzRkM2UyZqfaUJn6c9odHIHaikISNKLS_eKLYE5tYmxVj6AZN5ma";
/// `sess-<prefix>` for [`SID`] (flat subdomains).
pub const FLAT_COOKIE: &str = "AAAAAGVT8QA1ZDJmNmMxZTBhNGI0YzNkOWU4ZjdhNmI1YzRkM2UyZkL5_o6yS-tHIzGm3V9iqGynbRBa-I1iVxrw2ciEseor";
/// The Home app's token (with a session id): refused on refresh.
pub const HOME_TOKEN: &str = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhbGljZS5jb3p5LmV4YW1wbGUiLCJzdWIiOiJob21lIiwiYXVkIjpbImFwcCJdLCJpYXQiOjE3MDAwMDAwMDAsInNlc3Npb25faWQiOiI1ZDJmNmMxZTBhNGI0YzNkOWU4ZjdhNmI1YzRkM2UyZiJ9.FJLHbdImu_SBJv0w1RhxtKQ8xG1w96Pr0-gX3cbm47O_1SxahGnP3SKa8r48NKFwgco5yP-2vnZBKWQlUZ2_CQ";
/// The google konnector's `COZY_CREDENTIALS`.
pub const KONN_TOKEN: &str = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhbGljZS5jb3p5LmV4YW1wbGUiLCJzdWIiOiJnb29nbGUiLCJhdWQiOlsia29ubiJdLCJpYXQiOjE3MDAwMDAwMDB9.Rwhj69dAS4Im9brs3NU-Usr7PDtmZOH8IDqkcY_xKXedB9pxVrs3Tq9c6HrUqCpKs9XlJ-iCbIZViYoPQfP-Jg";

/// The spec's session secret: bytes 0..63.
pub fn session_secret() -> Vec<u8> {
    (0u8..64).collect()
}

/// The spec's OAuth secret: bytes 64..191.
pub fn oauth_secret() -> Vec<u8> {
    (64u8..192).collect()
}

/// `"2:"` and the session secret: the key of cookies and `app`/`konn` tokens.
pub fn session_key() -> Vec<u8> {
    let mut k = b"2:".to_vec();
    k.extend(session_secret());
    k
}

/// Go's `time.Time` JSON: RFC 3339 with nanoseconds and an offset.
pub fn go_time(unix_secs: i64) -> String {
    chrono::DateTime::from_timestamp(unix_secs, 123_456_789)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, false)
}

/// A broker beside a played cozy-stack, its clock at `iat` + 1 minute.
pub struct Cozy {
    pub app: TestApp,
    pub inst: Instance,
    pub clock: Clock,
}

/// A broker beside cozy-stack: the redirect host is `oauthcallback.cozy.example`, the
/// flow binding cookie covers `cozy.example`, the instance [`DOMAIN`] and its session
/// [`SID`] exist, and the google konnector may use `io.cozy.accounts`.
pub async fn spawn_cozy(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Cozy {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut s = test_settings(backend, dir.path());
    // The spec's domain in a database namespace of this test's own.
    s.couchdb.db_prefix = format!("{}_", unique("cozy"));
    s.public_url = "https://oauthcallback.cozy.example".into();
    s.flow_binding_cookie_domain = "cozy.example".into();
    tweak(&mut s);
    let clock = Clock::fixed(Timestamp::from_unix_secs(IAT + 60));
    let app = spawn_with_clock(s, dir, MockServer::start().await, clock.clone()).await;
    let domain = Domain::parse(DOMAIN).unwrap();
    let prefix = prefix_for(&domain);
    let instance_doc = json!({
        "_id": oauth_broker::domain::secret::random_hex(16),
        "domain": DOMAIN, "prefix": prefix, "locale": "en", "context": "",
        "uuid": "7b9c2e9c-1f7d-4c38-9a35-7a54d2b0b3f1", "onboarding_finished": true,
        "indexes_version": 130, "auth_mode": 0,
        "session_secret": STANDARD.encode(session_secret()),
        "oauth_secret": STANDARD.encode(oauth_secret()),
        "cli_secret": STANDARD.encode((128u8..=255).collect::<Vec<_>>()),
        "register_token": STANDARD.encode([7u8; 16]),
        "passphrase_hash": STANDARD.encode(b"scrypt$..."),
    });
    put(&app, "global/instances", instance_doc).await;
    let inst = Instance {
        prefix,
        ..Instance::new(domain, None)
    };
    let cozy = Cozy { app, inst, clock };
    cozy.write_session(SID, IAT, false).await;
    cozy.write_permission(
        "konnector",
        "google",
        json!({"accounts": {"type": "io.cozy.accounts",
                             "description": "Required to get the account's data"},
               "files": {"type": "io.cozy.files"}}),
        None,
    )
    .await;
    cozy
}

/// Writes a document into a database, creating it, as CouchDB stores it.
pub async fn put(app: &TestApp, db: &str, doc: Value) {
    app.store.ensure_db(db).await.unwrap();
    app.store.put(db, &doc).await.unwrap();
}

impl Cozy {
    /// The instance's database of `doctype`.
    pub fn db(&self, doctype: &str) -> String {
        self.inst.db(doctype)
    }

    /// Writes the instance document again with `changes` merged in.
    pub async fn update_instance(&self, changes: Value) {
        let mut doc = self
            .app
            .store
            .find(
                "global/instances",
                &oauth_broker::store::Selector::Eq("domain", DOMAIN.into()),
                1,
            )
            .await
            .unwrap()
            .pop()
            .unwrap();
        for (k, v) in changes.as_object().unwrap() {
            doc[k] = v.clone();
        }
        self.app.store.put("global/instances", &doc).await.unwrap();
    }

    /// A login session, as `session.New` writes it.
    pub async fn write_session(&self, id: &str, last_seen: i64, short_run: bool) {
        let doc = json!({"_id": id, "created_at": go_time(last_seen - 3600),
                         "last_seen": go_time(last_seen), "long_run": false,
                         "short_run": short_run});
        put(&self.app, &self.db("io.cozy.sessions"), doc).await;
    }

    /// An app's or konnector's permission set, as cozy-stack writes it at installation.
    pub async fn write_permission(
        &self,
        kind: &str,
        slug: &str,
        permissions: Value,
        expires_at: Option<&str>,
    ) {
        let plural = if kind == "app" { "apps" } else { "konnectors" };
        let mut doc = json!({"_id": oauth_broker::domain::secret::random_hex(16),
            "type": kind, "source_id": format!("io.cozy.{plural}/{slug}"),
            "permissions": permissions,
            "cozyMetadata": {"doctypeVersion": "1", "metadataVersion": 1,
                             "createdAt": go_time(IAT), "updatedAt": go_time(IAT)}});
        if let Some(at) = expires_at {
            doc["expires_at"] = at.into();
        }
        put(&self.app, &self.db("io.cozy.permissions"), doc).await;
    }

    /// A token signed with `key` (HS512, `aud` as a one-element array), as `MakeJWT`.
    pub fn sign(claims: Value, key: &[u8]) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key),
        )
        .unwrap()
    }

    /// `BuildKonnectorToken(slug)` at [`IAT`].
    pub fn konnector_token(slug: &str) -> String {
        Self::sign(
            json!({"iss": DOMAIN, "sub": slug, "aud": ["konn"], "iat": IAT}),
            &session_key(),
        )
    }

    /// A request to the broker as if sent to `host`.
    pub fn request(
        &self,
        method: reqwest::Method,
        host: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.app
            .http
            .request(method, format!("{}{path}", self.app.address))
            .header("host", host)
    }

    /// The Home app's popup: `start` on the instance host with the browser's cookies.
    pub async fn start(
        &self,
        account_type: &str,
        cookie: Option<&str>,
        extra: &str,
    ) -> reqwest::Response {
        let mut req = self.request(
            reqwest::Method::GET,
            DOMAIN,
            &format!("/accounts/{account_type}/start?state=8d6d2b0c-5c1b-4a3e-9c39-0a1f7ad6a1b2&nonce=1700000000000&slug=home{extra}"),
        );
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.unwrap()
    }

    /// A konnector's refresh: `POST` on the instance host with `Authorization: Bearer`,
    /// `Accept: application/json` and no body, as cozy-client-js sends it.
    pub async fn refresh(
        &self,
        host: &str,
        account_type: &str,
        id: &str,
        token: &str,
    ) -> reqwest::Response {
        self.request(
            reqwest::Method::POST,
            host,
            &format!("/accounts/{account_type}/{id}/refresh"),
        )
        .bearer_auth(token)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
    }
}
