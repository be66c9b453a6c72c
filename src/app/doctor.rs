//! `oauth-broker doctor`: what in a deployment cannot work, or is risky, found before a
//! user meets it, each finding naming the setting to change. `serve` makes the same
//! checks of settings, CouchDB, Redis and the binding cookie at start-up (refusing to
//! start on an error); the scans of stored secrets and provider hosts are `doctor`'s.
//! Nothing here writes: a database that is missing is reported, not created.

use crate::config::{redact_url, Settings};
use crate::domain::account_type::AccountType;
use crate::domain::cookie_scope::{self, CookieScope};
use crate::domain::registered_client::{aad as client_aad, SECRET_MEMBERS};
use crate::domain::sealed::{is_sealed, Keyring};
use crate::oauth::resolver::DnsPolicy;
use crate::store::account_types::secret_aad;
use crate::store::couch::CouchStore;
use crate::store::cozy_session_codes::CozySessionCodes;
use crate::store::embedded::EmbeddedStore;
use crate::store::inspect::{DbState, InspectError};
use crate::store::{
    SharedStore, Store, StoreError, ACCOUNT_TYPES_DB, BROKER_DBS, DECISIONS_DB, INDEXES,
    INSTANCES_DB, REGISTERED_CLIENTS_DB,
};
use serde::Serialize;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Instances read to learn the hosts sign-ins start on (a sample on big deployments).
const INSTANCE_SAMPLE: usize = 1000;
/// How long one provider host may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

pub use crate::config::Severity;

/// One thing checked and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked (`couchdb`, `database broker/flow_states`, `account type google`).
    pub check: String,
    /// How bad.
    pub severity: Severity,
    /// What was found, and what to do.
    pub detail: String,
    /// The setting to change, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setting: Option<&'static str>,
}

impl Finding {
    fn new(check: impl Into<String>, severity: Severity, detail: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            severity,
            detail: detail.into(),
            setting: None,
        }
    }

    fn ok(check: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding::new(check, Severity::Ok, detail)
    }

    fn warning(check: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding::new(check, Severity::Warning, detail)
    }

    fn error(check: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding::new(check, Severity::Error, detail)
    }

    fn about(mut self, setting: &'static str) -> Finding {
        self.setting = Some(setting);
        self
    }

    /// One line: `error  couchdb.url: ...`.
    pub fn line(&self) -> String {
        match self.setting {
            Some(s) => format!("{} (setting {s}): {}", self.check, self.detail),
            None => format!("{}: {}", self.check, self.detail),
        }
    }
}

/// Everything found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// In the order checked.
    pub findings: Vec<Finding>,
    /// The binding cookie's domain inferred from the hosts, when none is set and one
    /// parent covers them all.
    #[serde(skip)]
    pub inferred_cookie_domain: Option<String>,
}

impl Report {
    /// The findings of one severity.
    pub fn of(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity == severity)
    }

    /// Whether something cannot work.
    pub fn has_errors(&self) -> bool {
        self.of(Severity::Error).next().is_some()
    }
}

/// Every check, `doctor`'s: settings, CouchDB, Redis, the binding cookie, stored secrets
/// and provider hosts.
pub async fn examine(settings: &Settings) -> Report {
    let mut report = preflight(settings, false).await;
    let store = match read_only_store(settings, &mut report) {
        Some(s) => s,
        None => return report,
    };
    cookie(settings, store.as_ref(), &mut report).await;
    // Read once: both scans go through every account type.
    let types = match docs(store.as_ref(), ACCOUNT_TYPES_DB, usize::MAX).await {
        Ok(t) => t,
        Err(e) => {
            report.findings.push(Finding::error(
                "account types",
                format!("could not be read: {e}"),
            ));
            return report;
        }
    };
    let keyring = Keyring::parse(settings.encryption_keys.as_deref().unwrap_or("")).ok();
    if let Some(keyring) = keyring {
        secrets(store.as_ref(), &types, &keyring, &mut report).await;
    }
    provider_hosts(settings, &types, &mut report).await;
    report
}

