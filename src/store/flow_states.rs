//! Flow states: sealed into the `state` at `start` (no write), spent at the redirect by
//! creating one document in `broker/flow_states`, which only one redirect can do.

use super::{SharedStore, StoreError, FLOW_STATES_DB, KEYS_DB};
use crate::domain::error_kind::{Classified, ErrorKind};
use crate::domain::flow_state::{Binding, FlowSeal, OpenedFlow, SealedFlow};
use crate::domain::flow_wire::TooLong;
use crate::domain::ErrorCode;
use crate::domain::{FlowState, StateRejection, Timestamp};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use serde_json::json;
use std::sync::Arc;

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

/// The document (in `broker/keys`) holding the flow key of a broker without encryption keys.
const KEY_DOC: &str = "flow-state-key";

/// Begins and spends flows.
#[derive(Clone)]
pub struct FlowStates {
    store: SharedStore,
    seal: Arc<FlowSeal>,
}

impl FlowStates {
    /// Flow states sealed with `seal`, spent in the store.
    pub fn new(store: SharedStore, seal: Arc<FlowSeal>) -> FlowStates {
        FlowStates { store, seal }
    }

    /// The flow key of a broker without encryption keys: drawn by the first replica to
    /// start and read by every other (and after a restart), from the store they share.
    pub async fn stored_key(store: &SharedStore) -> Result<[u8; 32], StoreError> {
        for _ in 0..3 {
            if let Some(doc) = store.get(KEYS_DB, KEY_DOC).await? {
                let raw = doc["key"]
                    .as_str()
                    .and_then(|k| STANDARD.decode(k).ok())
                    .filter(|k| k.len() == 32)
                    .ok_or_else(|| {
                        StoreError::Invalid(format!("{KEYS_DB}/{KEY_DOC} is damaged"))
                    })?;
                let mut key = [0u8; 32];
                key.copy_from_slice(&raw);
                return Ok(key);
            }
            let mut key = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut key);
            let doc = json!({"_id": KEY_DOC, "key": STANDARD.encode(key)});
            match store.put(KEYS_DB, &doc).await {
                Ok(_) => return Ok(key),
                // Another replica drew one first: use theirs.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "the flow key could not be read nor created".into(),
        ))
    }

    /// Seals a flow into its `state` (no store access); `TooLong` past 256 characters.
    pub fn begin(&self, flow: &FlowState) -> Result<SealedFlow, TooLong> {
        self.seal.seal(flow)
    }

    /// Opens a presented state and checks it, except for its binding, without spending
    /// it: the redirect reads where a flow whose cookie did not come back belongs.
    pub fn peek(
        &self,
        presented: &str,
        service_id: &str,
        now: Timestamp,
    ) -> Result<OpenedFlow, StateRejection> {
        let opened = self.seal.open(presented)?;
        opened.check(service_id, now.unix_secs(), Binding::Confirmed)?;
        Ok(opened)
    }

    /// Opens and checks a presented state (and the browser's binding), then spends it
    /// (one create-only write); a second spend is a replay. A refused state, or one the
    /// store failed to spend, stays good.
    pub async fn consume(
        &self,
        presented: &str,
        service_id: &str,
        now: Timestamp,
        binding: Binding<'_>,
    ) -> Result<OpenedFlow, ConsumeError> {
        let opened = self.seal.open(presented)?;
        opened.check(service_id, now.unix_secs(), binding)?;
        // Kept until well after the state expires (the sweeper), and no state outlives
        // its `expires_at`, so the document exists for as long as the state could be used.
        let spent = json!({
            "_id": opened.spent_id,
            "expires_at": opened.flow.expires_at,
            "used": true,
        });
        match self.store.put(FLOW_STATES_DB, &spent).await {
            Ok(_) => Ok(opened),
            Err(StoreError::Conflict) => Err(StateRejection::Replayed.into()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Classified for ConsumeError {
    fn kind(&self) -> ErrorKind {
        match self {
            ConsumeError::Rejected(r) => r.kind(),
            ConsumeError::Store(s) => s.kind(),
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            ConsumeError::Rejected(r) => r.code(),
            ConsumeError::Store(s) => s.code(),
        }
    }
}
