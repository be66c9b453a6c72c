//! The Store contract, identical on CouchDB (Apache CouchDB 3.5) and on the embedded store.

use crate::helpers::*;
use crate::{both_stores, every_store};
use oauth_broker::domain::Timestamp;
use oauth_broker::store::{sweep_expired, Selector, Store, StoreError};
use serde_json::json;
use std::time::Duration;

async fn store_for(b: Backend) -> (std::sync::Arc<dyn Store>, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = oauth_broker::app::open_store(&test_settings(b, dir.path()))
        .await
        .unwrap();
    let db = format!("test/{}", unique("db"));
    store.ensure_db(&db).await.unwrap();
    store.ensure_db(&db).await.unwrap();
    (store, dir, db)
}

async fn stale_revisions_conflict_and_ids_with_slashes_work(b: Backend) {
    let (s, _d, db) = store_for(b).await;
    let r1 = s
        .put(&db, &json!({"_id": "ctx/google", "v": 1}))
        .await
        .unwrap();
    assert_eq!(
        s.put(&db, &json!({"_id": "ctx/google", "v": 2})).await,
        Err(StoreError::Conflict)
    );
    let r2 = s
        .put(&db, &json!({"_id": "ctx/google", "_rev": r1, "v": 2}))
        .await
        .unwrap();
    assert_eq!(
        s.put(&db, &json!({"_id": "ctx/google", "_rev": r1, "v": 3}))
            .await,
        Err(StoreError::Conflict)
    );
    let doc = s.get(&db, "ctx/google").await.unwrap().unwrap();
    assert_eq!(
        (doc["v"].clone(), doc["_rev"].as_str().unwrap()),
        (json!(2), r2.as_str())
    );
    assert_eq!(
        s.delete(&db, "ctx/google", &r1).await,
        Err(StoreError::Conflict)
    );
    s.delete(&db, "ctx/google", &r2).await.unwrap();
    assert_eq!(s.get(&db, "ctx/google").await.unwrap(), None);
}

async fn a_missing_database_is_reported_not_created(b: Backend) {
    let (s, _d, _) = store_for(b).await;
    let db = format!("test/{}", unique("missing"));
    assert!(matches!(
        s.put(&db, &json!({"_id": "a"})).await,
        Err(StoreError::NoDatabase(_))
    ));
    assert_eq!(s.get(&db, "a").await.unwrap(), None);
}

async fn find_matches_equality_array_members_and_ranges(b: Backend) {
    let (s, _d, db) = store_for(b).await;
    s.put(
        &db,
        &json!({"_id": "a", "t": "g", "q": {"c": ["1750"]}, "n": 5}),
    )
    .await
    .unwrap();
    s.put(
        &db,
        &json!({"_id": "b", "t": "g", "q": {"c": ["9"]}, "n": 50}),
    )
    .await
    .unwrap();
    let by_conn = Selector::And(vec![
        Selector::Eq("t", json!("g")),
        Selector::Contains("q.c", json!("1750")),
    ]);
    let found = s.find(&db, &by_conn, 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["_id"], "a");
    assert_eq!(
        s.find(&db, &Selector::Lt("n", 10), 10).await.unwrap().len(),
        1
    );
}

async fn a_range_query_never_answers_documents_without_the_field(b: Backend) {
    // The refresh schedule keeps health records (no `due_at`) beside the plans: a page
    // of due plans must not be filled with them (pouchdb-server's `$lt` matched them).
    let (s, _d, db) = store_for(b).await;
    s.ensure_index(&db, "due_at").await.unwrap();
    let others: Vec<_> = (0..20)
        .map(|i| json!({"_id": format!("health/{i:02}"), "outcome": "ok"}))
        .collect();
    s.put_many(&db, &others).await.unwrap();
    s.put_many(
        &db,
        &[
            json!({"_id": "plan/a", "due_at": 10}),
            json!({"_id": "plan/b", "due_at": 20}),
            json!({"_id": "plan/late", "due_at": 1_000}),
            json!({"_id": "plan/text", "due_at": "5"}),
            json!({"_id": "plan/null", "due_at": null}),
        ],
    )
    .await
    .unwrap();
    let mut found: Vec<String> = s
        .find(&db, &Selector::Lt("due_at", 100), 2)
        .await
        .unwrap()
        .iter()
        .map(|d| d["_id"].as_str().unwrap().to_owned())
        .collect();
    found.sort();
    assert_eq!(found, ["plan/a", "plan/b"]);
}

