//! Route handlers, one module per route family: parse, call the application, render.

pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod probes;
pub(crate) mod redirect;
pub(crate) mod start;