/// The checks `serve` makes before it opens the store: settings, CouchDB and its
/// databases, Redis. `at_start` leaves out what `serve` is about to mend (databases and
/// indexes not yet created) and what is as it should be.
pub async fn preflight(settings: &Settings, at_start: bool) -> Report {
    let mut report = Report::default();
    report.findings.extend(settings_findings(settings));
    if let Some(url) = settings.couchdb_url() {
        couchdb(settings, url, at_start, &mut report).await;
    }
    if let Some(url) = settings.cozy.redis_url() {
        let mut found = redis(url).await;
        // Down at start-up is not a reason to stay down: everything but cozy-stack's
        // session codes works, and Redis may be back by the first sign-in.
        if at_start && found.severity == Severity::Error && found.detail.contains("does not answer")
        {
            found.severity = Severity::Warning;
        }
        report.findings.push(found);
    }
    report
}

/// What the settings say on their own.
/// The settings' own rules (`Settings::check`, which `serve` refuses on too).
fn settings_findings(settings: &Settings) -> Vec<Finding> {
    settings
        .check()
        .into_iter()
        .map(|f| {
            let found = Finding::new(f.setting, f.severity, f.detail);
            match f.severity {
                Severity::Ok => found,
                _ => found.about(f.setting),
            }
        })
        .collect()
}

/// CouchDB: reachable, the credentials taken, its version and nodes, and each database
/// with its copies, quorums and indexes.
async fn couchdb(settings: &Settings, url: &str, at_start: bool, report: &mut Report) {
    let shown = redact_url(url);
    let store = match couch_store(settings, url) {
        Ok(s) => s,
        Err(e) => {
            report
                .findings
                .push(Finding::error("couchdb", e.to_string()).about("couchdb.url"));
            return;
        }
    };
    let server = match store.server_info().await {
        Ok(s) => s,
        Err(e) => {
            report.findings.push(unreachable_or_refused(&shown, &e));
            return;
        }
    };
    let major: u32 = server
        .version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let nodes = server.nodes.map_or_else(
        || "nodes not readable (not an admin)".to_owned(),
        |n| format!("{n} node(s)"),
    );
    let about = format!("{} {} at {shown}, {nodes}", server.vendor, server.version);
    report.findings.push(if major >= 3 {
        Finding::ok("couchdb", about)
    } else {
        Finding::warning(
            "couchdb",
            format!("{about}: the broker is tested on CouchDB 3"),
        )
        .about("couchdb.url")
    });
    let states = futures::future::join_all(
        BROKER_DBS
            .iter()
            .map(|db| async { (*db, store.database_state(db).await) }),
    )
    .await;
    let mut missing_dbs = Vec::new();
    for (db, state) in states {
        let check = format!("database {}{db}", settings.couchdb.db_prefix);
        let finding = match state {
            Err(e) => unreachable_or_refused(&shown, &e),
            Ok(DbState::Forbidden) => Finding::error(
                check,
                "the CouchDB user of couchdb.url may not read it: add it to the database's \
                 _security members, or use another user",
            )
            .about("couchdb.url"),
            Ok(DbState::Missing) => {
                missing_dbs.push(db);
                continue;
            }
            Ok(DbState::Present {
                n,
                q,
                w,
                r,
                indexes,
            }) => {
                let missing: Vec<String> = INDEXES
                    .iter()
                    .filter(|(d, _)| *d == db)
                    .map(|(_, field)| format!("by-{field}"))
                    .filter(|name| !indexes.contains(name))
                    .collect();
                let majority = n / 2 + 1;
                let shape = format!("n={n} q={q} w={w} r={r}");
                if n > 1 && (w < majority || r < majority) && db != DECISIONS_DB {
                    Finding::warning(
                        check,
                        format!(
                            "{shape}: w and r below a majority of {n} copies let a read miss \
                             a write the broker was told was made; keep [cluster] w and r at \
                             their defaults"
                        ),
                    )
                } else if !missing.is_empty() && !at_start {
                    Finding::warning(
                        check,
                        format!(
                            "{shape}; index {} missing: its queries read every document until \
                             `serve` creates it",
                            missing.join(", ")
                        ),
                    )
                } else if at_start {
                    continue;
                } else {
                    Finding::ok(check, shape)
                }
            }
        };
        report.findings.push(finding);
    }
    if !missing_dbs.is_empty() && !at_start {
        report.findings.push(Finding::warning(
            "databases",
            format!(
                "{} of {} not created yet (`serve` creates them): {}",
                missing_dbs.len(),
                BROKER_DBS.len(),
                missing_dbs.join(", ")
            ),
        ));
    }
}

