//! Each account type's provider hosts resolve, and to addresses the SSRF rules let the
//! broker reach.

use super::{Finding, Report};
use crate::config::Settings;
use crate::domain::account_type::AccountType;
use crate::oauth::resolver::DnsPolicy;
use serde_json::Value;
use std::net::IpAddr;
use std::time::Duration;
use url::Url;

/// How long one provider host may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Each account type's provider hosts resolve, and to addresses the SSRF rules let the
/// broker reach.
pub(super) async fn check(settings: &Settings, types: &[Value], report: &mut Report) {
    let policy = crate::app::dns_policy(settings);
    let mut checked = 0;
    let mut problems = Vec::new();
    for doc in types {
        let id = doc["_id"].as_str().unwrap_or_default().to_owned();
        let at = match AccountType::from_document(doc) {
            Ok(at) => at,
            Err(e) => {
                problems.push(Finding::error(
                    format!("account type {id}"),
                    format!("invalid: {e}"),
                ));
                continue;
            }
        };
        let endpoints = [
            ("auth_endpoint", &at.auth_endpoint),
            ("token_endpoint", &at.token_endpoint),
        ];
        for (field, url) in endpoints {
            // `{provider_url}` comes with each account; nothing to resolve yet.
            let templated = doc[field]
                .as_str()
                .is_some_and(|s| s.contains("{provider_url}"));
            let Some(url) = url.as_ref().filter(|_| !templated) else {
                continue;
            };
            checked += 1;
            if let Some((problem, setting)) = host_problem(&policy, url).await {
                let finding =
                    Finding::error(format!("account type {id}"), format!("{field}: {problem}"));
                problems.push(match setting {
                    Some(s) => finding.about(s),
                    None => finding,
                });
            }
        }
    }
    if problems.is_empty() {
        report.findings.push(Finding::ok(
            "provider hosts",
            format!(
                "{checked} endpoints of {} account types resolve to reachable addresses",
                types.len()
            ),
        ));
    }
    report.findings.extend(problems);
}

/// Why the broker could not reach `url`'s host, if it could not, and the setting that
/// would let it.
async fn host_problem(policy: &DnsPolicy, url: &Url) -> Option<(String, Option<&'static str>)> {
    let host = url
        .host_str()?
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => match tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
            Ok(Err(e)) => return Some((format!("{host} does not resolve: {e}"), None)),
            Err(_) => {
                return Some((
                    format!("{host} does not resolve within {RESOLVE_TIMEOUT:?}"),
                    None,
                ))
            }
        },
    };
    let refused: Vec<String> = addresses
        .iter()
        .filter(|ip| !policy.allows(&host, **ip))
        .map(IpAddr::to_string)
        .collect();
    if addresses.is_empty() {
        Some((format!("{host} resolves to no address"), None))
    } else if !refused.is_empty() {
        Some((
            format!(
                "{host} resolves to {}, which the SSRF rules refuse: list it in \
                 provider_private_hosts if it is yours",
                refused.join(", ")
            ),
            Some("provider_private_hosts"),
        ))
    } else {
        None
    }
}
