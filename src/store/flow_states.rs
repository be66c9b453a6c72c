//! Flow states in `broker/flow_states`: single use, expiring, shared by every replica.

use super::{SharedStore, StoreError, FLOW_STATES_DB};
use crate::domain::error_kind::{Classified, ErrorKind};
use crate::domain::secret::{random_hex, sha256_hex};
use crate::domain::{FlowState, StateRejection, Timestamp};
use serde_json::Value;

/// Why a presented state did not yield a flow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumeError {
    /// The state is refused.
    #[error(transparent)]
    Rejected(#[from] StateRejection),
    /// The store failed; the state may still be good.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Begins and consumes flows.
#[derive(Clone)]
pub struct FlowStates {
    store: SharedStore,
}

/// Length of a state: 32 random bytes, hex.
const STATE_HEX_LEN: usize = 64;

impl FlowStates {
    /// Flow states over the store.
    pub fn new(store: SharedStore) -> FlowStates {
        FlowStates { store }
    }

    /// Stores a flow and returns the `state` to send to the provider (one write).
    pub async fn begin(&self, flow: &FlowState) -> Result<String, StoreError> {
        let state = random_hex(STATE_HEX_LEN / 2);
        let mut doc = serde_json::to_value(flow).map_err(|e| StoreError::Invalid(e.to_string()))?;
        // Stored under its hash: reading the database does not yield usable states.
        doc["_id"] = sha256_hex(&state).into();
        self.store.put(FLOW_STATES_DB, &doc).await?;
        Ok(state)
    }

    /// Checks a presented state (and the browser's binding cookie) and marks it used; a
    /// second consumption is a replay. A refused state stays as it was.
    pub async fn consume(
        &self,
        presented: &str,
        service_id: &str,
        now: Timestamp,
        cookie: Option<&str>,
    ) -> Result<FlowState, ConsumeError> {
        if presented.len() != STATE_HEX_LEN || !presented.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StateRejection::Unknown.into());
        }
        let id = sha256_hex(&presented.to_ascii_lowercase());
        let doc = self
            .store
            .get(FLOW_STATES_DB, &id)
            .await?
            .ok_or(StateRejection::Unknown)?;
        let flow: FlowState =
            serde_json::from_value(strip_meta(&doc)).map_err(|_| StateRejection::Unknown)?;
        flow.check(service_id, now.unix_secs(), cookie)?;
        let mut used = doc.clone();
        used["used"] = true.into();
        match self.store.put(FLOW_STATES_DB, &used).await {
            Ok(_) => Ok(flow),
            // Another request consumed it between our read and our write.
            Err(StoreError::Conflict) => Err(StateRejection::Replayed.into()),
            Err(e) => Err(e.into()),
        }
    }
}

fn strip_meta(doc: &Value) -> Value {
    let mut d = doc.clone();
    if let Some(o) = d.as_object_mut() {
        o.remove("_id");
        o.remove("_rev");
    }
    d
}

impl Classified for ConsumeError {
    fn kind(&self) -> ErrorKind {
        match self {
            ConsumeError::Rejected(r) => r.kind(),
            ConsumeError::Store(s) => s.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ConsumeError::Rejected(r) => r.code(),
            ConsumeError::Store(s) => s.code(),
        }
    }
}
