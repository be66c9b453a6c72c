//! oauth-broker: OAuth for cozy konnectors, compatible with cozy-stack's clients and
//! CouchDB layout.

pub mod broker;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod dev;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod oauth;
pub mod refresh;
pub mod registration;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhooks;
