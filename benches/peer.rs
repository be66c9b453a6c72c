//! The broker against a peer, Grant (npm `grant` with express), on the same local
//! provider: the full authorization-code flow (start, provider, redirect, token exchange,
//! tokens stored) at concurrency 1, 16 and 64, then `start` alone against a bare actix-web
//! handler answering the same 303 (the ceiling). Run: `scripts/bench-peer.sh`.
//! With `BENCH_COUCHDB_URL` set (`scripts/bench-peer.sh --couchdb` starts Apache CouchDB 3.5)
//! the broker runs on that CouchDB-compatible store, and the store's own single-document
//! write rate at each concurrency is printed beside the broker's flow rate.
//! Under `cargo test` (no `--bench`) it does nothing: it needs the npm packages.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures::StreamExt;
use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: [usize; 3] = [1, 16, 64];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The local provider: `/authorize` sends the browser straight back with a code, `/token`
/// answers tokens.
async fn provider() -> String {
    static CODES: AtomicU64 = AtomicU64::new(0);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/authorize",
                web::get().to(|q: web::Query<HashMap<String, String>>| async move {
                    let back = q.get("redirect_uri").cloned().unwrap_or_default();
                    let n = CODES.fetch_add(1, Ordering::Relaxed);
                    let mut url = url::Url::parse(&back).unwrap();
                    url.query_pairs_mut()
                        .append_pair("code", &format!("code{n}"))
                        .append_pair("state", q.get("state").map_or("", String::as_str));
                    HttpResponse::Found().insert_header(("Location", url.to_string())).finish()
                }),
            )
            .route(
                "/token",
                // The form is read, as a real token endpoint reads it: actix-web closes a
                // connection whose request body was left unread, and the clients would
                // then open one per exchange.
                web::post().to(|_form: web::Bytes| async {
                    HttpResponse::Ok().json(serde_json::json!({
                        "access_token": "at", "refresh_token": "rt", "expires_in": 3600, "token_type": "Bearer"}))
                }),
            )
    })
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    addr
}

/// A bare actix-web handler answering the same kind of 303 as `start`.
async fn bare() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(|| {
        App::new().route(
            "/start",
            web::get().to(|_: HttpRequest| async {
                HttpResponse::SeeOther()
                    .insert_header((
                        "Location",
                        "https://provider.example/authorize?client_id=c&state=0123456789abcdef",
                    ))
                    .finish()
            }),
        )
    })
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    addr
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak resident memory of a process, in MiB.
fn peak_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time (user + system) a process has used, in milliseconds (Linux `/proc`).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the stat line (11 and 12 after the name),
    // in clock ticks of 10 ms on Linux.
    (ticks(11) + ticks(12)) * 10.0
}

