//! Konnector accounts in `<prefix>/io-cozy-accounts`.

use super::cozy_realtime::{CozyRealtime, Verb};
use super::{put_creating_db, Selector, SharedStore, StoreError};
use crate::domain::account::Account;
use crate::domain::sealed::{is_sealed, Keyring, SealError};
use crate::domain::secret::{random_hex, sha256_hex};
use crate::domain::Instance;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How many times an update re-reads and re-applies itself after a conflict.
const CONFLICT_RETRIES: usize = 5;
/// How many times a new account is written when the store does not answer.
const CREATE_ATTEMPTS: u32 = 5;

/// Reads and writes one instance's accounts.
#[derive(Clone)]
pub struct Accounts {
    store: SharedStore,
    keyring: Arc<Keyring>,
    seal_refresh_tokens: bool,
    /// cozy-stack's realtime, told of every write when configured.
    realtime: Option<Arc<CozyRealtime>>,
}

/// Whether `id` can name an account (not a design document, bounded); others are absent.
fn is_account_id(id: &str) -> bool {
    !id.is_empty() && !id.starts_with('_') && id.len() <= 256
}

impl Accounts {
    /// Accounts over the store.
    pub fn new(store: SharedStore, keyring: Arc<Keyring>, seal_refresh_tokens: bool) -> Accounts {
        Accounts {
            store,
            keyring,
            seal_refresh_tokens,
            realtime: None,
        }
    }

    /// The same, telling cozy-stack's realtime of every write.
    pub fn with_realtime(mut self, realtime: Option<Arc<CozyRealtime>>) -> Accounts {
        self.realtime = realtime;
        self
    }

    fn announce(&self, inst: &Instance, verb: Verb, doc: &Value, old: Option<&Value>) {
        if let Some(r) = &self.realtime {
            r.announce(inst, verb, doc, old);
        }
    }

    /// Seals a plaintext refresh token, when refresh tokens are sealed.
    fn seal(&self, inst: &Instance, id: &str, doc: &mut Account) {
        if !self.seal_refresh_tokens {
            return;
        }
        let plain = doc.refresh_token().filter(|s| !is_sealed(s));
        if let Some(sealed) = plain.and_then(|rt| self.keyring.seal(rt, &refresh_aad(inst, id))) {
            doc.set_refresh_token(sealed);
        }
    }

    /// The account's refresh token, opened when sealed.
    pub fn refresh_token(
        &self,
        inst: &Instance,
        doc: &Account,
    ) -> Result<Option<String>, SealError> {
        self.open_refresh_token(inst, doc)
            .map(|o| o.map(|(t, _)| t))
    }

