//! The reference pages of `docs/reference/` are written by the binary from the code's own
//! tables (settings, error codes, routes, metrics, the command line): these fail when a
//! page on disk is not what the code says, and when a page links to a file that is gone.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generated(page: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
        .args(["reference", page])
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
fn every_reference_page_is_the_generated_one() {
    for page in ["settings", "errors", "routes", "metrics", "cli"] {
        let path = root().join(format!("docs/reference/{page}.md"));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk.trim_end() == generated(page).trim_end(),
            "docs/reference/{page}.md is stale: run `cargo run -- reference --write docs/reference`"
        );
    }
}

#[test]
fn an_unknown_reference_page_is_refused_naming_the_pages() {
    let out = Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
        .args(["reference", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("settings, errors, routes"));
}

/// Relative Markdown links of a file: `](path)` and `](path#anchor)`.
fn links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|l| !l.starts_with("http") && !l.starts_with('#') && !l.starts_with("mailto:"))
        .map(|l| l.split('#').next().unwrap().to_owned())
        .collect()
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            markdown_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "md") {
            out.push(p);
        }
    }
}

#[test]
fn every_link_of_the_readme_and_the_docs_leads_to_a_file() {
    let mut files = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    markdown_files(&root().join("docs"), &mut files);
    let mut broken = Vec::new();
    for f in &files {
        for l in links(&std::fs::read_to_string(f).unwrap()) {
            if !f.parent().unwrap().join(&l).exists() {
                broken.push(format!("{} -> {l}", f.display()));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn the_readme_stays_short() {
    let lines = std::fs::read_to_string(root().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(
        lines < 250,
        "README.md has {lines} lines: move the rest into docs/"
    );
}

#[test]
fn every_code_the_broker_can_send_is_in_the_error_reference() {
    // The codes are an enum; a code written as a string somewhere else would not be.
    let page = std::fs::read_to_string(root().join("docs/reference/errors.md")).unwrap();
    for code in [
        "token_not_allowed",
        "not_client_credentials",
        "not_registering",
        "invalid_limit",
        "invalid_since",
        "state_replayed",
    ] {
        assert!(page.contains(&format!("`{code}`")), "{code}");
    }
}
