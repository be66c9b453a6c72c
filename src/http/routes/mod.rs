//! Route handlers, one module per route family.

pub mod accounts;
pub mod admin;
pub mod health;
pub mod redirect;
pub mod refresh;
pub mod start;
pub mod status;
