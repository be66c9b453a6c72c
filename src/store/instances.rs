//! Instances in `global/instances`, in cozy-stack's shape.

use super::{put_creating_db, Selector, SharedStore, StoreError, INSTANCES_DB};
use crate::domain::error_kind::{Classified, ErrorKind};
use crate::domain::{Domain, Instance};
use serde_json::{json, Value};

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
}

impl Instances {
    /// Instances over the store.
    pub fn new(store: SharedStore) -> Instances {
        Instances { store }
    }

    /// Adds an instance; its document id is its domain, so a second add conflicts.
    pub async fn add(&self, domain: Domain, context: Option<String>) -> Result<Instance, AddError> {
        if self.get(&domain).await?.is_some() {
            return Err(AddError::Exists(domain.to_string()));
        }
        let inst = Instance::new(domain, context);
        let mut doc = json!({"_id": inst.domain.as_str(), "domain": inst.domain.as_str(), "prefix": inst.prefix});
        if let Some(c) = &inst.context {
            doc["context"] = c.clone().into();
        }
        match put_creating_db(self.store.as_ref(), INSTANCES_DB, &doc).await {
            Ok(_) => Ok(inst),
            Err(StoreError::Conflict) => Err(AddError::Exists(inst.domain.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// The instance of a domain: by id for the broker's documents, by `domain` for cozy-stack's.
    pub async fn get(&self, domain: &Domain) -> Result<Option<Instance>, StoreError> {
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
    Some(Instance {
        domain,
        prefix,
        context,
    })
}

impl Classified for AddError {
    fn kind(&self) -> ErrorKind {
        match self {
            AddError::Exists(_) => ErrorKind::Conflict,
            AddError::Store(s) => s.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AddError::Exists(_) => "conflict",
            AddError::Store(s) => s.code(),
        }
    }
}
