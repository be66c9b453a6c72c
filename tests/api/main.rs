//! Black-box tests of the broker's HTTP API, each run on CouchDB and on the embedded store.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

#[path = "../common/mod.rs"]
mod common;
use common::helpers;

mod admin;
mod bad_input;
mod budget_insight;
mod client_credentials;
mod cozy_flow;
mod cozy_login;
mod cozy_realtime;
mod cozy_tokens;
mod health;
mod keys;
mod newest_grant;
mod operators;
mod processes;
mod reconnect_by_start;
mod redirect;
mod refresh;
mod refresher;
mod registration;
mod revoke;
mod routes;
mod start;
mod store;
mod store_faults;
mod trust;
mod webhooks;