fn couch_store(settings: &Settings, url: &str) -> Result<CouchStore, StoreError> {
    CouchStore::new(
        url,
        Duration::from_secs(settings.couchdb.timeout_secs.max(1)),
        &settings.couchdb.db_prefix,
    )
}

fn unreachable_or_refused(shown: &str, e: &InspectError) -> Finding {
    let detail = match e {
        InspectError::Unreachable(why) => format!("nothing answers at {shown}: {why}"),
        InspectError::Unauthorized => {
            format!("{shown} refuses the user name or password (HTTP 401)")
        }
        InspectError::Unexpected(what) => format!("{shown} answers as CouchDB would not: {what}"),
    };
    Finding::error("couchdb", detail).about("couchdb.url")
}

/// cozy-stack's Redis, where its session codes are.
async fn redis(url: &str) -> Finding {
    let shown = redact_url(url);
    let codes = match CozySessionCodes::new(url) {
        Ok(c) => c,
        Err(e) => {
            return Finding::error("redis", format!("`{shown}` is not a Redis URL: {e}"))
                .about("cozy.redis_url")
        }
    };
    match codes.ping().await {
        Ok(()) => Finding::ok("redis", format!("{shown} answers")),
        Err(e) => Finding::error(
            "redis",
            format!("{shown} does not answer: {e}; cozy-stack's session codes cannot be redeemed"),
        )
        .about("cozy.redis_url"),
    }
}

/// The store `doctor` reads, opened without creating anything: CouchDB when set, else the
/// embedded one when it exists.
fn read_only_store(settings: &Settings, report: &mut Report) -> Option<SharedStore> {
    match settings.couchdb_url() {
        Some(url) => {
            // Its errors are already said; reading on would only repeat them.
            if report
                .of(Severity::Error)
                .any(|f| f.setting == Some("couchdb.url"))
            {
                return None;
            }
            couch_store(settings, url)
                .ok()
                .map(|s| Arc::new(s) as SharedStore)
        }
        None => {
            let file = settings.data_dir.join("broker.sqlite3");
            if !file.exists() {
                report.findings.push(Finding::warning(
                    "embedded store",
                    format!("{} does not exist yet: `serve` creates it", file.display()),
                ));
                return None;
            }
            match EmbeddedStore::open(&settings.data_dir) {
                Ok(s) => {
                    report
                        .findings
                        .push(Finding::ok("embedded store", file.display().to_string()));
                    Some(Arc::new(s))
                }
                Err(e) => {
                    report
                        .findings
                        .push(Finding::error("embedded store", e.to_string()).about("data_dir"));
                    None
                }
            }
        }
    }
}

/// Up to `limit` documents of `db` (design documents left out), none when it does not
/// exist yet; read a page at a time, since CouchDB refuses a `limit` past `i64`.
async fn docs(store: &dyn Store, db: &str, limit: usize) -> Result<Vec<Value>, StoreError> {
    const PAGE: usize = 500;
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    while found.len() < limit {
        let page = match store
            .docs_in_range(db, "", after.as_deref(), PAGE.min(limit - found.len()))
            .await
        {
            Err(StoreError::NoDatabase(_)) => return Ok(Vec::new()),
            other => other?,
        };
        let full = page.len() == PAGE;
        after = page
            .last()
            .and_then(|d| d["_id"].as_str())
            .map(str::to_owned);
        found.extend(
            page.into_iter()
                .filter(|d| !d["_id"].as_str().unwrap_or("_").starts_with('_')),
        );
        if !full || after.is_none() {
            break;
        }
    }
    Ok(found)
}

