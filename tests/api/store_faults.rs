//! The CouchDB store against a CouchDB played on loopback, for the answers a real cluster
//! gives only in a race (202, a lost read-back) and for the ones it gives when it is
//! broken (409, 412, 415, 500, 503, a body cut short). `tests/cluster.rs` plays the races
//! on a real cluster; here each answer is chosen.

use oauth_broker::domain::account::Account;
use oauth_broker::domain::instance::{Domain, Instance};
use oauth_broker::domain::sealed::Keyring;
use oauth_broker::store::accounts::Accounts;
use oauth_broker::store::couch::CouchStore;
use oauth_broker::store::{Store, StoreError, FLOW_STATES_DB};
use serde_json::json;
use std::sync::Arc;
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

/// An instance's accounts database on a played cluster (`n` = 3), and its path.
async fn played_accounts_db(couch: &MockServer) -> (Instance, String) {
    let inst = Instance::new(Domain::parse("alice.cozy.example").unwrap(), None);
    let db_path = format!("/{}", inst.accounts_db().replace('/', "%2F"));
    Mock::given(method("GET"))
        .and(path(db_path.as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"db_name": "x", "cluster": {"n": 3, "q": 2, "w": 2, "r": 2}}),
            ),
        )
        .mount(couch)
        .await;
    (inst, db_path)
}

async fn puts(couch: &MockServer) -> usize {
    couch
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "PUT")
        .count()
}

/// What a cluster answers when a copy goes down mid-write: the failed attempt reached
/// only that copy, so the retry is refused as a conflict by it while no copy that stays
/// up has the account. The account is written again rather than announced.
#[tokio::test]
async fn an_account_create_refused_as_a_conflict_after_a_failed_attempt_is_written_again() {
    let (couch, store) = played_cluster(3).await;
    let (inst, db_path) = played_accounts_db(&couch).await;
    let doc_re = format!("^{db_path}/[0-9a-f]{{32}}$");
    let doc_path = || path_regex(doc_re.as_str());
    Mock::given(method("PUT"))
        .and(doc_path())
        .respond_with(ResponseTemplate::new(500).set_body_string(r#"{"error":"unknown_error"}"#))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&couch)
        .await;
    Mock::given(method("PUT"))
        .and(doc_path())
        .respond_with(ResponseTemplate::new(409).set_body_string(r#"{"error":"conflict"}"#))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&couch)
        .await;
    Mock::given(method("PUT"))
        .and(doc_path())
        .respond_with(accepted(201, "1-aaa"))
        .with_priority(3)
        .mount(&couch)
        .await;
    // Until the third write, no copy that answers has it; then every copy does.
    Mock::given(method("GET"))
        .and(doc_path())
        .and(query_param("r", "3"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"_id": "x", "_rev": "1-aaa"})),
        )
        .mount(&couch)
        .await;
    Mock::given(method("GET"))
        .and(doc_path())
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_string(r#"{"error":"not_found","reason":"missing"}"#),
        )
        .mount(&couch)
        .await;
    let accounts = Accounts::new(
        Arc::new(store),
        Arc::new(Keyring::parse("").unwrap()),
        false,
    );
    let created = accounts
        .create(
            &inst,
            &Account::try_from(json!({"account_type": "t", "oauth": {"access_token": "a"}}))
                .unwrap(),
        )
        .await;
    assert!(created.is_ok(), "{created:?}");
    assert_eq!(puts(&couch).await, 3, "written again after the conflict");
}

/// A write answered 202 (fewer copies than `w`) that no copy read back has is an error
/// the caller can retry, not a write.
#[tokio::test]
async fn an_account_write_accepted_but_read_back_by_no_copy_is_not_a_write() {
    let (couch, store) = played_cluster(3).await;
    let (inst, db_path) = played_accounts_db(&couch).await;
    let doc_path = format!("{db_path}/acc1");
    Mock::given(method("PUT"))
        .and(path(doc_path.as_str()))
        .respond_with(accepted(202, "1-aaa"))
        .mount(&couch)
        .await;
    Mock::given(method("GET"))
        .and(path(doc_path.as_str()))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_string(r#"{"error":"not_found","reason":"missing"}"#),
        )
        .mount(&couch)
        .await;
    let written = store
        .put(&inst.accounts_db(), &json!({"_id": "acc1", "oauth": {}}))
        .await;
    assert!(
        matches!(written, Err(StoreError::Unavailable(_))),
        "{written:?}"
    );
}
