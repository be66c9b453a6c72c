#![allow(dead_code)]

//! What a test needs from outside `cargo`: a server or a tool that `scripts/test.sh`
//! installs and starts. A bare `cargo test` skips such tests and says so once per group,
//! naming the command that runs them; `scripts/test.sh` sets `BROKER_TEST_REQUIRE_ALL`, so
//! there a missing one fails the test and CI can never pass by skipping.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// The value of `var`, or `None` after saying (once per process) that the tests needing
/// `what` are skipped. Panics instead when every test must run.
pub fn env(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            skip(&format!("{var} is not set"), what);
            None
        }
    }
}

/// Whether `program` runs (`program --version`), else `false` after saying so.
pub fn program(program: &str, what: &str) -> bool {
    let runs = std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        skip(&format!("{program} is not on the PATH"), what);
    }
    runs
}

fn skip(missing: &str, what: &str) {
    assert!(
        std::env::var_os("BROKER_TEST_REQUIRE_ALL").is_none_or(|v| v.is_empty()),
        "{missing}, and scripts/test.sh runs every test: the tests needing {what} cannot be skipped"
    );
    static SAID: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let first = SAID
        .get_or_init(Default::default)
        .lock()
        .map(|mut s| s.insert(missing.to_owned()))
        .unwrap_or(false);
    if first {
        // Straight to stderr: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: the tests needing {what} ({missing}); scripts/test.sh runs them"
        );
    }
}