/// Where the binding cookie must come back: `start` sets it on the instance's host, the
/// redirect comes to the public URL's. Infers the cookie domain when none is set and
/// one parent covers every host; says which hosts no setting can serve.
pub async fn cookie(settings: &Settings, store: &dyn Store, report: &mut Report) {
    const CHECK: &str = "flow binding cookie";
    if !settings.flow_binding {
        report
            .findings
            .push(Finding::ok(CHECK, "flow binding is off: no cookie to keep"));
        return;
    }
    let Some(public) = Url::parse(&settings.public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    else {
        return;
    };
    let instances = match docs(store, INSTANCES_DB, INSTANCE_SAMPLE).await {
        Ok(d) => d,
        Err(e) => {
            report.findings.push(Finding::warning(
                CHECK,
                format!("instances not readable ({e}): the cookie domain is not checked"),
            ));
            return;
        }
    };
    let host_of = |h: &Value| {
        h.as_str()
            .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase())
            .filter(|h| !h.is_empty())
    };
    let domains: Vec<String> = instances
        .iter()
        .filter_map(|i| host_of(&i["domain"]))
        .collect();
    let aliases: Vec<String> = instances
        .iter()
        .flat_map(|i| i["domain_aliases"].as_array().cloned().unwrap_or_default())
        .filter_map(|h| host_of(&h))
        .collect();
    let not_under = |domain: &str, hosts: &[String]| -> Vec<String> {
        hosts
            .iter()
            .filter(|h| **h != public && !cookie_scope::covers(domain, h))
            .cloned()
            .collect()
    };
    // Hosts the cookie misses are a warning, not a refusal: `start` may well be served
    // on the public host for them (a session code), and one odd alias must not stop
    // every other instance's sign-ins.
    let missed = |domain: &str, hosts: Vec<String>| {
        Finding::warning(
            CHECK,
            format!(
                "Domain={domain} does not cover {}: a sign-in started on those hosts ends in \
                 \"started in another browser\"",
                shown_hosts(&hosts)
            ),
        )
    };
    let all: Vec<String> = domains.iter().chain(&aliases).cloned().collect();
    let finding = match settings.cookie_domain().ok().flatten() {
        Some(domain) => match not_under(&domain, &all) {
            m if m.is_empty() => Finding::ok(
                CHECK,
                format!("Domain={domain} covers {public} and every instance host"),
            ),
            m => missed(&domain, m).about("flow_binding_cookie_domain"),
        },
        None => match cookie_scope::infer(&public, &domains) {
            CookieScope::HostOnly if aliases.is_empty() => Finding::ok(
                CHECK,
                format!("host-only on {public}: no instance is served on another host"),
            ),
            CookieScope::HostOnly => Finding::ok(
                CHECK,
                format!("host-only on {public}, where every instance's main domain is"),
            ),
            CookieScope::Inferred(parent) => {
                report.inferred_cookie_domain = Some(parent.clone());
                match not_under(&parent, &aliases) {
                    m if m.is_empty() => Finding::ok(
                        CHECK,
                        format!(
                            "flow_binding_cookie_domain is unset; `{parent}` covers {public} \
                             and the instance hosts, and is used (set it to say so)"
                        ),
                    ),
                    m => missed(&parent, m).about("flow_binding_cookie_domain"),
                }
            }
            CookieScope::Uncovered(others) => Finding::warning(
                CHECK,
                format!(
                    "{} share no parent domain with public_url's host {public}: a sign-in \
                     started there cannot keep its binding cookie; serve public_url under \
                     their parent domain",
                    shown_hosts(&others)
                ),
            )
            .about("public_url"),
        },
    };
    report.findings.push(finding);
}

