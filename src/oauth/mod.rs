//! The OAuth protocol: authorization URL, token requests, token replies.
//!
//! Secrets travel in `oauth2`'s newtypes, whose `Debug` is redacted. The token request
//! itself is built here rather than by `oauth2`'s client, because cozy-stack's token
//! modes (`get`, `state` and `nonce` on the exchange, form-encoded and loosely typed
//! replies) lie outside what that builder can express.

pub mod authorize;
pub mod go_query;
pub mod id_token;
pub mod provider;
pub mod provider_request;
pub mod registration;
pub mod resolver;
pub mod token_reply;

pub use authorize::authorization_url;
pub use provider::{ProviderClient, ProviderError};
pub use provider_request::ProviderRequest;
