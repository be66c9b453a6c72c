//! Account types: CRUD for operators, and the in-memory cache kept fresh from `_changes`.

use super::{put_creating_db, rev_of, SharedStore, StoreError, ACCOUNT_TYPES_DB};
use crate::domain::account_type::{self, AccountType, AccountTypeError, REDACTED};
use crate::domain::error_kind::{Classified, ErrorKind};
use crate::domain::sealed::{is_sealed, Keyring};
use crate::domain::ErrorCode;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Entries the cache holds before it stops remembering absent documents.
const MAX_ABSENT_REMEMBERED: usize = 10_000;

/// How long one `_changes` request may wait for a change.
const CHANGES_WAIT: Duration = Duration::from_secs(5);

/// Why an account type cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LookupError {
    /// No document for the id (nor for its context overload).
    #[error("unknown account type `{0}`")]
    NotFound(String),
    /// A document exists but is not a valid account type.
    #[error("account type `{id}` is misconfigured: {error}")]
    Invalid {
        /// Document id.
        id: String,
        /// What is wrong with it.
        error: AccountTypeError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an operator's write was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteError {
    /// The document is not a valid account type.
    #[error("invalid account type: {0}")]
    Invalid(#[from] AccountTypeError),
    /// The `_rev` given is not the stored one.
    #[error("the account type changed since it was read (stale `_rev`)")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

type Entry = Result<Arc<AccountType>, AccountTypeError>;

/// Account types by document id, cached.
pub struct AccountTypes {
    store: SharedStore,
    /// By document id: the parsed type, or `None` for a document known to be absent.
    cache: RwLock<HashMap<String, Option<Entry>>>,
    keyring: Arc<Keyring>,
}

impl AccountTypes {
    /// An empty cache over the store.
    pub fn new(store: SharedStore, keyring: Arc<Keyring>) -> Arc<AccountTypes> {
        Arc::new(AccountTypes {
            store,
            cache: RwLock::new(HashMap::new()),
            keyring,
        })
    }

    /// A copy of the document with its sealed `client_secret` opened.
    fn opened(&self, id: &str, doc: &Value) -> Result<Value, AccountTypeError> {
        let mut plain = doc.clone();
        if let Some(sealed) = doc
            .get("client_secret")
            .and_then(Value::as_str)
            .filter(|s| is_sealed(s))
        {
            let secret =
                self.keyring
                    .open(sealed, &secret_aad(id))
                    .map_err(|e| AccountTypeError {
                        stays_on_stack: false,
                        field: "client_secret".into(),
                        reason: e.to_string(),
                    })?;
            plain["client_secret"] = secret.into();
        }
        Ok(plain)
    }

    /// The stored document with its secret opened, to compare a new one against (the
    /// operator CLI's `diff`); never for display.
    pub async fn get_opened(&self, id: &str) -> Result<Option<Value>, WriteError> {
        match self.get_document(id).await {
            Ok(Some(doc)) => Ok(Some(self.opened(id, &doc)?)),
            Ok(None) | Err(StoreError::NoDatabase(_)) => Ok(None),
            Err(e) => Err(WriteError::Store(e)),
        }
    }

    /// Seals a plaintext `client_secret` with the newest key, when there is one.
    fn seal(&self, id: &str, doc: &mut Value) {
        let plain = doc
            .get("client_secret")
            .and_then(Value::as_str)
            .filter(|s| !is_sealed(s));
        if let Some(sealed) = plain.and_then(|s| self.keyring.seal(s, &secret_aad(id))) {
            doc["client_secret"] = sealed.into();
        }
    }

    /// Re-seals every stored `client_secret` with the newest key; returns how many changed
    /// and the documents that could not be (id, reason), which are left as they are.
    pub async fn reseal_all(&self) -> Result<(usize, Vec<(String, String)>), WriteError> {
        let mut changed = 0;
        let mut failed = Vec::new();
        for mut doc in self.list_documents().await.map_err(WriteError::Store)? {
            let id = doc
                .get("_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let needs = doc
                .get("client_secret")
                .and_then(Value::as_str)
                .is_some_and(|s| self.keyring.needs_reseal(s));
            if !needs {
                continue;
            }
            doc = match self.opened(&id, &doc) {
                Ok(plain) => plain,
                Err(e) => {
                    failed.push((id, e.to_string()));
                    continue;
                }
            };
            self.seal(&id, &mut doc);
            match self.store.put(ACCOUNT_TYPES_DB, &doc).await {
                Ok(rev) => {
                    doc["_rev"] = rev.into();
                    self.remember(&id, Some(&doc));
                    changed += 1;
                }
                Err(StoreError::Conflict) => {
                    failed.push((id, "changed meanwhile; run the rotation again".into()))
                }
                Err(e) => return Err(WriteError::Store(e)),
            }
        }
        Ok((changed, failed))
    }

    /// The type for `service_id` as seen by an instance of `context` (cozy's `TypeInfo`).
    pub async fn lookup(
        &self,
        service_id: &str,
        context: Option<&str>,
    ) -> Result<Arc<AccountType>, LookupError> {
        if account_type::validate_id(service_id).is_err() || service_id.contains('/') {
            return Err(LookupError::NotFound(service_id.to_owned()));
        }
        let mut ids = Vec::with_capacity(2);
        if let Some(ctx) = context.filter(|c| !c.is_empty()) {
            ids.push(format!("{ctx}/{service_id}"));
        }
        ids.push(service_id.to_owned());
        for id in &ids {
            let entry = match self.cached(id) {
                Some(known) => known,
                None => self.load(id).await?,
            };
            if let Some(entry) = entry {
                return entry.map_err(|error| LookupError::Invalid {
                    id: id.clone(),
                    error,
                });
            }
        }
        Err(LookupError::NotFound(service_id.to_owned()))
    }

    /// Whether `service_id`'s type is cozy-stack's to run (a Budget Insight grant mode):
    /// its requests are handed to cozy-stack. A store failure says no (the broker then
    /// answers with its own error).
    pub async fn stays_on_stack(&self, service_id: &str) -> bool {
        matches!(
            self.lookup(service_id, None).await,
            Err(LookupError::Invalid { error, .. }) if error.stays_on_stack
        )
    }

    /// The type stored as `id` (`google` or `ctx/google`), falling back to the service's
    /// own document as `lookup` does.
    pub async fn lookup_id(&self, id: &str) -> Result<Arc<AccountType>, LookupError> {
        let context = id.split_once('/').map(|(c, _)| c);
        self.lookup(account_type::service_id_of(id), context).await
    }

    /// What the cache knows of `id`: `Some(None)` when it is known to be absent.
    fn cached(&self, id: &str) -> Option<Option<Entry>> {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Reads a document the cache has not seen yet (a write from another process).
    async fn load(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        let doc = match self.store.get(ACCOUNT_TYPES_DB, id).await {
            Ok(d) => d,
            Err(StoreError::NoDatabase(_)) => None,
            Err(e) => return Err(e),
        };
        Ok(self.remember(id, doc.as_ref()))
    }

    /// Records a document (or its absence) in the cache.
    fn remember(&self, id: &str, doc: Option<&Value>) -> Option<Entry> {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        match doc {
            // Absences are remembered too (a context's overload is usually absent), up to
            // a bound: ids come from requests, and a stranger could invent many.
            None => {
                if cache.len() < MAX_ABSENT_REMEMBERED || cache.contains_key(id) {
                    cache.insert(id.to_owned(), None);
                }
                None
            }
            Some(d) => {
                let entry = self
                    .opened(id, d)
                    .and_then(|plain| AccountType::from_document(&plain))
                    .map(Arc::new);
                if let Err(e) = &entry {
                    tracing::warn!(account_type = id, error = %e, "account type document is invalid");
                }
                cache.insert(id.to_owned(), Some(entry.clone()));
                Some(entry)
            }
        }
    }

    /// Applies the changes after `since` (waiting a few seconds for one) to the cache and
    /// returns the sequence to ask from next; the watcher task calls it in a loop, so a
    /// `curl -X PUT` is in force within a second.
    pub async fn follow_changes(&self, since: Value) -> Result<Value, StoreError> {
        let batch = self
            .store
            .changes(ACCOUNT_TYPES_DB, &since, CHANGES_WAIT)
            .await?;
        for change in batch
            .changes
            .iter()
            .filter(|c| !c.id.starts_with("_design/"))
        {
            self.remember(&change.id, change.doc.as_ref());
        }
        Ok(batch.last_seq)
    }

    /// Validates and stores a document; without `_rev` it replaces the stored one.
    /// A `client_secret` or `secret` equal to the redaction marker keeps the stored value,
    /// so an operator can edit what an admin read returned.
    pub async fn put(&self, mut doc: Value) -> Result<(AccountType, String), WriteError> {
        let id = doc
            .get("_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| AccountTypeError {
                stays_on_stack: false,
                field: "_id".into(),
                reason: "is required".into(),
            })?;
        account_type::validate_id(&id)?;
        let stored = match self.store.get(ACCOUNT_TYPES_DB, &id).await {
            Ok(d) => d,
            Err(StoreError::NoDatabase(_)) => None,
            Err(e) => return Err(WriteError::Store(e)),
        };
        if let (Some(obj), Some(stored)) = (doc.as_object_mut(), &stored) {
            for field in account_type::SECRET_FIELDS {
                if obj.get(field).and_then(Value::as_str) == Some(REDACTED) {
                    match stored.get(field) {
                        Some(v) => obj.insert(field.to_owned(), v.clone()),
                        None => obj.remove(field),
                    };
                }
            }
            if !obj.contains_key("_rev") {
                if let Some(rev) = rev_of(stored) {
                    obj.insert("_rev".into(), rev.into());
                }
            }
        }
        if let Some(obj) = doc.as_object() {
            for field in account_type::SECRET_FIELDS {
                if obj.get(field).and_then(Value::as_str) == Some(REDACTED) {
                    return Err(WriteError::Invalid(AccountTypeError {
                        stays_on_stack: false,
                        field: field.to_owned(),
                        reason: "is the redaction marker and no stored value exists".into(),
                    }));
                }
            }
        }
        let parsed = AccountType::from_document(&self.opened(&id, &doc)?)?;
        self.seal(&id, &mut doc);
        let rev = put_creating_db(self.store.as_ref(), ACCOUNT_TYPES_DB, &doc)
            .await
            .map_err(|e| match e {
                StoreError::Conflict => WriteError::Conflict,
                other => WriteError::Store(other),
            })?;
        doc["_rev"] = rev.clone().into();
        self.remember(&id, Some(&doc));
        Ok((parsed, rev))
    }

    /// The stored document, unredacted (callers redact before showing it).
    pub async fn get_document(&self, id: &str) -> Result<Option<Value>, StoreError> {
        match self.store.get(ACCOUNT_TYPES_DB, id).await {
            Err(StoreError::NoDatabase(_)) => Ok(None),
            other => other,
        }
    }

    /// Every stored document, unredacted.
    pub async fn list_documents(&self) -> Result<Vec<Value>, StoreError> {
        match self.store.all_docs(ACCOUNT_TYPES_DB).await {
            Err(StoreError::NoDatabase(_)) => Ok(Vec::new()),
            other => other,
        }
    }

    /// Deletes a document; `false` when there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let Some(doc) = self.get_document(id).await? else {
            return Ok(false);
        };
        let rev = rev_of(&doc).unwrap_or_default().to_owned();
        self.store.delete(ACCOUNT_TYPES_DB, id, &rev).await?;
        self.remember(id, None);
        Ok(true)
    }
}

/// Associated data of a sealed client secret: the document it belongs to.
pub(crate) fn secret_aad(id: &str) -> String {
    format!("account_type/{id}/client_secret")
}

impl Classified for LookupError {
    fn kind(&self) -> ErrorKind {
        match self {
            LookupError::NotFound(_) => ErrorKind::NotFound,
            LookupError::Invalid { .. } => ErrorKind::Misconfigured,
            LookupError::Store(s) => s.kind(),
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            LookupError::NotFound(_) => ErrorCode::UnknownAccountType,
            LookupError::Invalid { .. } => ErrorCode::InvalidAccountType,
            LookupError::Store(s) => s.code(),
        }
    }
}

impl Classified for WriteError {
    fn kind(&self) -> ErrorKind {
        match self {
            WriteError::Invalid(_) => ErrorKind::Invalid,
            WriteError::Conflict => ErrorKind::Conflict,
            WriteError::Store(s) => s.kind(),
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            WriteError::Invalid(_) => ErrorCode::InvalidAccountType,
            WriteError::Conflict => ErrorCode::Conflict,
            WriteError::Store(s) => s.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;
    use crate::store::{Changes, Selector, Store};
    use async_trait::async_trait;
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// The embedded store, with reads that count and a switch that makes it unavailable.
    struct Flaky {
        inner: EmbeddedStore,
        down: AtomicBool,
        gets: AtomicUsize,
    }

    impl Flaky {
        fn check(&self) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                Err(StoreError::Unavailable("cut".into()))
            } else {
                Ok(())
            }
        }
    }

    #[async_trait]
    impl Store for Flaky {
        async fn ping(&self) -> Result<(), StoreError> {
            self.check()
        }
        async fn ensure_db(&self, db: &str) -> Result<(), StoreError> {
            self.check()?;
            self.inner.ensure_db(db).await
        }
        async fn get(&self, db: &str, id: &str) -> Result<Option<Value>, StoreError> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.check()?;
            self.inner.get(db, id).await
        }
        async fn put(&self, db: &str, doc: &Value) -> Result<String, StoreError> {
            self.check()?;
            self.inner.put(db, doc).await
        }
        async fn delete(&self, db: &str, id: &str, rev: &str) -> Result<(), StoreError> {
            self.check()?;
            self.inner.delete(db, id, rev).await
        }
        async fn all_docs(&self, db: &str) -> Result<Vec<Value>, StoreError> {
            self.check()?;
            self.inner.all_docs(db).await
        }
        async fn docs_in_range(
            &self,
            db: &str,
            prefix: &str,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<Value>, StoreError> {
            self.check()?;
            self.inner.docs_in_range(db, prefix, after, limit).await
        }
        async fn find(
            &self,
            db: &str,
            selector: &Selector,
            limit: usize,
        ) -> Result<Vec<Value>, StoreError> {
            self.check()?;
            self.inner.find(db, selector, limit).await
        }
        async fn changes(
            &self,
            db: &str,
            since: &Value,
            wait: Duration,
        ) -> Result<Changes, StoreError> {
            self.check()?;
            self.inner.changes(db, since, wait).await
        }
    }

    #[tokio::test]
    async fn a_known_type_is_served_from_the_cache_even_through_a_store_blip() {
        let dir = tempfile::tempdir().unwrap();
        let flaky = Arc::new(Flaky {
            inner: EmbeddedStore::open(dir.path()).unwrap(),
            down: AtomicBool::new(false),
            gets: AtomicUsize::new(0),
        });
        flaky.ensure_db(ACCOUNT_TYPES_DB).await.unwrap();
        flaky
            .put(
                ACCOUNT_TYPES_DB,
                &json!({"_id": "svc", "grant_mode": "authorization_code", "client_id": "c",
                        "auth_endpoint": "https://p.example/a"}),
            )
            .await
            .unwrap();
        let types = AccountTypes::new(flaky.clone(), Arc::new(Keyring::parse("").unwrap()));
        types.lookup("svc", None).await.unwrap();
        let after_first = flaky.gets.load(Ordering::SeqCst);
        for _ in 0..10 {
            types.lookup("svc", None).await.unwrap();
        }
        assert_eq!(
            flaky.gets.load(Ordering::SeqCst),
            after_first,
            "a cached type costs no store read"
        );
        flaky.down.store(true, Ordering::SeqCst);
        assert_eq!(types.lookup("svc", None).await.unwrap().id, "svc");
        // An unknown one still asks the store, and says it is down.
        assert!(matches!(
            types.lookup("other", None).await,
            Err(LookupError::Store(StoreError::Unavailable(_)))
        ));
        // A context's overload, known to be absent, is not asked for again either.
        flaky.down.store(false, Ordering::SeqCst);
        types.lookup("svc", Some("ctx")).await.unwrap();
        flaky.down.store(true, Ordering::SeqCst);
        assert_eq!(types.lookup("svc", Some("ctx")).await.unwrap().id, "svc");
    }
}
