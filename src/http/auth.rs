//! Who is calling: admin token, instance API token, session code.

use super::error::AppError;
use super::rate_limit::Group;
use crate::broker::{now, Broker};
use crate::domain::secret::sha256_hex;
use crate::domain::{Domain, Instance};
use actix_web::http::header;
use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Checks the admin bearer token in constant time.
pub fn require_admin(req: &HttpRequest, broker: &Broker) -> Result<(), AppError> {
    // Limited before the token check, so the token cannot be guessed at speed.
    broker.rate_limits.check(Group::Admin, req)?;
    let expected = broker
        .admin_token
        .as_deref()
        .ok_or(AppError::AdminDisabled)?;
    let presented = bearer(req).ok_or(AppError::AdminUnauthorized)?;
    // Hashing first makes the comparison independent of the lengths.
    let same: bool = sha256_hex(presented)
        .as_bytes()
        .ct_eq(sha256_hex(expected).as_bytes())
        .into();
    if same {
        Ok(())
    } else {
        Err(AppError::AdminUnauthorized)
    }
}

/// The instance an API token acts for.
pub async fn instance_from_token(req: &HttpRequest, broker: &Broker) -> Result<Domain, AppError> {
    let token = bearer(req).ok_or(AppError::NoCredentials)?;
    broker
        .credentials
        .instance_for_api_token(token)
        .await?
        .ok_or(AppError::BadCredentials)
}

/// The instance (loaded) an API token acts for.
pub async fn token_instance(req: &HttpRequest, broker: &Broker) -> Result<Instance, AppError> {
    let domain = instance_from_token(req, broker).await?;
    broker
        .instances
        .get(&domain)
        .await?
        .ok_or(AppError::BadCredentials)
}

/// The instance `start` acts for: a one-time session code, else an API token.
pub async fn instance_for_start(
    req: &HttpRequest,
    session_code: Option<&str>,
    broker: &Broker,
) -> Result<Domain, AppError> {
    match session_code {
        Some(code) => broker
            .credentials
            .redeem_session_code(code, now())
            .await?
            .ok_or(AppError::BadCredentials),
        None => match instance_from_token(req, broker).await {
            Err(AppError::NoCredentials) => Err(AppError::LoginRequired),
            other => other,
        },
    }
}
