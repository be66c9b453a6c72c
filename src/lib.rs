//! oauth-broker: OAuth for cozy konnectors, compatible with cozy-stack's clients and
//! CouchDB layout.
//!
//! Layers, inner to outer (ARCHITECTURE.md; `tests/layering.rs` keeps them so):
//! `domain` ← `oauth`, `store`, `catalogue`, `config`, `metrics`, `webhooks` ← `app` ←
//! `http`, `tasks`, `cli`, `dev`, `startup`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod app;
mod catalogue;
pub mod cli;
pub mod config;
mod dev;
pub mod domain;
pub mod http;
mod metrics;
pub mod oauth;
pub mod reference;
pub mod startup;
pub mod store;
mod tasks;
mod telemetry;
pub mod webhooks;
