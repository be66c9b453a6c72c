//! How cozy-stack authenticates its clients, from what it stores in CouchDB
//! (`shared/spec/cozy-auth.md`): session cookies, JWTs, instance keys, sessions and
//! permission sets. Pure functions; the store reads the documents.

pub mod cookie;
pub mod jwt;
pub mod keys;
pub mod permission;
pub mod session;

pub use jwt::{Audience, CozyClaims, JwtError};
pub use keys::InstanceKeys;
pub use permission::{AccountRef, PermissionSet};
pub use session::Session;
