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
