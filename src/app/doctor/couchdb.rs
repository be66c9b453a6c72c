//! CouchDB: reachable, the credentials taken, its version and nodes, and each of the
//! broker's databases with its copies, quorums and indexes.

use super::{couch_store, Finding, Report};
use crate::config::{redact_url, Settings};
use crate::store::inspect::{self, DbState, InspectError};

/// CouchDB: reachable, the credentials taken, its version and nodes, and each database
/// with its copies, quorums and indexes.
pub(super) async fn check(settings: &Settings, url: &str, at_start: bool, report: &mut Report) {
    let shown = redact_url(url);
    let store = match couch_store(settings, url) {
        Ok(s) => s,
        Err(e) => {
            report
                .findings
                .push(Finding::error("couchdb", e.to_string()).about("couchdb.url"));
            return;
        }
    };
    let server = match store.server_info().await {
        Ok(s) => s,
        Err(e) => {
            report.findings.push(unreachable_or_refused(&shown, &e));
            return;
        }
    };
    let major: u32 = server
        .version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let nodes = server.nodes.map_or_else(
        || "nodes not readable (not an admin)".to_owned(),
        |n| format!("{n} node(s)"),
    );
    let about = format!("{} {} at {shown}, {nodes}", server.vendor, server.version);
    report.findings.push(if major >= 3 {
        Finding::ok("couchdb", about)
    } else {
        Finding::warning(
            "couchdb",
            format!("{about}: the broker is tested on CouchDB 3"),
        )
        .about("couchdb.url")
    });
    let mut missing_dbs = Vec::new();
    for inspect::DatabaseReport {
        db,
        state,
        indexes: expected,
        needs_majority,
    } in store.broker_databases().await
    {
        let check = format!("database {}{db}", settings.couchdb.db_prefix);
        let finding = match state {
            Err(e) => unreachable_or_refused(&shown, &e),
            Ok(DbState::Forbidden) => Finding::error(
                check,
                "the CouchDB user of couchdb.url may not read it: add it to the database's \
                 _security members, or use another user",
            )
            .about("couchdb.url"),
            Ok(DbState::Missing) => {
                missing_dbs.push(db);
                continue;
            }
            Ok(DbState::Present {
                n,
                q,
                w,
                r,
                indexes,
            }) => {
                let missing: Vec<String> = expected
                    .into_iter()
                    .filter(|name| !indexes.contains(name))
                    .collect();
                let majority = n / 2 + 1;
                let shape = format!("n={n} q={q} w={w} r={r}");
                if n > 1 && (w < majority || r < majority) && needs_majority {
                    Finding::warning(
                        check,
                        format!(
                            "{shape}: w and r below a majority of {n} copies let a read miss \
                             a write the broker was told was made; keep [cluster] w and r at \
                             their defaults"
                        ),
                    )
                } else if !missing.is_empty() && !at_start {
                    Finding::warning(
                        check,
                        format!(
                            "{shape}; index {} missing: its queries read every document until \
                             `serve` creates it",
                            missing.join(", ")
                        ),
                    )
                } else if at_start {
                    continue;
                } else {
                    Finding::ok(check, shape)
                }
            }
        };
        report.findings.push(finding);
    }
    if !missing_dbs.is_empty() && !at_start {
        report.findings.push(Finding::warning(
            "databases",
            format!(
                "{} of {} not created yet (`serve` creates them): {}",
                missing_dbs.len(),
                inspect::broker_database_count(),
                missing_dbs.join(", ")
            ),
        ));
    }
}

fn unreachable_or_refused(shown: &str, e: &InspectError) -> Finding {
    let detail = match e {
        InspectError::Unreachable(why) => format!("nothing answers at {shown}: {why}"),
        InspectError::Unauthorized => {
            format!("{shown} refuses the user name or password (HTTP 401)")
        }
        InspectError::Unexpected(what) => format!("{shown} answers as CouchDB would not: {what}"),
    };
    Finding::error("couchdb", detail).about("couchdb.url")
}
