//! Node.js scripts of the tests (the real clients' own code), run off the test's
//! runtime, which also drives the broker's store connections.

use std::path::PathBuf;

/// `node tests/<script> <args…>` with `envs`; its standard output. Panics, with both
/// outputs, when it fails.
pub async fn run(script: &str, args: Vec<String>, envs: Vec<(&'static str, String)>) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", script]
        .iter()
        .collect();
    let mut node = std::process::Command::new("node");
    node.arg(path).args(args).envs(envs);
    let out = tokio::task::spawn_blocking(move || node.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