    /// The refresh token opened, and whether it was sealed the old way (bound to the
    /// account id only, before the instance was named in the associated data).
    fn open_refresh_token(
        &self,
        inst: &Instance,
        doc: &Account,
    ) -> Result<Option<(String, bool)>, SealError> {
        let id = doc.id();
        let Some(rt) = doc.refresh_token() else {
            return Ok(None);
        };
        match self.keyring.open(rt, &refresh_aad(inst, id)) {
            Ok(t) => Ok(Some((t, false))),
            Err(e @ SealError::Damaged) => match self.keyring.open(rt, &legacy_refresh_aad(id)) {
                Ok(t) => Ok(Some((t, true))),
                Err(_) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Re-seals the refresh tokens of an instance's accounts with the newest key (and
    /// seals plaintext ones when refresh tokens are sealed); returns how many changed and
    /// the accounts whose token could not be opened (id, why), which are left as they are.
    pub async fn reseal_all(
        &self,
        inst: &Instance,
    ) -> Result<(usize, Vec<(String, String)>), StoreError> {
        let docs = match self.store.all_docs(&inst.accounts_db()).await {
            Err(StoreError::NoDatabase(_)) => return Ok((0, Vec::new())),
            other => other?,
        };
        let mut changed = 0;
        let mut failed = Vec::new();
        for doc in docs.into_iter().filter_map(|d| Account::try_from(d).ok()) {
            if !self.needs_reseal(inst, &doc) {
                continue;
            }
            let id = doc.id().to_owned();
            if let Err(e) = self.refresh_token(inst, &doc) {
                failed.push((id, format!("refresh token: {e}")));
                continue;
            }
            // Computed from the document as it is at each write, so a refresh that lands
            // meanwhile is re-sealed rather than overwritten with the token read before.
            self.update_with(inst, doc, |d| {
                if !self.needs_reseal(inst, d) {
                    return;
                }
                if let Ok(Some(plain)) = self.refresh_token(inst, d) {
                    if let Some(v) = self.keyring.seal(&plain, &refresh_aad(inst, &id)) {
                        d.set_refresh_token(v);
                    }
                }
            })
            .await?;
            changed += 1;
        }
        Ok((changed, failed))
    }

    fn needs_reseal(&self, inst: &Instance, doc: &Account) -> bool {
        match doc.refresh_token() {
            Some(rt) if is_sealed(rt) => {
                self.keyring.needs_reseal(rt)
                    || matches!(self.open_refresh_token(inst, doc), Ok(Some((_, true))))
            }
            Some(_) => self.seal_refresh_tokens,
            None => false,
        }
    }

    /// Writes a refresh's `members` into account `id`, unless its refresh token is no longer
    /// the one the refresh used (`used`, by its SHA-256): then another refresh stored a
    /// newer pair, which is kept. Conflicting writes are re-read and checked again.
    /// `known` is the account as just read, if it was: the first attempt writes over it
    /// without reading again.
    pub async fn apply_if_unchanged(
        &self,
        inst: &Instance,
        id: &str,
        used: &str,
        members: &serde_json::Map<String, Value>,
        mut known: Option<Account>,
    ) -> Result<Applied, StoreError> {
        let db = inst.accounts_db();
        for _ in 0..CONFLICT_RETRIES {
            let read = match known.take() {
                Some(doc) => Some(doc),
                None => self.get(inst, id).await?,
            };
            let Some(mut doc) = read else {
                return Ok(Applied::Gone);
            };
            let current = self
                .refresh_token(inst, &doc)
                .map_err(|e| StoreError::Invalid(format!("account `{id}`: {e}")))?
                .map(|t| sha256_hex(&t))
                .unwrap_or_default();
            if current != used {
                return Ok(Applied::Superseded(doc));
            }
            let before = self.realtime.is_some().then(|| doc.document().clone());
            doc.apply_members(members);
            self.seal(inst, id, &mut doc);
            match self.store.put(&db, doc.document()).await {
                Ok(rev) => {
                    doc.set_rev(&rev);
                    self.announce(inst, Verb::Updated, doc.document(), before.as_ref());
                    return Ok(Applied::Written(doc));
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }

    /// An account by id; `None` when missing (or when the database does not exist yet).
    pub async fn get(&self, inst: &Instance, id: &str) -> Result<Option<Account>, StoreError> {
        if !is_account_id(id) {
            return Ok(None);
        }
        match self.store.get(&inst.accounts_db(), id).await {
            Err(StoreError::NoDatabase(_)) => Ok(None),
            other => other?.map(parsed).transpose(),
        }
    }

    /// Accounts by id, in one request; the ones missing are left out.
    pub async fn get_many(
        &self,
        inst: &Instance,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Account>, StoreError> {
        let ids: Vec<String> = ids.iter().filter(|id| is_account_id(id)).cloned().collect();
        let docs = match self.store.get_many(&inst.accounts_db(), &ids).await {
            Err(StoreError::NoDatabase(_)) => return Ok(Default::default()),
            other => other?,
        };
        Ok(ids
            .into_iter()
            .zip(docs)
            .filter_map(|(id, doc)| Some((id, Account::try_from(doc?).ok()?)))
            .collect())
    }

    /// Every account of an instance (design documents left out).
    pub async fn all(&self, inst: &Instance) -> Result<Vec<Account>, StoreError> {
        match self.store.all_docs(&inst.accounts_db()).await {
            Ok(docs) => Ok(docs
                .into_iter()
                .filter_map(|d| Account::try_from(d).ok())
                .filter(|a| !a.id().is_empty() && !a.id().starts_with('_'))
                .collect()),
            Err(StoreError::NoDatabase(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Deletes an account at the revision read.
    pub async fn delete(&self, inst: &Instance, doc: &Account) -> Result<(), StoreError> {
        self.store
            .delete(&inst.accounts_db(), doc.id(), doc.rev().unwrap_or_default())
            .await?;
        let gone = serde_json::json!({"_id": doc.id(), "_deleted": true});
        self.announce(inst, Verb::Deleted, &gone, Some(doc.document()));
        Ok(())
    }

    /// Creates an account, creating the database if needed (cozy-stack's `createDocOrDB`).
    /// The id is drawn here (32 hex, like CouchDB's) so that a write whose answer was lost
    /// can be retried without creating a second account: its tokens cannot be had again.
    pub async fn create(&self, inst: &Instance, doc: &Account) -> Result<String, StoreError> {
        self.create_with_id(inst, &Self::new_id(), doc).await
    }

    /// A fresh account id (128 random bits, hex, as cozy-stack's).
    pub fn new_id() -> String {
        random_hex(16)
    }

    /// [`Accounts::create`] under an id drawn beforehand with [`Accounts::new_id`], so that
    /// what refers to the account can be written beside it.
    pub async fn create_with_id(
        &self,
        inst: &Instance,
        id: &str,
        doc: &Account,
    ) -> Result<String, StoreError> {
        let id = id.to_owned();
        let mut doc = doc.clone();
        doc.set_id(&id);
        doc.clear_rev();
        self.seal(inst, &id, &mut doc);
        let doc = Value::from(doc);
        let db = inst.accounts_db();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match put_creating_db(self.store.as_ref(), &db, &doc).await {
                Ok(rev) => {
                    if self.realtime.is_some() {
                        let mut stored = doc.clone();
                        stored["_rev"] = rev.into();
                        self.announce(inst, Verb::Created, &stored, None);
                    }
                    return Ok(id);
                }
                // Our earlier attempt may have landed, only its answer lost; but on a
                // cluster a conflict can also come from the one copy an attempt that
                // failed reached (a copy about to go down), so only a read says so.
                Err(StoreError::Conflict) if attempt > 1 => {
                    if self.store.get(&db, &id).await?.is_some() {
                        return Ok(id);
                    }
                    StoreError::Unavailable("the account is not readable after its write".into())
                }
                Err(e) => e,
            };
            match failure {
                StoreError::Unavailable(e) if attempt < CREATE_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "account write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                e => return Err(e),
            }
        }
    }

    /// The account of a type whose stored redirect query has this `connection_id`.
    pub async fn find_by_connection_id(
        &self,
        inst: &Instance,
        account_type: &str,
        connection_id: &str,
    ) -> Result<Option<Account>, StoreError> {
        let selector = Selector::And(vec![
            Selector::Eq("account_type", account_type.into()),
            Selector::Contains("oauth.query.connection_id", connection_id.into()),
        ]);
        match self.store.find(&inst.accounts_db(), &selector, 1).await {
            Ok(mut docs) => docs.pop().map(parsed).transpose(),
            Err(StoreError::NoDatabase(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An account of `account_type` whose user at the provider is `subject` and that
    /// waits for its user to reconnect it.
    pub async fn find_reconnect_needed(
        &self,
        inst: &Instance,
        account_type: &str,
        subject: &str,
    ) -> Result<Option<Account>, StoreError> {
        let selector = Selector::And(vec![
            Selector::Eq("account_type", account_type.into()),
            Selector::Eq(crate::domain::account::PROVIDER_SUBJECT, subject.into()),
        ]);
        match self.store.find(&inst.accounts_db(), &selector, 20).await {
            Ok(docs) => Ok(docs
                .into_iter()
                .map(parsed)
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .find(Account::reconnect_needed)),
            Err(StoreError::NoDatabase(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Applies `change` to `doc` and saves it; on a conflict, re-reads the account and
    /// applies the change again, so a concurrent edit of other fields is kept.
    pub async fn update_with(
        &self,
        inst: &Instance,
        mut doc: Account,
        change: impl Fn(&mut Account),
    ) -> Result<Account, StoreError> {
        let db = inst.accounts_db();
        let id = doc.id().to_owned();
        for _ in 0..CONFLICT_RETRIES {
            let before = self.realtime.is_some().then(|| doc.document().clone());
            change(&mut doc);
            self.seal(inst, &id, &mut doc);
            match self.store.put(&db, doc.document()).await {
                Ok(rev) => {
                    doc.set_rev(&rev);
                    self.announce(inst, Verb::Updated, doc.document(), before.as_ref());
                    return Ok(doc);
                }
                Err(StoreError::Conflict) => {
                    tracing::info!(account = %id, "account changed during the update; re-applying");
                    doc = parsed(
                        self.store
                            .get(&db, &id)
                            .await?
                            .ok_or(StoreError::Conflict)?,
                    )?;
                    if doc.rev().is_none() {
                        return Err(StoreError::Conflict);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }
}

/// What became of a refresh's tokens.
#[derive(Debug)]
pub enum Applied {
    /// Written; the account as stored.
    Written(Account),
    /// Another refresh stored newer tokens first; the account as it is.
    Superseded(Account),
    /// The account is gone.
    Gone,
}

/// A stored document as an account; one that is not an object is refused, not used.
fn parsed(doc: Value) -> Result<Account, StoreError> {
    Account::try_from(doc).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Associated data of a sealed refresh token: the account it belongs to.
fn refresh_aad(inst: &Instance, id: &str) -> String {
    format!("account/{}/{id}/refresh_token", inst.domain)
}

/// The associated data tokens were sealed with before it named the instance.
fn legacy_refresh_aad(id: &str) -> String {
    format!("account/{id}/refresh_token")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Domain;
    use crate::store::embedded::EmbeddedStore;
    use serde_json::json;

    fn key(id: &str, byte: u8) -> String {
        use base64::Engine;
        format!(
            "{id}:{}",
            base64::engine::general_purpose::STANDARD.encode([byte; 32])
        )
    }

    #[tokio::test]
    async fn a_sealed_refresh_token_is_bound_to_its_instance_and_old_seals_are_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let store: SharedStore = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let ring = Arc::new(Keyring::parse(&key("k1", 1)).unwrap());
        let accounts = Accounts::new(store.clone(), ring.clone(), true);
        let alice = Instance::new(Domain::parse("alice.example").unwrap(), None);
        let bob = Instance::new(Domain::parse("bob.example").unwrap(), None);
        for inst in [&alice, &bob] {
            store.ensure_db(&inst.accounts_db()).await.unwrap();
        }
        let id = "same-id";
        let doc =
            Account::try_from(json!({"_id": id, "oauth": {"refresh_token": "alice-rt"}})).unwrap();
        let mut sealed = doc.clone();
        accounts.seal(&alice, id, &mut sealed);
        assert_eq!(
            accounts.refresh_token(&alice, &sealed).unwrap().as_deref(),
            Some("alice-rt")
        );
        // Copied into another instance's account of the same id, it does not open.
        assert!(accounts.refresh_token(&bob, &sealed).is_err());

        // A token sealed before the instance was bound still opens, and rotation moves it.
        let old = ring.seal("legacy-rt", &legacy_refresh_aad(id)).unwrap();
        let legacy = json!({"_id": id, "oauth": {"refresh_token": old}});
        store.put(&alice.accounts_db(), &legacy).await.unwrap();
        let stored = accounts.get(&alice, id).await.unwrap().unwrap();
        assert_eq!(
            accounts.refresh_token(&alice, &stored).unwrap().as_deref(),
            Some("legacy-rt")
        );
        let (changed, failed) = accounts.reseal_all(&alice).await.unwrap();
        assert_eq!((changed, failed.len()), (1, 0));
        let moved = accounts.get(&alice, id).await.unwrap().unwrap();
        let rt = moved.refresh_token().unwrap();
        assert!(ring.open(rt, &refresh_aad(&alice, id)).is_ok());
        assert!(ring.open(rt, &legacy_refresh_aad(id)).is_err());
    }
}