async fn wait_ready(http: &reqwest::Client, url: &str) {
    for _ in 0..200 {
        if http.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered");
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .expect("a redirect")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Runs `n` flows at concurrency `c`; returns (flows/s, p50 ms, p99 ms).
async fn measure<F, Fut>(n: usize, c: usize, flow: F) -> (f64, f64, f64)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let mut lat: Vec<f64> = futures::stream::iter(0..n)
        .map(|i| {
            let f = flow(i);
            async move {
                let t = Instant::now();
                f.await;
                t.elapsed().as_secs_f64() * 1000.0
            }
        })
        .buffer_unordered(c)
        .collect()
        .await;
    let total = started.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    (n as f64 / total, pct(0.50), pct(0.99))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .build()
            .unwrap();
        let provider = provider().await;
        let dir = tempfile::tempdir().unwrap();
        let couch = std::env::var("BENCH_COUCHDB_URL").ok().filter(|u| !u.is_empty());
        let namespace = format!("bench{}_", std::process::id());
        println!(
            "broker store: {}",
            if couch.is_some() { "CouchDB-compatible (BENCH_COUCHDB_URL)" } else { "embedded" }
        );

        // The broker, as a process on its embedded store.
        let port = free_port();
        let broker_url = format!("http://127.0.0.1:{port}");
        let broker = Proc(
            Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
                .env("BROKER__LISTEN", format!("127.0.0.1:{port}"))
                .env("BROKER__PUBLIC_URL", &broker_url)
                .env("BROKER__ADMIN_TOKEN", "bench-admin-token-0123456789abcdef")
                .env("BROKER__DATA_DIR", dir.path().join("broker"))
                .env("BROKER__COUCHDB__URL", couch.clone().unwrap_or_default())
                .env("BROKER__COUCHDB__DB_PREFIX", &namespace)
                .env("BROKER__RATE_LIMIT__PER_MINUTE", "0")
                .env("RUST_LOG", "warn")
                .spawn()
                .expect("broker binary"),
        );
        wait_ready(&http, &format!("{broker_url}/healthz")).await;
        let admin = |m: reqwest::Method, p: &str| http.request(m, format!("{broker_url}{p}")).bearer_auth("bench-admin-token-0123456789abcdef");
        admin(reqwest::Method::POST, "/admin/instances")
            .json(&serde_json::json!({"domain": "alice.example"}))
            .send()
            .await
            .unwrap();
        admin(reqwest::Method::PUT, "/admin/account_types/local")
            .json(&serde_json::json!({"grant_mode": "authorization_code", "client_id": "the-client-id",
                "client_secret": "the-client-secret", "auth_endpoint": format!("{provider}/authorize"),
                "token_endpoint": format!("{provider}/token"),
                // The instance's own host is the default; this bench has none to reach.
                "redirect_uri": format!("{broker_url}/accounts/local/redirect")}))
            .send()
            .await
            .unwrap();
        let token: serde_json::Value = admin(reqwest::Method::POST, "/admin/instances/alice.example/tokens")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["token"].as_str().unwrap().to_owned();

        // Grant, as a node process.
        let gport = free_port();
        let grant_url = format!("http://127.0.0.1:{gport}");
        let peer_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer");
        let grant = Proc(
            Command::new("node")
                .arg(format!("{peer_dir}/grant-server.js"))
                .env("PORT", gport.to_string())
                .env("PROVIDER", &provider)
                .env("STORE", dir.path().join("grant-tokens.jsonl"))
                .spawn()
                .expect("node runs grant-server.js (scripts/bench-peer.sh installs it)"),
        );
        wait_ready(&http, &format!("{grant_url}/done")).await;
        let bare_url = bare().await;

        let broker_flow = |i: usize| {
            let (http, token, broker_url) = (http.clone(), token.clone(), broker_url.clone());
            async move {
                let r = http.get(format!("{broker_url}/accounts/local/start?state=s{i}&nonce=1")).bearer_auth(&token).send().await.unwrap();
                // The flow is bound to the browser (the default), as Grant's is to its session.
                let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();
                let r = http.get(location(&r)).send().await.unwrap();
                let r = http.get(location(&r)).header("cookie", &cookie).send().await.unwrap();
                assert!(location(&r).contains("account="), "broker flow failed");
            }
        };
        let grant_flow = |_: usize| {
            let (http, grant_url) = (http.clone(), grant_url.clone());
            async move {
                let r = http.get(format!("{grant_url}/connect/local")).send().await.unwrap();
                let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();
                let r = http.get(location(&r)).send().await.unwrap();
                let r = http.get(location(&r)).header("cookie", &cookie).send().await.unwrap();
                let done = format!("{grant_url}{}", location(&r));
                let r = http.get(done).header("cookie", &cookie).send().await.unwrap();
                assert_eq!(r.status(), 200, "grant flow failed");
            }
        };

        println!("| flow | concurrency | flows/s | p50 ms | p99 ms |");
        println!("|---|---|---|---|---|");
        let mut ratios = Vec::new();
        let mut broker_rates = Vec::new();
        for c in CONCURRENCY {
            let n = if c == 1 { 300 } else { 2000 };
            let (cpu, own) = (cpu_ms(broker.0.id()), cpu_ms(std::process::id()));
            let b = measure(n, c, broker_flow).await;
            let b_cpu = (cpu_ms(broker.0.id()) - cpu) / n as f64;
            let b_own = (cpu_ms(std::process::id()) - own) / n as f64;
            let (cpu, own) = (cpu_ms(grant.0.id()), cpu_ms(std::process::id()));
            let g = measure(n, c, grant_flow).await;
            let g_cpu = (cpu_ms(grant.0.id()) - cpu) / n as f64;
            let g_own = (cpu_ms(std::process::id()) - own) / n as f64;
            println!("| oauth-broker | {c} | {:.0} | {:.2} | {:.2} |", b.0, b.1, b.2);
            println!("| grant + express | {c} | {:.0} | {:.2} | {:.2} |", g.0, g.1, g.2);
            ratios.push((c, b.0 / g.0, b_cpu, g_cpu, b_own, g_own, b.0));
            broker_rates.push((c, b.0));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        for (c, r, b_cpu, g_cpu, b_own, g_own, b_rate) in ratios {
            println!("ratio (broker / grant flows per second) at concurrency {c}: {r:.2}; CPU per flow: broker {b_cpu:.3} ms, grant {g_cpu:.3} ms (grant / broker {:.2})", g_cpu / b_cpu);
            // This process is the browsers and the provider: on a small machine it shares
            // the cores with the server under test, so it caps the rate either can reach.
            println!(
                "  load generator and provider (this process) CPU per flow: {b_own:.3} ms beside the broker, {g_own:.3} ms beside grant; cores busy during the broker's run: {:.2} of {cores}",
                (b_cpu + b_own) * b_rate / 1000.0
            );
        }
        println!("peak memory: oauth-broker {:.1} MiB, grant + express (node) {:.1} MiB", peak_mib(broker.0.id()), peak_mib(grant.0.id()));

        if let Some(couch) = &couch {
            // The store's own limit: single-document PUTs of new documents, as many at once.
            let db = format!("{couch}/{namespace}store_write_rate");
            http.put(&db).send().await.unwrap();
            println!();
            println!("| concurrency | store single-document writes/s | broker flows/s | flows ÷ store writes |");
            println!("|---|---|---|---|");
            for (c, flows) in &broker_rates {
                let n = if *c == 1 { 300 } else { 2000 };
                let w = measure(n, *c, |i| {
                    let (http, db) = (http.clone(), db.clone());
                    async move {
                        let r = http
                            .put(format!("{db}/c{c}-{i}"))
                            .json(&serde_json::json!({"i": i, "kind": "bench"}))
                            .send()
                            .await
                            .unwrap();
                        assert!(r.status().is_success(), "store write failed: {}", r.status());
                    }
                })
                .await;
                println!("| {c} | {:.0} | {flows:.0} | {:.2} |", w.0, flows / w.0);
            }
        }

        println!();
        println!("| start alone | concurrency | requests/s | p50 ms | p99 ms |");
        println!("|---|---|---|---|---|");
        for c in CONCURRENCY {
            let n = if c == 1 { 1000 } else { 5000 };
            let s = measure(n, c, |i| {
                let (http, token, broker_url) = (http.clone(), token.clone(), broker_url.clone());
                async move {
                    let r = http.get(format!("{broker_url}/accounts/local/start?state=s{i}")).bearer_auth(&token).send().await.unwrap();
                    assert_eq!(r.status(), 303);
                }
            })
            .await;
            let ceiling = measure(n, c, |_| {
                let (http, bare_url) = (http.clone(), bare_url.clone());
                async move {
                    let r = http.get(format!("{bare_url}/start")).send().await.unwrap();
                    assert_eq!(r.status(), 303);
                }
            })
            .await;
            println!("| oauth-broker `start` | {c} | {:.0} | {:.2} | {:.2} |", s.0, s.1, s.2);
            println!("| bare actix-web 303 | {c} | {:.0} | {:.2} | {:.2} |", ceiling.0, ceiling.1, ceiling.2);
        }
    });
}
