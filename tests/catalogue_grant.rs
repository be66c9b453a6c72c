//! The catalogue against Grant 5.4's provider list (`config/oauth.json` of the npm package
//! `grant`, which `scripts/test.sh` installs): a template whose authorization or token URL
//! differs from Grant's must say why (`template.grant_differs`), a reason must not outlive
//! the difference, and every Grant OAuth 2 provider has a template or a line in
//! `account_types/grant-not-templated.tsv` saying why not.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

#[path = "common/needs.rs"]
mod needs;

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Grant's list: `BROKER_TEST_GRANT_OAUTH_JSON` (`scripts/test.sh` installs npm grant
/// 5.4.24); `None` without it (a bare `cargo test`).
fn grant() -> Option<Map<String, Value>> {
    let path = PathBuf::from(needs::env(
        "BROKER_TEST_GRANT_OAUTH_JSON",
        "Grant's provider list (npm grant)",
    )?);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "Grant's oauth.json not found at {} ({e}): run scripts/test.sh, which installs npm grant 5.4.24 \
             and sets BROKER_TEST_GRANT_OAUTH_JSON",
            path.display()
        )
    });
    Some(serde_json::from_str(&text).expect("Grant's oauth.json is JSON"))
}

fn templates(dir: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let doc: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            out.insert(doc["_id"].as_str().unwrap().to_owned(), doc);
        }
    }
    out
}

fn not_templated(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(dir.join("grant-not-templated.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, why) = l.split_once('\t').expect("name<TAB>reason");
            (name.to_owned(), why.to_owned())
        })
        .collect()
}

/// Every disagreement between the catalogue in `dir` and Grant's list, and how many
/// providers both hold.
fn disagreements(dir: &Path, grant: &Map<String, Value>) -> (Vec<String>, usize) {
    let templates = templates(dir);
    let excluded = not_templated(dir);
    let mut out = Vec::new();
    let mut shared = 0;
    for (name, t) in &templates {
        let Some(g) = grant.get(name) else { continue };
        shared += 1;
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let reason = t["template"].get("grant_differs").and_then(Value::as_str);
        let mut differs = Vec::new();
        if g.get("oauth").and_then(Value::as_u64) != Some(2) {
            differs.push(format!("Grant lists it as OAuth {}", g["oauth"]));
        } else {
            for (ours, theirs) in [
                ("auth_endpoint", "authorize_url"),
                ("token_endpoint", "access_url"),
            ] {
                if s(t, ours) != s(g, theirs) {
                    differs.push(format!(
                        "{ours} {:?}, Grant's {theirs} {:?}",
                        s(t, ours),
                        s(g, theirs)
                    ));
                }
            }
            if let Some(gd) = s(g, "scope_delimiter") {
                if s(t, "scope_delimiter").as_deref() != Some(gd.as_str()) {
                    differs.push(format!(
                        "scope_delimiter {:?}, Grant's {gd:?}",
                        s(t, "scope_delimiter")
                    ));
                }
            }
        }
        match (differs.is_empty(), reason) {
            (false, None) => out.push(format!(
                "{name}: {} and no template.grant_differs saying why",
                differs.join("; ")
            )),
            (true, Some(r)) => out.push(format!(
                "{name}: agrees with Grant, yet template.grant_differs says {r:?} (stale reason)"
            )),
            _ => {}
        }
        if excluded.contains_key(name) {
            out.push(format!(
                "{name}: has a template and a line in grant-not-templated.tsv"
            ));
        }
    }
    for (name, g) in grant {
        if g.get("oauth").and_then(Value::as_u64) == Some(2)
            && !templates.contains_key(name)
            && !excluded.contains_key(name)
        {
            out.push(format!(
                "{name}: Grant's OAuth 2 provider has no template and no line in grant-not-templated.tsv"
            ));
        }
    }
    for name in excluded.keys() {
        if grant
            .get(name)
            .and_then(|g| g.get("oauth"))
            .and_then(Value::as_u64)
            != Some(2)
        {
            out.push(format!(
                "{name}: in grant-not-templated.tsv but not a Grant OAuth 2 provider"
            ));
        }
    }
    (out, shared)
}

#[test]
fn every_template_agrees_with_grant_or_says_why() {
    let Some(grant) = grant() else {
        return;
    };
    let (found, shared) = disagreements(&root().join("account_types"), &grant);
    assert!(found.is_empty(), "{}", found.join("\n"));
    // Most of the catalogue comes from Grant's list: a small overlap means a wrong file.
    assert!(shared >= 150, "only {shared} templates are in Grant's list");
}

/// Copies the catalogue so a test can tamper with it.
fn copy_catalogue() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("account_types")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn edit(dir: &Path, name: &str, f: impl FnOnce(&mut Value)) {
    let path = dir.join(format!("{name}.json"));
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut doc);
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

#[test]
fn a_token_url_moved_without_a_reason_is_caught() {
    let Some(grant) = grant() else {
        return;
    };
    let dir = copy_catalogue();
    edit(dir.path(), "github", |d| {
        d["token_endpoint"] = "https://github.example/login/oauth/access_token".into()
    });
    let (found, _) = disagreements(dir.path(), &grant);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("github: token_endpoint"), "{found:?}");
}

#[test]
fn a_reason_left_after_the_urls_agree_again_is_caught() {
    let Some(grant) = grant() else {
        return;
    };
    let dir = copy_catalogue();
    edit(dir.path(), "slack", |d| {
        d["auth_endpoint"] = grant["slack"]["authorize_url"].clone();
        d["token_endpoint"] = grant["slack"]["access_url"].clone();
    });
    let (found, _) = disagreements(dir.path(), &grant);
    assert!(
        found.iter().any(|f| f.contains("stale reason")),
        "{found:?}"
    );
}

#[test]
fn a_grant_provider_dropped_silently_is_caught() {
    let Some(grant) = grant() else {
        return;
    };
    let dir = copy_catalogue();
    std::fs::remove_file(dir.path().join("strava.json")).unwrap();
    let (found, _) = disagreements(dir.path(), &grant);
    assert_eq!(
        found,
        ["strava: Grant's OAuth 2 provider has no template and no line in grant-not-templated.tsv"]
    );
}
