//! Dependencies point inward (ARCHITECTURE.md): every module of `src/` may use only the
//! modules this table allows, `domain` uses nothing else of the crate, and only the
//! outer layers name actix. Run alone: `cargo test --test layering`.

#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may use, besides itself.
const ALLOWED: &[(&str, &[&str])] = &[
    // Plain types and rules.
    ("domain", &[]),
    // The protocol, storage and other infrastructure over domain.
    ("oauth", &["domain"]),
    ("store", &["domain"]),
    ("catalogue", &["domain"]),
    ("config", &["domain"]),
    ("metrics", &[]),
    ("webhooks", &["domain", "store"]),
    // Use cases.
    (
        "app",
        &["domain", "oauth", "store", "config", "metrics", "webhooks"],
    ),
    // The outer layers: they use the application, never each other, except the wiring.
    ("http", &["domain", "app", "oauth"]),
    ("tasks", &["domain", "app", "store", "webhooks"]),
    ("dev", &["domain", "oauth"]),
    ("telemetry", &["config"]),
    ("startup", &["domain", "app", "config", "http", "tasks"]),
    // The generated reference pages read the tables the code keeps.
    ("reference", &["domain", "config", "http", "metrics"]),
    (
        "cli",
        &[
            "domain",
            "app",
            "catalogue",
            "config",
            "dev",
            "reference",
            "startup",
            "telemetry",
        ],
    ),
];

/// Modules that may name actix (they serve HTTP).
const ACTIX: &[&str] = &["http", "startup", "dev"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/`: `src/app/flows.rs` → `["app", "flows"]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Code without comments, so that prose may name any module.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules a file names through `crate::` or `super::` paths.
fn uses(module: &[String], code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes = code.as_bytes();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if boundary && rest.starts_with("crate::") {
            let after = &rest["crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name = ident(item.trim());
                    if !name.is_empty() {
                        found.insert(name);
                    }
                }
            } else {
                found.insert(ident(after));
            }
            i += "crate::".len();
            continue;
        }
        if boundary && rest.starts_with("super::") {
            // Climb as many levels as `super::` repeats, from the file's module.
            let mut depth = 0;
            let mut tail = rest;
            while let Some(t) = tail.strip_prefix("super::") {
                depth += 1;
                tail = t;
            }
            let base = module.len().saturating_sub(depth);
            let top = if base == 0 {
                ident(tail)
            } else {
                module[0].clone()
            };
            found.insert(top);
            i += "super::".len() * depth;
            continue;
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    found
}

#[test]
fn dependencies_point_inward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let module = module_path(&src, file);
        let Some(top) = module.first().filter(|t| *t != "lib" && *t != "main") else {
            continue;
        };
        let Some(may) = allowed.get(top.as_str()) else {
            broken.push(format!(
                "{}: module `{top}` is not in the layering table of tests/layering.rs",
                file.display()
            ));
            continue;
        };
        let code = code_of(&std::fs::read_to_string(file).expect("readable"));
        // Names that are not top-level modules are items of the file's own inline modules
        // (`use super::*` in `mod tests`).
        let modules = uses(&module, &code)
            .into_iter()
            .filter(|u| allowed.contains_key(u.as_str()));
        for used in modules {
            if used != *top && !may.contains(&used.as_str()) {
                broken.push(format!(
                    "{}: `{top}` uses `crate::{used}`, which the layering forbids",
                    file.display()
                ));
            }
        }
        if !ACTIX.contains(&top.as_str()) && code.contains("actix") {
            broken.push(format!(
                "{}: `{top}` names actix; only {ACTIX:?} serve HTTP",
                file.display()
            ));
        }
    }
    assert!(broken.is_empty(), "\n{}", broken.join("\n"));
}

/// The database names a file's code uses: the store's constants (`FLOW_STATES_DB`,
/// `BROKER_DBS`) and literal names of the broker's and cozy's global databases.
fn database_names(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for word in code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if (word.ends_with("_DB") || word.ends_with("_DBS")) && word.len() > 3 {
            found.push(word.to_owned());
        }
    }
    for literal in ["\"broker/", "\"global/", "\"secrets/"] {
        if code.contains(literal) {
            found.push(literal.trim_start_matches('"').to_owned());
        }
    }
    found
}

#[test]
fn only_the_store_names_a_database() {
    // One repository per database, in `store/`: elsewhere a database is reached through
    // it. (An instance's own databases are named by cozy's rule, `Instance::db`.)
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let module = module_path(&src, file);
        if module.first().is_some_and(|m| m == "store") {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(file).expect("readable"));
        for name in database_names(&code) {
            broken.push(format!("{}: names database `{name}`", file.display()));
        }
    }
    assert!(broken.is_empty(), "\n{}", broken.join("\n"));
}

#[test]
fn the_database_check_sees_constants_and_literals() {
    assert_eq!(
        database_names("use crate::store::{sweep, FLOW_STATES_DB};"),
        ["FLOW_STATES_DB"]
    );
    assert_eq!(
        database_names("store.get(\"broker/keys\", id)"),
        ["broker/"]
    );
    assert!(database_names("let db = inst.accounts_db();").is_empty());
}

#[test]
fn the_check_sees_crate_super_and_grouped_paths() {
    let m = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let found = uses(
        &m(&["app", "flows"]),
        "use crate::{http::x, store};\nuse super::Error;\nlet a = crate::tasks::b();",
    );
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["app", "http", "store", "tasks"]
    );
    // From a file at the top, `super::` is the crate root.
    assert!(uses(&m(&["webhooks"]), "use super::http::Y;").contains("http"));
    assert!(code_of("let x = 1; // crate::http in prose")
        .find("http")
        .is_none());
}
