//! Konnectors' own refresh calls, verbatim from real konnectors, run by Node with the
//! cozy-konnector-libs 5.13.0 that `scripts/test.sh` installs (`tests/konnector/run.js`):
//! cozy-client-js `fetchJSON` (Google, orangeapi), cozy-client `fetch` and its
//! `oauth_refresh_invalid_token` check (toutatice), and a whole `BaseKonnector` run that
//! reads `fields.access_token` through cozy-stack's `/data` (the stand-in of
//! `tests/harvest/stand-in-stack.mjs`; cozy-stack cannot be built here). The broker beside
//! a played cozy-stack on Apache CouchDB.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

mod common;
use common::cozy_stack::*;
use common::helpers::*;
use common::needs;

use serde_json::{json, Value};
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

/// Runs `mode` of `run.js` for account `id` of type `t`; its report.
async fn konnector(c: &Cozy, libs: &str, mode: &str, t: &str, id: &str) -> Value {
    let config = json!({
        "broker": c.app.address,
        "couch": couch_url(),
        "couchPrefix": c.app.settings.couchdb.db_prefix,
        "callbackHost": "oauthcallback.cozy.example",
        "instances": [{"domain": DOMAIN, "host": DOMAIN, "prefix": c.inst.prefix,
                        "tokens": [KONN_TOKEN], "sessionCookie": "cozysessid"}],
        "token": KONN_TOKEN, "account": id, "accountType": t,
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), config.to_string()).unwrap();
    let stdout = common::node::run(
        "konnector/run.js",
        vec![mode.to_owned(), file.path().display().to_string()],
        vec![("NODE_PATH", libs.to_owned())],
    )
    .await;
    // The konnector logs on stdout too (JSON lines): the report is the last line.
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A broker beside cozy-stack on CouchDB, cozy-konnector-libs' path, and a type whose
/// provider answers refreshes with `reply`.
async fn scene(reply: ResponseTemplate) -> Option<(Cozy, String, String)> {
    let libs = needs::env("BROKER_TEST_KONNECTOR_LIBS", "cozy-konnector-libs (npm)")?;
    needs::env("BROKER_TEST_COUCHDB_URL", "cozy-konnector-libs (npm)")?;
    let c = spawn_cozy(Backend::Couch, |_| {}).await;
    let t = c.app.code_type(json!({})).await;
    Mock::given(path("/token"))
        .respond_with(reply)
        .mount(&c.app.provider)
        .await;
    Some((c, t, libs))
}

fn fresh() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": "fresh-access-token", "refresh_token": "rt-2",
        "expires_in": 3600, "token_type": "Bearer"}))
}

/// An account as cozy-stack writes it, with a refresh token or without.
async fn account(c: &Cozy, t: &str, refresh_token: bool) -> String {
    let mut oauth = json!({"access_token": "old", "token_type": "Bearer",
                           "expires_at": "2023-11-14T22:00:00Z"});
    if refresh_token {
        oauth["refresh_token"] = "rt-1".into();
    }
    c.app
        .seed_account(&c.inst, json!({"account_type": t, "oauth": oauth}))
        .await
}

/// Google's and orangeapi's idiom reads `body.attributes.oauth.access_token`, which
/// exists only because cozy-client-js unwraps a JSON:API answer.
#[tokio::test]
async fn cozy_client_js_fetch_json_refresh_gets_the_new_token() {
    let Some((c, t, libs)) = scene(fresh()).await else {
        return;
    };
    let id = account(&c, &t, true).await;
    let r = konnector(&c, &libs, "client-js", &t, &id).await;
    assert_eq!(r["access_token"], "fresh-access-token", "{r}");
}

/// toutatice's idiom: `data.attributes.oauth.access_token` on success, and a dead grant
/// recognised by `reason.errors[0].code === 'oauth_refresh_invalid_token'` (then the
/// konnector asks the user to reconnect instead of reporting VENDOR_DOWN).
#[tokio::test]
async fn cozy_client_fetch_refresh_and_its_dead_grant_code() {
    let Some((c, t, libs)) = scene(fresh()).await else {
        return;
    };
    let id = account(&c, &t, true).await;
    let r = konnector(&c, &libs, "cozy-client", &t, &id).await;
    assert_eq!(r["access_token"], "fresh-access-token", "{r}");

    let Some((c, t, libs)) =
        scene(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"}))).await
    else {
        return;
    };
    let id = account(&c, &t, true).await;
    let r = konnector(&c, &libs, "cozy-client", &t, &id).await;
    assert_eq!(r["status"], 401, "{r}");
    assert_eq!(r["code"], "oauth_refresh_invalid_token", "{r}");
}

/// toutatice refreshes at every run, also for an account without a refresh token: as on
/// cozy-stack, the account comes back as it is (200). On the main of 2026-12-07 before
/// this session's fix this was a 400, and the konnector failed with VENDOR_DOWN.
#[tokio::test]
async fn cozy_client_refresh_of_an_account_without_refresh_token_gets_it_as_is() {
    let Some((c, t, libs)) = scene(fresh()).await else {
        return;
    };
    let id = account(&c, &t, false).await;
    let r = konnector(&c, &libs, "cozy-client", &t, &id).await;
    assert_eq!(r["access_token"], "old", "{r}");
    assert!(r.get("code").is_none(), "{r}");
}

/// A whole `BaseKonnector` run reads the account through cozy-stack's `/data` and hands
/// the konnector the token the broker wrote in `oauth`.
#[tokio::test]
async fn base_konnector_reads_the_access_token_the_broker_wrote() {
    let Some((c, t, libs)) = scene(fresh()).await else {
        return;
    };
    let id = account(&c, &t, true).await;
    let refreshed = c.refresh(DOMAIN, &t, &id, KONN_TOKEN).await;
    assert_eq!(refreshed.status(), 200);
    let r = konnector(&c, &libs, "konnector", &t, &id).await;
    assert_eq!(r["access_token"], "fresh-access-token", "{r}");
    assert_eq!(r["refresh_token_present"], true, "{r}");
    assert!(r.get("error").is_none(), "{r}");
}
