//! Plain types and rules: no I/O, no framework types.

pub mod account;
pub mod account_health;
pub mod account_type;
pub mod changes;
pub mod cookie_scope;
pub mod cozy;
pub mod error_code;
pub mod error_kind;
pub mod expiry;
pub mod flow_state;
pub mod flow_wire;
pub mod grant_mode;
pub mod instance;
pub mod ip_block;
pub mod provider_url;
pub mod registered_client;
pub mod sealed;
pub mod secret;
pub mod slug;
pub mod time;
pub mod token_mode;
pub mod token_scope;

pub use account_type::{AccountType, AccountTypeError};
pub use error_code::ErrorCode;
pub use error_kind::{Classified, ErrorKind};
pub use flow_state::{FlowState, StateRejection};
pub use grant_mode::GrantMode;
pub use instance::{Domain, Instance, Scheme, Subdomains};
pub use slug::Slug;
pub use time::{Clock, Timestamp};
pub use token_mode::TokenMode;
pub use token_scope::TokenScope;
