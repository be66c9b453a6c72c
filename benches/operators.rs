//! What operators' listings cost with many accounts stored: `accounts list` pages (plain,
//! after a cursor, one instance's, filtered) and `providers health` (every record), in
//! milliseconds and store round-trips, with 10,000 account health records over 100
//! instances and 5 types (1 % failing, 0.5 % needing reconnection). On the embedded
//! store, or on CouchDB with `BENCH_STORE=couch` (`scripts/bench-operators.sh` runs both).
//! `BENCH_ACCOUNTS` changes the count.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

#[path = "../tests/common/mod.rs"]
mod common;
use common::helpers;

use oauth_broker::app::Services;
use oauth_broker::domain::account_health::{summarize, AccountHealth};
use oauth_broker::store::health_records::{to_doc, Filter, HealthRecords};
use oauth_broker::store::REFRESH_SCHEDULE_DB;
use std::time::Instant;

const RUNS: usize = 20;
const TYPES: [&str; 5] = ["google", "dropbox", "github", "box", "onedrive"];

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let couch = std::env::var("BENCH_STORE").as_deref() == Ok("couch");
    let n: usize = std::env::var("BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 10_000 } else { 300 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(couch, n));
}

async fn run(couch: bool, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let backend = if couch {
        helpers::Backend::Couch
    } else {
        helpers::Backend::Embedded
    };
    let mut settings = helpers::test_settings(backend, dir.path());
    settings.couchdb.db_prefix = format!("{}_", helpers::unique("opsbench"));
    let services = Services::open(&settings).await.unwrap();
    let store = services.store();
    let mut docs = Vec::with_capacity(2_000);
    for i in 0..n {
        let mut h = AccountHealth::new(
            &format!("bench{}.example", i % 100),
            &format!("acc{i:07}"),
            TYPES[i % TYPES.len()],
        );
        h.last_success_at = Some(1_795_000_000);
        h.token_ms = Some(20 + (i % 300) as u64);
        if i % 100 == 7 {
            h.consecutive_failures = 2;
            h.last_error = Some("upstream_timeout".into());
            h.last_failure_at = Some(1_795_000_000 + i as i64);
        }
        if i % 200 == 13 {
            h.reconnect_needed = true;
            h.consecutive_failures = 1;
            h.last_error = Some("invalid_grant".into());
            h.last_failure_at = Some(1_795_000_000 + i as i64);
        }
        docs.push(to_doc(&h));
        if docs.len() == 2_000 || i + 1 == n {
            for outcome in store.put_many(REFRESH_SCHEDULE_DB, &docs).await.unwrap() {
                outcome.unwrap();
            }
            docs.clear();
        }
    }
    let records = HealthRecords::new(store.clone());
    let middle = records
        .page(&Filter::default(), None, n / 2)
        .await
        .unwrap()
        .next;
    println!(
        "{} account health records stored ({}); medians of {RUNS} runs:",
        n,
        if couch { "CouchDB" } else { "embedded store" }
    );
    println!();
    println!("| listing | page size | records | ms | store round-trips |");
    println!("|---|---|---|---|---|");
    let cases: Vec<(&str, Filter, Option<String>)> = vec![
        ("accounts list", Filter::default(), None),
        ("accounts list --after (middle)", Filter::default(), middle),
        (
            "accounts list --instance",
            Filter {
                instance: Some("bench42.example".into()),
                ..Filter::default()
            },
            None,
        ),
        (
            "accounts list --failing",
            Filter {
                failing: true,
                ..Filter::default()
            },
            None,
        ),
        (
            "accounts list --reconnect-needed --type box",
            Filter {
                reconnect_needed: true,
                account_type: Some("box".into()),
                ..Filter::default()
            },
            None,
        ),
    ];
    for (name, filter, after) in cases {
        let mut times = Vec::with_capacity(RUNS);
        let (mut got, mut trips) = (0, 0);
        for _ in 0..RUNS {
            let before = services.store_requests();
            let t = Instant::now();
            let page = records.page(&filter, after.as_deref(), 100).await.unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            got = page.records.len();
            trips = services.store_requests() - before;
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "| `{name}` | 100 | {got} | {:.1} | {trips} |",
            times[RUNS / 2]
        );
    }
    let mut times = Vec::with_capacity(RUNS);
    let (mut types, mut trips) = (0, 0);
    for _ in 0..RUNS {
        let before = services.store_requests();
        let t = Instant::now();
        let summary = summarize(&records.all().await.unwrap());
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        types = summary.len();
        trips = services.store_requests() - before;
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "| `providers health` (every record) | - | {types} types | {:.1} | {trips} |",
        times[RUNS / 2]
    );

    // The command line itself, as a process on the same store (start-up included).
    println!();
    println!("| command (a process, start-up included) | ms |");
    println!("|---|---|");
    let cli = |args: &[&str]| {
        let t = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
            .args(args)
            .env("BROKER__DATA_DIR", &settings.data_dir)
            .env(
                "BROKER__COUCHDB__URL",
                settings.couchdb.url.clone().unwrap_or_default(),
            )
            .env("BROKER__COUCHDB__DB_PREFIX", &settings.couchdb.db_prefix)
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            t.elapsed().as_secs_f64() * 1000.0,
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    for args in [
        &["accounts", "list", "--limit", "100"][..],
        &["accounts", "list", "--failing", "--limit", "100"][..],
        &["providers", "health"][..],
    ] {
        let (ms, _) = cli(args);
        println!("| `oauth-broker {}` | {ms:.0} |", args.join(" "));
    }
    println!();
    println!("`oauth-broker providers health` on this store:");
    println!();
    println!("```");
    print!("{}", cli(&["providers", "health"]).1);
    println!("```");
}
