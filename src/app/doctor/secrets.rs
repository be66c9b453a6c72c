//! Every sealed secret (account types' client secrets, registered clients' secrets)
//! opens with the configured keys.

use super::{Finding, Report};
use crate::domain::registered_client::{aad as client_aad, SECRET_MEMBERS};
use crate::domain::sealed::{is_sealed, Keyring};
use crate::store::account_types::secret_aad;
use crate::store::{inspect, Store};
use serde_json::Value;

/// Every sealed secret (account types' client secrets, registered clients' secrets)
/// opens with the configured keys.
pub(super) async fn check(
    store: &dyn Store,
    types: &[Value],
    keyring: &Keyring,
    report: &mut Report,
) {
    let mut sealed = 0;
    let mut unreadable = Vec::new();
    let mut check = |value: Option<&str>, aad: String, what: String| {
        if let Some(v) = value.filter(|v| is_sealed(v)) {
            sealed += 1;
            if keyring.open(v, &aad).is_err() {
                unreadable.push(what);
            }
        }
    };
    match inspect::registered_client_docs(store).await {
        Ok(clients) => {
            for t in types {
                let id = t["_id"].as_str().unwrap_or_default();
                check(
                    t["client_secret"].as_str(),
                    secret_aad(id),
                    format!("account type {id}"),
                );
            }
            for c in &clients {
                let id = c["_id"].as_str().unwrap_or_default();
                for m in SECRET_MEMBERS {
                    check(
                        c[m].as_str(),
                        client_aad(id, m),
                        format!("registered client {id} ({m})"),
                    );
                }
            }
        }
        Err(e) => {
            report.findings.push(Finding::error(
                "stored secrets",
                format!("could not be read: {e}"),
            ));
            return;
        }
    }
    report.findings.push(if unreadable.is_empty() {
        Finding::ok("stored secrets", format!("{sealed} sealed, all open"))
    } else {
        Finding::error(
            "stored secrets",
            format!(
                "{} of {sealed} sealed secrets do not open with the configured keys ({}): put \
                 the key they were sealed with back in encryption_keys",
                unreadable.len(),
                unreadable.join(", ")
            ),
        )
        .about("encryption_keys")
    });
}