async fn sweeping_removes_only_what_expired(b: Backend) {
    let (s, _d, db) = store_for(b).await;
    s.put(&db, &json!({"_id": "old", "expires_at": 100}))
        .await
        .unwrap();
    s.put(&db, &json!({"_id": "new", "expires_at": 10_000}))
        .await
        .unwrap();
    assert_eq!(
        sweep_expired(s.as_ref(), &db, Timestamp::from_unix_secs(5_000))
            .await
            .unwrap(),
        1
    );
    assert!(s.get(&db, "old").await.unwrap().is_none());
    assert!(s.get(&db, "new").await.unwrap().is_some());
}

async fn changes_report_writes_and_deletions_after_a_sequence(b: Backend) {
    let (s, _d, db) = store_for(b).await;
    let first = s
        .changes(&db, &json!(0), Duration::from_millis(300))
        .await
        .unwrap();
    assert!(first.changes.is_empty());
    let rev = s.put(&db, &json!({"_id": "x", "v": 1})).await.unwrap();
    let batch = s
        .changes(&db, &first.last_seq, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(batch.changes.len(), 1);
    assert_eq!(batch.changes[0].doc.as_ref().unwrap()["v"], 1);
    s.delete(&db, "x", &rev).await.unwrap();
    let gone = s
        .changes(&db, &batch.last_seq, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(gone.changes.len(), 1);
    assert!(gone.changes[0].doc.is_none());
}

async fn a_longpoll_longer_than_the_request_timeout_ends_normally(b: Backend) {
    // Every other request is bounded by `couchdb.timeout_secs` (1 s here); a quiet feed
    // asked to wait 3 s must end with no change, not as a broken body.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(b, dir.path());
    settings.couchdb.timeout_secs = 1;
    let s = oauth_broker::app::open_store(&settings).await.unwrap();
    let db = format!("test/{}", unique("quiet"));
    s.ensure_db(&db).await.unwrap();
    let now = s.changes(&db, &json!("now"), Duration::ZERO).await.unwrap();
    let quiet = s
        .changes(&db, &now.last_seq, Duration::from_secs(3))
        .await
        .expect("a quiet feed ends normally");
    assert!(quiet.changes.is_empty());
}

async fn many_documents_are_read_and_written_in_one_request_each(b: Backend) {
    let (s, _d, db) = store_for(b).await;
    let written = s
        .put_many(
            &db,
            &[
                json!({"_id": "a", "v": 1}),
                json!({"_id": "ctx/b", "v": 2}),
                json!({"_id": "gone", "v": 3}),
            ],
        )
        .await
        .unwrap();
    assert!(written.iter().all(Result::is_ok), "{written:?}");
    // A second creation of the same ids conflicts, one by one.
    let again = s
        .put_many(&db, &[json!({"_id": "a"}), json!({"_id": "new"})])
        .await
        .unwrap();
    assert_eq!(again[0], Err(StoreError::Conflict));
    assert!(again[1].is_ok());
    let gone_rev = written[2].clone().unwrap();
    assert_eq!(
        s.delete_many(&db, &[("gone".into(), gone_rev)]).await,
        Ok(1)
    );
    let ids: Vec<String> = ["ctx/b", "missing", "a", "gone"].map(String::from).to_vec();
    let read = s.get_many(&db, &ids).await.unwrap();
    assert_eq!(read.len(), 4);
    assert_eq!(read[0].as_ref().unwrap()["v"], 2);
    assert_eq!(read[0].as_ref().unwrap()["_id"], "ctx/b");
    assert!(read[0].as_ref().unwrap()["_rev"].is_string());
    assert_eq!(read[1], None, "missing");
    assert_eq!(read[2].as_ref().unwrap()["v"], 1);
    assert_eq!(read[3], None, "deleted");
    assert_eq!(
        s.get_many(&db, &[]).await.unwrap(),
        Vec::<Option<serde_json::Value>>::new()
    );
    // As `get`: nothing is found in a database that does not exist.
    assert_eq!(
        s.get_many(&format!("test/{}", unique("missing")), &ids)
            .await,
        Ok(vec![None; 4])
    );
}

every_store!(
    many_documents_are_read_and_written_in_one_request_each,
    stale_revisions_conflict_and_ids_with_slashes_work,
    a_missing_database_is_reported_not_created,
    find_matches_equality_array_members_and_ranges,
    sweeping_removes_only_what_expired,
    changes_report_writes_and_deletions_after_a_sequence,
);

/// Expired documents (flow states, session codes) cannot pile up: a sweep deletes all of
/// them, however many (100,000 on the embedded store; 20,000 on the CouchDB every
/// test shares, to keep it responsive for the others), and the embedded store keeps no
/// tombstone of them.
async fn one_sweep_clears_every_expired_state(b: Backend) {
    let (s, _d, db) = store_for(b).await;
    s.ensure_index(&db, "expires_at").await.unwrap();
    let expired = if b == Backend::Embedded {
        100_000
    } else {
        20_000
    };
    // In requests of 1,000: one of 5,000 could outlast the store's timeout on a loaded
    // machine.
    for chunk in 0..expired / 1_000 {
        let docs: Vec<_> = (0..1_000)
            .map(|i| json!({"_id": format!("s{chunk}-{i}"), "expires_at": 100, "used": false}))
            .collect();
        let written = s.put_many(&db, &docs).await.unwrap();
        let failed: Vec<_> = written.iter().filter(|w| w.is_err()).take(3).collect();
        assert!(failed.is_empty(), "{failed:?}");
    }
    let live: Vec<_> = (0..10)
        .map(|i| json!({"_id": format!("live-{i}"), "expires_at": 10_000}))
        .collect();
    s.put_many(&db, &live).await.unwrap();

    let swept = sweep_expired(s.as_ref(), &db, Timestamp::from_unix_secs(5_000))
        .await
        .unwrap();
    assert_eq!(swept, expired);
    assert!(s
        .find(&db, &Selector::Lt("expires_at", 5_000), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.all_docs(&db).await.unwrap().len(), 10);
    if b == Backend::Embedded {
        let feed = s.changes(&db, &json!(0), Duration::ZERO).await.unwrap();
        assert_eq!(feed.changes.len(), 10, "tombstones purged");
    }
}

both_stores!(one_sweep_clears_every_expired_state);
every_store!(a_range_query_never_answers_documents_without_the_field);
every_store!(a_longpoll_longer_than_the_request_timeout_ends_normally);

#[tokio::test]
async fn an_alias_lookup_is_answered_from_an_index_on_couchdb() {
    if !Backend::Couch.available() {
        return;
    }
    // The broker's own query for a host that may be an alias, planned by CouchDB itself.
    let settings = test_settings(Backend::Couch, std::path::Path::new("/nonexistent"));
    oauth_broker::app::open_store(&settings).await.unwrap();
    let selector = Selector::Contains("domain_aliases", json!("alias.example")).to_mango();
    let url = format!("{}/global%2Finstances/_explain", couch_url());
    let plan: serde_json::Value = reqwest::Client::new()
        .post(&url)
        .json(&json!({"selector": selector, "limit": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        plan["index"]["name"], "by-domain_aliases",
        "CouchDB would read every instance: {plan}"
    );
}
