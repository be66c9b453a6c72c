//! `oauth-broker doctor`: what in a deployment cannot work, or is risky, found before a
//! user meets it, each finding naming the setting to change. `serve` makes the same
//! checks of settings, CouchDB, Redis and the binding cookie at start-up (refusing to
//! start on an error); the scans of stored secrets and provider hosts are `doctor`'s.
//! Nothing here writes: a database that is missing is reported, not created. One check
//! per module: `couchdb`, `redis`, `cookie`, `secrets`, `provider_hosts`; the settings'
//! own rules are `config::Settings::check`'s.

mod cookie;
mod couchdb;
mod provider_hosts;
mod redis;
mod secrets;

use crate::config::{SettingFinding, Settings};
use crate::domain::sealed::Keyring;
use crate::store::couch::CouchStore;
use crate::store::embedded::EmbeddedStore;
use crate::store::{inspect, SharedStore, StoreError};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

pub use crate::config::Severity;
pub use cookie::cookie;

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
    pub(super) fn new(
        check: impl Into<String>,
        severity: Severity,
        detail: impl Into<String>,
    ) -> Finding {
        Finding {
            check: check.into(),
            severity,
            detail: detail.into(),
            setting: None,
        }
    }

    pub(super) fn ok(check: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding::new(check, Severity::Ok, detail)
    }

    pub(super) fn warning(check: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding::new(check, Severity::Warning, detail)
    }

    pub(super) fn error(check: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding::new(check, Severity::Error, detail)
    }

    pub(super) fn about(mut self, setting: &'static str) -> Finding {
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

impl From<SettingFinding> for Finding {
    fn from(f: SettingFinding) -> Finding {
        Finding::of_setting(f.setting, f)
    }
}

impl Finding {
    /// A setting's finding under the name of `check`, blaming the setting unless all is
    /// well.
    fn of_setting(check: impl Into<String>, f: SettingFinding) -> Finding {
        let found = Finding::new(check, f.severity, f.detail);
        match f.severity {
            Severity::Ok => found,
            _ => found.about(f.setting),
        }
    }
}

/// Everything found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// In the order checked.
    pub findings: Vec<Finding>,
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
    let types = match inspect::account_type_docs(store.as_ref()).await {
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
        secrets::check(store.as_ref(), &types, &keyring, &mut report).await;
    }
    provider_hosts::check(settings, &types, &mut report).await;
    report
}

/// The checks `serve` makes before it opens the store: settings, CouchDB and its
/// databases, Redis. `at_start` leaves out what `serve` is about to mend (databases and
/// indexes not yet created) and what is as it should be.
pub async fn preflight(settings: &Settings, at_start: bool) -> Report {
    let mut report = Report::default();
    report
        .findings
        .extend(settings.check().into_iter().map(Finding::from));
    if let Some(url) = settings.couchdb_url() {
        couchdb::check(settings, url, at_start, &mut report).await;
    }
    if let Some(url) = settings.cozy.redis_url() {
        let mut found = redis::check(url).await;
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

pub(super) fn couch_store(settings: &Settings, url: &str) -> Result<CouchStore, StoreError> {
    CouchStore::new(
        url,
        Duration::from_secs(settings.couchdb.timeout_secs.max(1)),
        &settings.couchdb.db_prefix,
    )
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