/// A few hosts, and how many more.
fn shown_hosts(hosts: &[String]) -> String {
    let shown: Vec<&str> = hosts.iter().take(3).map(|h| h.as_str()).collect();
    let more = hosts.len().saturating_sub(3);
    let mut s = shown.join(", ");
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

/// Every sealed secret (account types' client secrets, registered clients' secrets)
/// opens with the configured keys.
async fn secrets(store: &dyn Store, types: &[Value], keyring: &Keyring, report: &mut Report) {
    let mut sealed = 0;
    let mut unreadable = Vec::new();
    let mut check = |value: Option<&str>, aad: String, what: String| {
        if let Some(v) = value.filter(|v| is_sealed(v)) {
            sealed += 1;
            if keyring.open(v, &aad).is_err() {
                unreadable.push(what);
            }
        }
    };
    match docs(store, REGISTERED_CLIENTS_DB, usize::MAX).await {
        Ok(clients) => {
            for t in types {
                let id = t["_id"].as_str().unwrap_or_default();
                check(
                    t["client_secret"].as_str(),
                    secret_aad(id),
                    format!("account type {id}"),
                );
            }
            for c in &clients {
                let id = c["_id"].as_str().unwrap_or_default();
                for m in SECRET_MEMBERS {
                    check(
                        c[m].as_str(),
                        client_aad(id, m),
                        format!("registered client {id} ({m})"),
                    );
                }
            }
        }
        Err(e) => {
            report.findings.push(Finding::error(
                "stored secrets",
                format!("could not be read: {e}"),
            ));
            return;
        }
    }
    report.findings.push(if unreadable.is_empty() {
        Finding::ok("stored secrets", format!("{sealed} sealed, all open"))
    } else {
        Finding::error(
            "stored secrets",
            format!(
                "{} of {sealed} sealed secrets do not open with the configured keys ({}): put \
                 the key they were sealed with back in encryption_keys",
                unreadable.len(),
                unreadable.join(", ")
            ),
        )
        .about("encryption_keys")
    });
}

/// Each account type's provider hosts resolve, and to addresses the SSRF rules let the
/// broker reach.
async fn provider_hosts(settings: &Settings, types: &[Value], report: &mut Report) {
    let policy = super::dns_policy(settings);
    let mut checked = 0;
    let mut problems = Vec::new();
    for doc in types {
        let id = doc["_id"].as_str().unwrap_or_default().to_owned();
        let at = match AccountType::from_document(doc) {
            Ok(at) => at,
            Err(e) => {
                problems.push(Finding::error(
                    format!("account type {id}"),
                    format!("invalid: {e}"),
                ));
                continue;
            }
        };
        let endpoints = [
            ("auth_endpoint", &at.auth_endpoint),
            ("token_endpoint", &at.token_endpoint),
        ];
        for (field, url) in endpoints {
            // `{provider_url}` comes with each account; nothing to resolve yet.
            let templated = doc[field]
                .as_str()
                .is_some_and(|s| s.contains("{provider_url}"));
            let Some(url) = url.as_ref().filter(|_| !templated) else {
                continue;
            };
            checked += 1;
            if let Some((problem, setting)) = host_problem(&policy, url).await {
                let finding =
                    Finding::error(format!("account type {id}"), format!("{field}: {problem}"));
                problems.push(match setting {
                    Some(s) => finding.about(s),
                    None => finding,
                });
            }
        }
    }
    if problems.is_empty() {
        report.findings.push(Finding::ok(
            "provider hosts",
            format!(
                "{checked} endpoints of {} account types resolve to reachable addresses",
                types.len()
            ),
        ));
    }
    report.findings.extend(problems);
}

/// Why the broker could not reach `url`'s host, if it could not, and the setting that
/// would let it.
async fn host_problem(policy: &DnsPolicy, url: &Url) -> Option<(String, Option<&'static str>)> {
    let host = url
        .host_str()?
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => match tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
            Ok(Err(e)) => return Some((format!("{host} does not resolve: {e}"), None)),
            Err(_) => {
                return Some((
                    format!("{host} does not resolve within {RESOLVE_TIMEOUT:?}"),
                    None,
                ))
            }
        },
    };
    let refused: Vec<String> = addresses
        .iter()
        .filter(|ip| !policy.allows(&host, **ip))
        .map(IpAddr::to_string)
        .collect();
    if addresses.is_empty() {
        Some((format!("{host} resolves to no address"), None))
    } else if !refused.is_empty() {
        Some((
            format!(
                "{host} resolves to {}, which the SSRF rules refuse: list it in \
                 provider_private_hosts if it is yours",
                refused.join(", ")
            ),
            Some("provider_private_hosts"),
        ))
    } else {
        None
    }
}
