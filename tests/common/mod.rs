//! Test code shared by the test binaries and the benchmarks: `spawn_app()` and friends,
//! and a played registering provider. Each binary uses part of it.
#![allow(dead_code)]

pub mod cozy_stack;
pub mod helpers;
pub mod idp;
pub mod needs;
pub mod node;
pub mod registering_provider;
