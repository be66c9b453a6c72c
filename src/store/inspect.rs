//! What a CouchDB server says of itself and of the broker's databases, read without
//! writing anything (`oauth-broker doctor`, and the checks `serve` makes before it creates
//! what is missing).

use super::couch::CouchStore;
use reqwest::Method;
use serde_json::Value;

/// The server: its version and, when the credentials are an admin's, its nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `version` of `GET /`.
    pub version: String,
    /// `vendor.name` of `GET /`.
    pub vendor: String,
    /// Nodes of the cluster (`_membership`), when the credentials may read it.
    pub nodes: Option<usize>,
}

/// One database as the broker's credentials see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbState {
    /// There, with its copies (`n`), shards (`q`) and default quorums (`w`, `r`), and the
    /// names of its Mango indexes.
    Present {
        /// `cluster.n`.
        n: u64,
        /// `cluster.q`.
        q: u64,
        /// `cluster.w`.
        w: u64,
        /// `cluster.r`.
        r: u64,
        /// Index names (`_index`), the built-in `_all_docs` left out.
        indexes: Vec<String>,
    },
    /// Not created yet.
    Missing,
    /// The credentials may not read it (its `_security` leaves them out).
    Forbidden,
}

/// Why the server could not be inspected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// Nothing answered, or not in time.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The user name or password of the URL is refused.
    #[error("the user name or password is refused (HTTP 401)")]
    Unauthorized,
    /// It answered something else than CouchDB would.
    #[error("{0}")]
    Unexpected(String),
}

impl CouchStore {
    async fn get_json(&self, path: &str) -> Result<(u16, Value), InspectError> {
        let resp = self
            .client
            .req(Method::GET, path, None)
            .send()
            .await
            .map_err(|e| InspectError::Unreachable(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .json()
            .await
            .map_err(|e| InspectError::Unexpected(format!("{path}: HTTP {status}, {e}")))?;
        Ok((status, body))
    }

    /// `GET /` and, when allowed, `GET /_membership`.
    pub async fn server_info(&self) -> Result<ServerInfo, InspectError> {
        let (status, root) = self.get_json("").await?;
        match status {
            200 => {}
            401 => return Err(InspectError::Unauthorized),
            s => return Err(InspectError::Unexpected(format!("GET /: HTTP {s}"))),
        }
        let text = |p: &str| {
            root.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned()
        };
        let nodes = match self.get_json("_membership").await {
            Ok((200, m)) => m["all_nodes"].as_array().map(Vec::len),
            _ => None,
        };
        Ok(ServerInfo {
            version: text("/version"),
            vendor: text("/vendor/name"),
            nodes,
        })
    }

    /// The broker's database `db` (prefixed as the store prefixes it).
    pub async fn database_state(&self, db: &str) -> Result<DbState, InspectError> {
        let path = self.path(db);
        let (status, info) = self.get_json(&path).await?;
        match status {
            200 => {}
            404 => return Ok(DbState::Missing),
            401 => return Err(InspectError::Unauthorized),
            403 => return Ok(DbState::Forbidden),
            s => return Err(InspectError::Unexpected(format!("GET {db}: HTTP {s}"))),
        }
        let cluster = |k: &str| info["cluster"][k].as_u64().unwrap_or(1);
        let indexes = match self.get_json(&format!("{path}/_index")).await? {
            (200, list) => list["indexes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| i["type"] != "special")
                .filter_map(|i| i["name"].as_str().map(str::to_owned))
                .collect(),
            (403, _) => return Ok(DbState::Forbidden),
            (s, _) => {
                return Err(InspectError::Unexpected(format!(
                    "GET {db}/_index: HTTP {s}"
                )))
            }
        };
        Ok(DbState::Present {
            n: cluster("n"),
            q: cluster("q"),
            w: cluster("w"),
            r: cluster("r"),
            indexes,
        })
    }
}

/// One of the broker's databases as inspected, with what the broker expects of it.
#[derive(Debug)]
pub struct DatabaseReport {
    /// Its name (without the prefix).
    pub db: &'static str,
    /// What the server says of it.
    pub state: Result<DbState, InspectError>,
    /// The Mango indexes the broker creates on it (`by-<field>`).
    pub indexes: Vec<String>,
    /// Whether its reads and writes must meet a majority of copies (every database but
    /// the decision records, which are written at a majority on each request).
    pub needs_majority: bool,
}

impl CouchStore {
    /// Every database the broker uses, inspected concurrently.
    pub async fn broker_databases(&self) -> Vec<DatabaseReport> {
        futures::future::join_all(super::BROKER_DBS.iter().map(|db| async move {
            DatabaseReport {
                db,
                state: self.database_state(db).await,
                indexes: super::INDEXES
                    .iter()
                    .filter(|(d, _)| d == db)
                    .map(|(_, field)| format!("by-{field}"))
                    .collect(),
                needs_majority: *db != super::DECISIONS_DB,
            }
        }))
        .await
    }
}

/// How many databases the broker uses.
pub fn broker_database_count() -> usize {
    super::BROKER_DBS.len()
}

/// Up to `limit` documents of `db` (design documents left out), none when it does not
/// exist yet; read a page at a time, since CouchDB refuses a `limit` past `i64`.
async fn docs(
    store: &dyn super::Store,
    db: &str,
    limit: usize,
) -> Result<Vec<Value>, super::StoreError> {
    const PAGE: usize = 500;
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    while found.len() < limit {
        let page = match store
            .docs_in_range(db, "", after.as_deref(), PAGE.min(limit - found.len()))
            .await
        {
            Err(super::StoreError::NoDatabase(_)) => return Ok(Vec::new()),
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

/// Every account type document, as stored (client secrets sealed).
pub async fn account_type_docs(store: &dyn super::Store) -> Result<Vec<Value>, super::StoreError> {
    docs(store, super::ACCOUNT_TYPES_DB, usize::MAX).await
}

/// Every registered client document, as stored (secrets sealed).
pub async fn registered_client_docs(
    store: &dyn super::Store,
) -> Result<Vec<Value>, super::StoreError> {
    docs(store, super::REGISTERED_CLIENTS_DB, usize::MAX).await
}

/// The hosts sign-ins start on, from up to `limit` instances: their domains and aliases,
/// lower case, without a port.
pub async fn instance_hosts(
    store: &dyn super::Store,
    limit: usize,
) -> Result<crate::domain::cookie_scope::InstanceHosts, super::StoreError> {
    let instances = docs(store, super::INSTANCES_DB, limit).await?;
    let host_of = |h: &Value| {
        h.as_str()
            .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase())
            .filter(|h| !h.is_empty())
    };
    Ok(crate::domain::cookie_scope::InstanceHosts {
        domains: instances
            .iter()
            .filter_map(|i| host_of(&i["domain"]))
            .collect(),
        aliases: instances
            .iter()
            .flat_map(|i| i["domain_aliases"].as_array().cloned().unwrap_or_default())
            .filter_map(|h| host_of(&h))
            .collect(),
    })
}
