//! Instances in `global/instances`, in cozy-stack's shape.

use super::cache::ChangesCache;
use super::{put_creating_db, Selector, SharedStore, StoreError, INSTANCES_DB};
use crate::domain::cozy::InstanceKeys;
use crate::domain::error_kind::{Classified, ErrorKind};
use crate::domain::ErrorCode;
use crate::domain::{Domain, Instance};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Hosts remembered at most; the table is emptied when full.
const MAX_CACHED_HOSTS: usize = 10_000;
/// How long a cached answer is trusted if the changes feed were to stall.
const HOST_CACHE_TTL: Duration = Duration::from_secs(60);
/// How long a changes-feed request waits for a change.
const CHANGES_WAIT: Duration = Duration::from_secs(25);

/// What a request's host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostLookup {
    /// The instance whose domain or alias it is.
    Found(Instance),
    /// An instance's old domain: the instance now lives at this domain.
    Moved(Domain),
    /// No instance.
    Unknown,
}

/// Why an instance could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddError {
    /// An instance with that domain exists.
    #[error("instance `{0}` already exists")]
    Exists(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads and writes instances.
#[derive(Clone)]
pub struct Instances {
    store: SharedStore,
    /// Lookups by host, forgotten on any change to `global/instances`.
    hosts: Arc<ChangesCache<HostLookup>>,
    /// Instances by domain, forgotten likewise.
    domains: Arc<ChangesCache<Option<Instance>>>,
}

impl Instances {
    /// Instances over the store.
    pub fn new(store: SharedStore) -> Instances {
        Instances {
            store,
            hosts: Arc::new(ChangesCache::new(MAX_CACHED_HOSTS, HOST_CACHE_TTL)),
            domains: Arc::new(ChangesCache::new(MAX_CACHED_HOSTS, HOST_CACHE_TTL)),
        }
    }

    /// The instance a request's `Host` names (domain or alias, IDNA, port tried with and
    /// without), or the instance that moved from it, as cozy-stack's `NeedInstance`.
    /// Answers are cached and forgotten on any change to `global/instances`.
    pub async fn by_host(&self, host: &str) -> Result<HostLookup, StoreError> {
        let candidates = host_candidates(host);
        let Some(key) = candidates.first().cloned() else {
            return Ok(HostLookup::Unknown);
        };
        self.hosts
            .get_or_load(&key, || self.look_up(&candidates))
            .await
    }

    /// Forgets every cached host and domain (any instance may have changed).
    fn forget_all(&self) {
        self.hosts.forget_all();
        self.domains.forget_all();
    }

    async fn look_up(&self, candidates: &[String]) -> Result<HostLookup, StoreError> {
        for host in candidates {
            for selector in [
                Selector::Eq("domain", host.as_str().into()),
                Selector::Contains("domain_aliases", host.as_str().into()),
            ] {
                if let Some(inst) = self.find_one(&selector).await?.as_ref().and_then(parse) {
                    return Ok(HostLookup::Found(inst));
                }
            }
        }
        for host in candidates {
            let moved = self
                .find_one(&Selector::Eq("old_domain", host.as_str().into()))
                .await?;
            if let Some(inst) = moved.as_ref().and_then(parse) {
                return Ok(HostLookup::Moved(inst.domain));
            }
        }
        Ok(HostLookup::Unknown)
    }

    async fn find_one(&self, selector: &Selector) -> Result<Option<Value>, StoreError> {
        match self.store.find(INSTANCES_DB, selector, 1).await {
            Ok(mut docs) => Ok(docs.pop()),
            Err(StoreError::NoDatabase(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits for changes to `global/instances` after `since` and forgets every cached
    /// host when there are any; returns the sequence to ask from next.
    pub async fn follow_changes(&self, since: Value) -> Result<Value, StoreError> {
        let batch = self
            .store
            .changes(INSTANCES_DB, &since, CHANGES_WAIT)
            .await?;
        if !batch.changes.is_empty() {
            self.forget_all();
        }
        Ok(batch.last_seq)
    }

    /// Adds an instance; its document id is its domain, so a second add conflicts.
    pub async fn add(&self, domain: Domain, context: Option<String>) -> Result<Instance, AddError> {
        if self.read(&domain).await?.is_some() {
            return Err(AddError::Exists(domain.to_string()));
        }
        let inst = Instance::new(domain, context);
        let mut doc = json!({"_id": inst.domain.as_str(), "domain": inst.domain.as_str(), "prefix": inst.prefix});
        if let Some(c) = &inst.context {
            doc["context"] = c.clone().into();
        }
        match put_creating_db(self.store.as_ref(), INSTANCES_DB, &doc).await {
            Ok(_) => {
                // In force here at once; other processes learn it from the changes feed.
                self.forget_all();
                Ok(inst)
            }
            Err(StoreError::Conflict) => Err(AddError::Exists(inst.domain.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// The instance of a domain (cached, forgotten on any change to `global/instances`).
    pub async fn get(&self, domain: &Domain) -> Result<Option<Instance>, StoreError> {
        self.domains
            .get_or_load(domain.as_str(), || self.read(domain))
            .await
    }

    /// The instance of a domain from the store: by id for the broker's documents, by
    /// `domain` for cozy-stack's.
    async fn read(&self, domain: &Domain) -> Result<Option<Instance>, StoreError> {
        let doc = match self.store.get(INSTANCES_DB, domain.as_str()).await {
            Ok(Some(d)) => Some(d),
            Ok(None) => self
                .store
                .find(
                    INSTANCES_DB,
                    &Selector::Eq("domain", domain.as_str().into()),
                    1,
                )
                .await?
                .pop(),
            Err(StoreError::NoDatabase(_)) => None,
            Err(e) => return Err(e),
        };
        Ok(doc.and_then(|d| parse(&d)))
    }

    /// Every instance.
    pub async fn list(&self) -> Result<Vec<Instance>, StoreError> {
        match self.store.all_docs(INSTANCES_DB).await {
            Ok(docs) => Ok(docs.iter().filter_map(parse).collect()),
            Err(StoreError::NoDatabase(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

fn parse(doc: &Value) -> Option<Instance> {
    let domain = Domain::parse(doc.get("domain")?.as_str()?).ok()?;
    // Old cozy instances have no prefix: the domain is the prefix then.
    let prefix = doc
        .get("prefix")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .map_or_else(|| domain.as_str().to_owned(), str::to_owned);
    let context = doc
        .get("context")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let strings = |field: &str| -> Vec<String> {
        doc.get(field)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(Instance {
        domain,
        prefix,
        context,
        aliases: strings("domain_aliases"),
        old_domain: doc
            .get("old_domain")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .map(str::to_ascii_lowercase),
        keys: InstanceKeys::from_document(doc),
        oidc_id: doc
            .get("oidc_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    })
}

/// The forms of a `Host` header to look up, best first: lowercased ASCII (IDNA) with its
/// port, the same without the port, then their Unicode forms when they differ.
fn host_candidates(host: &str) -> Vec<String> {
    let host = host.trim().trim_end_matches('.').to_lowercase();
    if host.is_empty()
        || host.len() > 300
        || !host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | ':'))
    {
        return Vec::new();
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (n, Some(p)),
        Some(_) => return Vec::new(),
        None => (host.as_str(), None),
    };
    let Ok(ascii) = idna::domain_to_ascii(name) else {
        return Vec::new();
    };
    let (unicode, _) = idna::domain_to_unicode(&ascii);
    let mut out = Vec::new();
    for n in [&ascii, &unicode] {
        if let Some(p) = port {
            out.push(format!("{n}:{p}"));
        }
        out.push(n.clone());
    }
    out.dedup();
    let mut seen = std::collections::HashSet::new();
    out.retain(|h| seen.insert(h.clone()));
    out
}

impl Classified for AddError {
    fn kind(&self) -> ErrorKind {
        match self {
            AddError::Exists(_) => ErrorKind::Conflict,
            AddError::Store(s) => s.kind(),
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            AddError::Exists(_) => ErrorCode::Conflict,
            AddError::Store(s) => s.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_tried_with_and_without_port_and_in_both_idna_forms() {
        assert_eq!(
            host_candidates("Alice.Cozy.Example:8443"),
            vec!["alice.cozy.example:8443", "alice.cozy.example"]
        );
        assert_eq!(
            host_candidates("café.example"),
            vec!["xn--caf-dma.example", "café.example"]
        );
        for bad in ["", "a b", "a/b", "a:b", "x@y"] {
            assert!(host_candidates(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn instance_documents_are_read_in_cozy_stack_shape() {
        let inst = parse(&json!({"domain": "alice.cozy.example", "prefix": "cozyab",
            "domain_aliases": ["Alias.Example"], "old_domain": "old.example",
            "session_secret": "AAEC"}))
        .unwrap();
        assert_eq!(inst.aliases, vec!["alias.example"]);
        assert_eq!(inst.issuers(), vec!["alice.cozy.example", "old.example"]);
        assert_eq!(inst.keys.session, vec![0, 1, 2]);
    }
}
