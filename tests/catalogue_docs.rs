//! The template lists (account_types/README.md, docs/operators/account-types.md) are written by the binary from the templates, never by
//! hand: these fail when a template was added, moved or renamed without writing them again.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn listed(format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
        .args(["account-types", "templates", "--format", format])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_catalogue_readme_is_the_generated_one() {
    let on_disk = std::fs::read_to_string(root().join("account_types/README.md")).unwrap();
    assert!(
        on_disk == listed("catalogue"),
        "account_types/README.md is stale: run `cargo run -- account-types templates --format catalogue > account_types/README.md`"
    );
}

#[test]
fn the_account_types_page_lists_the_templates_by_category_with_counts() {
    let readme = std::fs::read_to_string(root().join("docs/operators/account-types.md")).unwrap();
    let generated = listed("markdown");
    let generated = generated.trim_end();
    let begin = generated.lines().next().unwrap();
    let start = readme
        .find(begin)
        .expect("docs/operators/account-types.md has the templates:begin marker");
    let end_marker = generated.lines().last().unwrap();
    let end = readme[start..]
        .find(end_marker)
        .expect("docs/operators/account-types.md has the templates:end marker")
        + start
        + end_marker.len();
    assert!(
        &readme[start..end] == generated,
        "docs/operators/account-types.md's template list is stale: replace the part between the templates markers with \
         `cargo run -- account-types templates --format markdown`"
    );
    // What the list claims is what the catalogue holds.
    let count: usize = generated
        .split("**")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(count >= 250, "{count}");
}
