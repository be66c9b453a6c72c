//! What operators look at: `accounts list`, `providers health` (a table, in colour on a
//! terminal) and `audit`.

use super::out;
use crate::app::account_health::Filter;
use crate::app::Services;
use crate::domain::account_health::{AccountHealth, ProviderHealth};
use crate::domain::time::parse_since;
use crate::domain::Timestamp;
use anyhow::Context;
use std::io::{IsTerminal, Write};

/// Whether to draw in colour: standard output is a terminal and `NO_COLOR` is unset.
fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` in an ANSI colour (`31` red, `32` green, `33` yellow) when `on`.
fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn when(secs: Option<i64>) -> String {
    secs.map_or_else(|| "-".into(), |s| Timestamp::from_unix_secs(s).to_rfc3339())
}

/// Prints one page of accounts and, on standard error, how to ask for the next.
pub(super) async fn list_accounts(
    s: &Services,
    filter: Filter,
    after: Option<String>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let page = s
        .admin
        .accounts_health(&filter, after.as_deref(), limit)
        .await?;
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"accounts": page.records, "next": page.next})
            )?
        );
        return Ok(());
    }
    let on = colour();
    out!("INSTANCE\tACCOUNT\tTYPE\tSTATE\tFAILURES\tLAST SUCCESS\tLAST ERROR");
    for h in &page.records {
        out!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            h.instance,
            h.account_id,
            h.account_type,
            state(on, h),
            h.consecutive_failures,
            when(h.last_success_at),
            h.last_error.as_deref().unwrap_or("-")
        );
    }
    if let Some(next) = &page.next {
        eprintln!("more: --after '{next}'");
    }
    Ok(())
}

fn state(on: bool, h: &AccountHealth) -> String {
    if h.reconnect_needed {
        paint(on, "31", "reconnect needed")
    } else if h.failing() {
        paint(on, "33", "failing")
    } else if !h.scope_missing.is_empty() {
        paint(on, "33", "scope missing")
    } else {
        paint(on, "32", "healthy")
    }
}

/// Prints each provider's health as a table (JSON with `json`).
pub(super) async fn providers_health(s: &Services, json: bool) -> anyhow::Result<()> {
    let providers = s.admin.providers_health().await?;
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "providers": providers }))?
        );
        return Ok(());
    }
    out!("{}", health_table(&providers, colour()));
    Ok(())
}

/// The `providers health` table: columns aligned, counts coloured when `on`.
pub fn health_table(providers: &[ProviderHealth], on: bool) -> String {
    let ms = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
    let header = [
        "TYPE",
        "ACCOUNTS",
        "HEALTHY",
        "FAILING",
        "RECONNECT",
        "P50 MS",
        "P99 MS",
        "LAST ERROR",
    ];
    let rows: Vec<[String; 8]> = providers
        .iter()
        .map(|p| {
            [
                p.account_type.clone(),
                p.accounts.to_string(),
                p.healthy.to_string(),
                p.failing.to_string(),
                p.reconnect_needed.to_string(),
                ms(p.p50_ms),
                ms(p.p99_ms),
                match (&p.last_error, p.last_error_at) {
                    (Some(e), at) => format!("{e} ({})", when(at)),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Text left, numbers right; colour goes on after padding so widths stay true.
    let cell = |i: usize, text: &str| {
        if i == 0 || i == 7 {
            format!("{text:<w$}", w = widths[i])
        } else {
            format!("{text:>w$}", w = widths[i])
        }
    };
    let mut table = header
        .iter()
        .enumerate()
        .map(|(i, h)| cell(i, h))
        .collect::<Vec<_>>()
        .join("  ")
        .trim_end()
        .to_owned();
    for (p, row) in providers.iter().zip(&rows) {
        table.push('\n');
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let padded = cell(i, text);
                match i {
                    2 if p.healthy == p.accounts => paint(on, "32", &padded),
                    3 if p.failing > 0 => paint(on, "33", &padded),
                    4 if p.reconnect_needed > 0 => paint(on, "31", &padded),
                    _ => padded,
                }
            })
            .collect();
        table.push_str(cells.join("  ").trim_end());
    }
    table
}

/// Prints the audit trail since `since` (RFC 3339 or `15m`, `2h`, `7d` ago), every page.
pub(super) async fn audit(s: &Services, since: Option<&str>, json: bool) -> anyhow::Result<()> {
    let since = match since {
        None => Timestamp::from_unix_secs(0),
        Some(raw) => parse_since(raw, s.clock.now())
            .with_context(|| format!("--since `{raw}`: an RFC 3339 time or 15m, 2h, 7d"))?,
    };
    let mut after: Option<String> = None;
    let mut all = Vec::new();
    loop {
        let (entries, next) = s.admin.audit_since(since, after.as_deref(), 500).await?;
        if json {
            all.extend(entries);
        } else {
            for e in entries {
                out!(
                    "{}\t{}\t{}\t{}\t{}",
                    e.at,
                    e.actor,
                    e.action,
                    e.target,
                    e.request_id.as_deref().unwrap_or("-")
                );
            }
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    if json {
        out!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(t: &str, accounts: usize, failing: usize, reconnect: usize) -> ProviderHealth {
        ProviderHealth {
            account_type: t.into(),
            accounts,
            healthy: accounts - failing - reconnect,
            failing,
            reconnect_needed: reconnect,
            p50_ms: Some(85),
            p99_ms: Some(310),
            last_error: (failing > 0).then(|| "upstream_timeout".into()),
            last_error_at: (failing > 0).then_some(1_795_000_000),
        }
    }

    #[test]
    fn the_plain_table_is_aligned_and_has_no_escape_codes() {
        let table = health_table(
            &[provider("google", 120, 1, 1), provider("x", 3, 0, 0)],
            false,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(!table.contains('\x1b'));
        assert!(lines[0].starts_with("TYPE") && lines[0].contains("LAST ERROR"));
        // Numbers are right-aligned under their header.
        let end = lines[0].find("ACCOUNTS").unwrap() + "ACCOUNTS".len();
        assert_eq!(&lines[1][end - 3..end], "120");
        assert_eq!(&lines[2][end - 1..end], "3");
    }

    #[test]
    fn on_a_terminal_counts_that_need_a_look_are_coloured() {
        let table = health_table(
            &[provider("google", 120, 1, 1), provider("x", 3, 0, 0)],
            true,
        );
        assert!(table.contains("\x1b[33m"), "failing in yellow");
        assert!(table.contains("\x1b[31m"), "reconnection in red");
        assert!(table.contains("\x1b[32m"), "an all-healthy type in green");
    }
}
