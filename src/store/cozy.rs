//! What cozy-stack stores per instance that authenticates its clients: login sessions
//! (`io.cozy.sessions`), permission sets (`io.cozy.permissions`), OAuth clients and the
//! Bitwarden security stamp. Read as cozy-stack writes them; the only write is the
//! short-run session `checkLogin` creates.

use super::{put_creating_db, Selector, SharedStore, StoreError};
use crate::domain::cozy::{PermissionSet, Session};
use crate::domain::secret::random_hex;
use crate::domain::{Instance, Timestamp};
use serde_json::Value;

/// Sessions' doctype.
const SESSIONS: &str = "io.cozy.sessions";
/// Permission sets' doctype.
const PERMISSIONS: &str = "io.cozy.permissions";
/// OAuth clients' doctype.
const OAUTH_CLIENTS: &str = "io.cozy.oauth.clients";
/// Settings' doctype (the Bitwarden security stamp lives there).
const SETTINGS: &str = "io.cozy.settings";

/// Who a permission set belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder<'a> {
    /// A web app or service, by slug.
    App(&'a str),
    /// A konnector, by slug.
    Konnector(&'a str),
}

/// An OAuth client of the instance, as far as permissions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The flagship app may hold the `*` scope.
    pub flagship: bool,
}

/// Reads cozy-stack's authentication documents.
#[derive(Clone)]
pub struct CozyDocs {
    store: SharedStore,
}

impl CozyDocs {
    /// Over the store.
    pub fn new(store: SharedStore) -> CozyDocs {
        CozyDocs { store }
    }

    async fn get(&self, db: &str, id: &str) -> Result<Option<Value>, StoreError> {
        match self.store.get(db, id).await {
            Err(StoreError::NoDatabase(_)) => Ok(None),
            other => other,
        }
    }

    /// The session document `id`; `None` when missing or unreadable.
    pub async fn session(&self, inst: &Instance, id: &str) -> Result<Option<Session>, StoreError> {
        if id.is_empty() || id.len() > 200 {
            return Ok(None);
        }
        Ok(self
            .get(&inst.db(SESSIONS), id)
            .await?
            .as_ref()
            .and_then(Session::from_document))
    }

    /// Creates a short-run session, as `checkLogin` does after a code or a short-run
    /// login; returns its id.
    pub async fn create_short_run_session(
        &self,
        inst: &Instance,
        now: Timestamp,
    ) -> Result<String, StoreError> {
        let id = random_hex(16);
        let mut doc = Session::short_run_document(now);
        doc["_id"] = id.clone().into();
        put_creating_db(self.store.as_ref(), &inst.db(SESSIONS), &doc).await?;
        Ok(id)
    }

    /// The permission set of an app or konnector (`GetForWebapp`, `GetForKonnector`).
    pub async fn permissions_of(
        &self,
        inst: &Instance,
        holder: Holder<'_>,
    ) -> Result<Option<PermissionSet>, StoreError> {
        let (kind, source) = match holder {
            Holder::App(slug) => ("app", format!("io.cozy.apps/{slug}")),
            Holder::Konnector(slug) => ("konnector", format!("io.cozy.konnectors/{slug}")),
        };
        let selector = Selector::And(vec![
            Selector::Eq("source_id", source.into()),
            Selector::Eq("type", kind.into()),
        ]);
        match self.store.find(&inst.db(PERMISSIONS), &selector, 1).await {
            Ok(mut docs) => Ok(docs.pop().map(|d| PermissionSet::from_document(&d))),
            Err(StoreError::NoDatabase(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The OAuth client `id` of the instance, if it exists.
    pub async fn oauth_client(
        &self,
        inst: &Instance,
        id: &str,
    ) -> Result<Option<OAuthClient>, StoreError> {
        if id.is_empty() {
            return Ok(None);
        }
        Ok(self
            .get(&inst.db(OAUTH_CLIENTS), id)
            .await?
            .map(|d| OAuthClient {
                flagship: d.get("flagship").and_then(Value::as_bool) == Some(true),
            }))
    }

    /// The Bitwarden security stamp of the instance, if set.
    pub async fn security_stamp(&self, inst: &Instance) -> Result<Option<String>, StoreError> {
        Ok(self
            .get(&inst.db(SETTINGS), "io.cozy.settings.bitwarden")
            .await?
            .and_then(|d| d.get("security_stamp")?.as_str().map(str::to_owned)))
    }
}
