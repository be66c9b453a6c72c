//! The CouchDB store against a CouchDB played on loopback, for the answers a real cluster
//! gives only in a race (202, a lost read-back) and for the ones it gives when it is
//! broken (409, 412, 415, 500, 503, a body cut short). `tests/cluster.rs` plays the races
//! on a real cluster; here each answer is chosen.

use oauth_broker::store::couch::CouchStore;
use oauth_broker::store::{Store, StoreError, FLOW_STATES_DB};
use serde_json::json;
use std::time::Duration;
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SPENT: &str = "/broker%2Fflow_states/abc";

/// A played CouchDB whose databases keep `n` copies, and a store on it.
async fn played_cluster(n: u32) -> (MockServer, CouchStore) {
    let couch = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/broker%2F[a-z_]+$"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"db_name": "x", "cluster": {"n": n, "q": 2, "w": 2, "r": 2}}),
            ),
        )
        .mount(&couch)
        .await;
    let store = CouchStore::new(&couch.uri(), Duration::from_secs(2), "").unwrap();
    (couch, store)
}

fn accepted(status: u16, rev: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"ok": true, "id": "abc", "rev": rev}))
}

/// The document as the read-back of every copy sees it.
async fn read_back_winner(couch: &MockServer, rev: &str) {
    Mock::given(method("GET"))
        .and(path(SPENT))
        .and(query_param("r", "3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"_id": "abc", "_rev": rev})))
        .mount(couch)
        .await;
}

async fn deletions_of(couch: &MockServer, rev: &str) -> usize {
    couch
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "DELETE" && r.url.query() == Some(&format!("rev={rev}")))
        .count()
}

#[tokio::test]
async fn a_spend_accepted_by_too_few_copies_that_lost_the_read_back_is_a_replay() {
    let (couch, store) = played_cluster(3).await;
    Mock::given(method("PUT"))
        .and(path(SPENT))
        .respond_with(accepted(202, "1-aaa"))
        .mount(&couch)
        .await;
    read_back_winner(&couch, "1-bbb").await;
    let spent = store
        .put(FLOW_STATES_DB, &json!({"_id": "abc", "used": true}))
        .await;
    assert_eq!(spent, Err(StoreError::Conflict), "another spend won");
    assert_eq!(
        deletions_of(&couch, "1-aaa").await,
        1,
        "the losing revision is removed"
    );
}

#[tokio::test]
async fn a_spend_answered_201_still_needs_the_read_back() {
    // 201 from two copies, yet a third writer's revision wins on every copy (the race a
    // real cluster showed): the 201 is not a decision.
    let (couch, store) = played_cluster(3).await;
    Mock::given(method("PUT"))
        .and(path(SPENT))
        .respond_with(accepted(201, "1-aaa"))
        .mount(&couch)
        .await;
    read_back_winner(&couch, "1-fff").await;
    assert_eq!(
        store
            .put(FLOW_STATES_DB, &json!({"_id": "abc", "used": true}))
            .await,
        Err(StoreError::Conflict)
    );
}

#[tokio::test]
async fn a_spend_that_wins_the_read_back_counts_only_with_a_majority_decision_record() {
    for (record_status, expected) in [
        (201, Ok("1-aaa".to_owned())),
        (202, Err(StoreError::Conflict)),
        (409, Err(StoreError::Conflict)),
    ] {
        let (couch, store) = played_cluster(3).await;
        Mock::given(method("PUT"))
            .and(path(SPENT))
            .respond_with(accepted(202, "1-aaa"))
            .mount(&couch)
            .await;
        read_back_winner(&couch, "1-aaa").await;
        Mock::given(method("PUT"))
            .and(path("/broker%2Fdecisions/broker%2Fflow_states%2Fabc%401"))
            .and(query_param("w", "2"))
            .respond_with(accepted(record_status, "1-rec"))
            .mount(&couch)
            .await;
        let spent = store
            .put(FLOW_STATES_DB, &json!({"_id": "abc", "used": true}))
            .await;
        assert_eq!(spent, expected, "decision record answered {record_status}");
    }
}

#[tokio::test]
async fn on_a_single_node_an_answer_is_the_decision() {
    let (couch, store) = played_cluster(1).await;
    Mock::given(method("PUT"))
        .and(path(SPENT))
        .respond_with(accepted(201, "1-aaa"))
        .expect(1)
        .mount(&couch)
        .await;
    assert_eq!(
        store
            .put(FLOW_STATES_DB, &json!({"_id": "abc", "used": true}))
            .await,
        Ok("1-aaa".to_owned())
    );
    let asked: Vec<_> = couch.received_requests().await.unwrap();
    assert!(
        asked
            .iter()
            .all(|r| r.url.path() != "/broker%2Fdecisions/broker%2Fflow_states%2Fabc%401"),
        "no decision record on one copy"
    );
}

#[tokio::test]
async fn broken_answers_are_clear_errors_never_a_spend() {
    for (status, body) in [
        (409, r#"{"error":"conflict"}"#),
        (412, r#"{"error":"file_exists"}"#),
        (415, r#"{"error":"bad_content_type"}"#),
        (500, r#"{"error":"unknown_error"}"#),
        (503, r#"{"error":"service_unavailable"}"#),
        // Cut short: a 201 whose body never finished.
        (201, r#"{"ok":true,"id":"abc","re"#),
    ] {
        let (couch, store) = played_cluster(3).await;
        Mock::given(method("PUT"))
            .and(path(SPENT))
            .respond_with(ResponseTemplate::new(status).set_body_string(body))
            .mount(&couch)
            .await;
        let spent = store
            .put(FLOW_STATES_DB, &json!({"_id": "abc", "used": true}))
            .await;
        match status {
            409 => assert_eq!(spent, Err(StoreError::Conflict)),
            201 => assert!(matches!(spent, Err(StoreError::Invalid(_))), "{spent:?}"),
            _ => assert!(
                matches!(&spent, Err(StoreError::Unavailable(m)) if m.contains(&status.to_string())),
                "{status}: {spent:?}"
            ),
        }
    }
}
