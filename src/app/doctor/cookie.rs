//! Where the binding cookie must come back: `start` sets it on the instance's host, the
//! redirect comes to the public URL's. The scope itself is the settings' decision
//! (`Settings::binding_cookie`, which `serve` uses too); this says what it is.

use super::{Finding, Report};
use crate::config::Settings;
use crate::store::Store;

/// The binding cookie's scope against the instance hosts.
pub async fn cookie(settings: &Settings, store: &dyn Store, report: &mut Report) {
    const CHECK: &str = "flow binding cookie";
    let found = match crate::app::binding_cookie(settings, store).await {
        Ok(cookie) => Finding::of_setting(CHECK, cookie.finding),
        Err(e) => Finding::warning(
            CHECK,
            format!("instances not readable ({e}): the cookie domain is not checked"),
        ),
    };
    report.findings.push(found);
}
