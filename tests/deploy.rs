//! The deployment files parse and agree with each other and with the broker's settings
//! (no container engine runs here, so they are checked as documents).

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

#[path = "common/needs.rs"]
mod needs;

use serde_yaml::Value;
use std::path::Path;

fn yaml_docs(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn kubernetes_runs_two_probed_replicas_with_a_budget_and_an_autoscaler() {
    let mut docs = Vec::new();
    for f in [
        "deployment.yaml",
        "pdb.yaml",
        "hpa.yaml",
        "secret.yaml",
        "configmap.yaml",
    ] {
        docs.extend(yaml_docs(&format!("deploy/k8s/{f}")));
    }
    let deploy = kind(&docs, "Deployment");
    assert!(deploy["spec"]["replicas"].as_u64().unwrap() >= 2);
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let refs: Vec<&str> = container["envFrom"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|e| {
            [
                e["configMapRef"]["name"].as_str(),
                e["secretRef"]["name"].as_str(),
            ]
        })
        .flatten()
        .collect();
    assert!(refs.contains(&kind(&docs, "Secret")["metadata"]["name"].as_str().unwrap()));
    assert!(refs.contains(
        &kind(&docs, "ConfigMap")["metadata"]["name"]
            .as_str()
            .unwrap()
    ));
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    assert_eq!(
        kind(&docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        *labels
    );
    let hpa = kind(&docs, "HorizontalPodAutoscaler");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deploy["metadata"]["name"]
    );
    assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 2);
    assert_eq!(kind(&docs, "Service")["spec"]["selector"], *labels);
    // Every setting the manifests give is one the broker reads.
    for d in [
        kind(&docs, "ConfigMap")["data"].clone(),
        kind(&docs, "Secret")["stringData"].clone(),
    ] {
        for (k, _) in d.as_mapping().unwrap() {
            let k = k.as_str().unwrap();
            assert!(k.starts_with("BROKER__") || k == "RUST_LOG", "{k}");
        }
    }
}

#[test]
fn compose_runs_couchdb_3_and_two_brokers_behind_a_balancer() {
    let compose = &yaml_docs("deploy/compose.yaml")[0];
    let services = compose["services"].as_mapping().unwrap();
    assert!(compose["services"]["couchdb"]["image"]
        .as_str()
        .unwrap()
        .starts_with("couchdb:3"));
    let brokers: Vec<&str> = services
        .iter()
        .filter(|(_, s)| {
            s["environment"]["BROKER__COUCHDB__URL"]
                .as_str()
                .is_some_and(|u| u.contains("@couchdb:5984"))
        })
        .map(|(k, _)| k.as_str().unwrap())
        .collect();
    assert_eq!(brokers.len(), 2, "{brokers:?}");
    let nginx =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx.conf"))
            .unwrap();
    for b in &brokers {
        assert!(
            nginx.contains(&format!("server {b}:8080")),
            "{b} behind the balancer"
        );
    }
    assert!(compose["services"]["lb"]["volumes"][0]
        .as_str()
        .unwrap()
        .starts_with("./nginx.conf:"));
}

#[test]
fn the_image_is_multi_stage_and_unprivileged() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Dockerfile"))
            .unwrap();
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(stages.len() >= 2, "{stages:?}");
    assert!(
        !stages.last().unwrap().contains("rust:"),
        "the runtime stage has no toolchain"
    );
    assert!(text.contains("cargo build --release --locked"));
    let last_stage = text.rsplit("FROM ").next().unwrap();
    assert!(last_stage
        .lines()
        .any(|l| l.starts_with("USER ") && !l.contains("root")));
    assert!(last_stage.contains("COPY --from=build"));
    // Cargo.toml names targets in the first three; the catalogue is built into the binary.
    for dir in ["src", "benches", "tests", "account_types"] {
        assert!(
            text.contains(&format!("COPY {dir} ./{dir}")),
            "{dir} is copied: the build reads it"
        );
    }
}

#[test]
fn the_rate_limit_believes_only_the_balancer_and_the_balancer_drops_forged_headers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let nginx = std::fs::read_to_string(root.join("deploy/nginx.conf")).unwrap();
    assert!(
        nginx.contains("proxy_set_header Forwarded \"\";"),
        "{nginx}"
    );
    assert!(nginx.contains("proxy_set_header X-Forwarded-For $remote_addr;"));
    let compose = &yaml_docs("deploy/compose.yaml")[0];
    let configmap = kind(&yaml_docs("deploy/k8s/configmap.yaml"), "ConfigMap").clone();
    for env in [&compose["x-broker"]["environment"], &configmap["data"]] {
        assert!(
            env["BROKER__RATE_LIMIT__TRUST_FORWARDED_FOR"].is_null(),
            "{env:?}"
        );
        let proxies = env["BROKER__RATE_LIMIT__TRUSTED_PROXIES"].as_str().unwrap();
        assert!(!proxies.contains("0.0.0.0/0"), "{proxies}");
    }
}

#[test]
fn the_broker_has_a_writable_data_dir_beside_its_read_only_root() {
    let docs = yaml_docs("deploy/k8s/deployment.yaml");
    let pod = &kind(&docs, "Deployment")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Dockerfile"))
            .unwrap();
    let data_dir = dockerfile
        .split("BROKER__DATA_DIR=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap();
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == data_dir)
        .unwrap_or_else(|| panic!("nothing mounted at {data_dir}"));
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert!(!volume["emptyDir"].is_null() || !volume["persistentVolumeClaim"].is_null());
}

/// The `location` blocks of an nginx file: (modifier, prefix, upstream).
fn nginx_locations(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("location ") {
            let parts: Vec<&str> = rest.trim_end_matches('{').split_whitespace().collect();
            current = Some(match parts.as_slice() {
                [prefix] => (String::new(), (*prefix).to_owned()),
                [modifier, prefix] => ((*modifier).to_owned(), (*prefix).to_owned()),
                _ => panic!("unexpected location line: {line}"),
            });
        } else if let (Some(up), Some((m, p))) = (
            line.strip_prefix("proxy_pass http://")
                .map(|u| u.trim_end_matches(';')),
            current.as_ref(),
        ) {
            out.push((m.clone(), p.clone(), up.to_owned()));
            current = None;
        }
    }
    out
}

/// Where nginx sends `path`: the longest prefix location (there are no regex ones).
fn routed(locations: &[(String, String, String)], path: &str) -> String {
    locations
        .iter()
        .filter(|(m, p, _)| (m.is_empty() || m == "^~") && path.starts_with(p.as_str()))
        .max_by_key(|(_, p, _)| p.len())
        .map(|(_, _, up)| up.clone())
        .unwrap_or_default()
}

#[test]
fn beside_cozy_stack_nginx_sends_root_accounts_paths_only_to_the_broker() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let nginx = std::fs::read_to_string(root.join("deploy/beside-cozy-stack/nginx.conf")).unwrap();
    let locations = nginx_locations(&nginx);
    assert!(
        locations.iter().all(|(m, _, _)| m.is_empty() || m == "^~"),
        "no regex location may take /accounts/ back: {locations:?}"
    );
    for path in [
        "/accounts/google/start?state=s",
        "/accounts/google/redirect?code=c",
        "/accounts/google/0123/refresh",
        "/accounts/google/0123/reconnect",
        "/accounts/google/0123/manage",
    ] {
        assert_eq!(routed(&locations, path), "broker", "{path}");
    }
    for path in [
        "/bitwarden/api/accounts/profile",
        "/bitwarden/identity/accounts/prelogin",
        "/data/io.cozy.accounts/0123",
        "/accountsfoo",
        "/auth/login",
        "/",
    ] {
        assert_eq!(routed(&locations, path), "cozy_stack", "{path}");
    }
    // Instance hosts and the callback host are both served by this block.
    assert!(nginx.contains("server_name cozy.example *.cozy.example;"));
    assert!(nginx.contains("proxy_set_header Host $host;"));
    assert!(nginx.contains("proxy_set_header Forwarded \"\";"));
}

#[test]
fn beside_cozy_stack_the_broker_and_cozy_stack_agree_on_subdomains_redis_and_couchdb() {
    let compose = &yaml_docs("deploy/beside-cozy-stack/compose.yaml")[0];
    let cozy = &yaml_docs("deploy/beside-cozy-stack/cozy.yaml")[0];
    let services = &compose["services"];
    assert!(services["cozy-stack"]["image"]
        .as_str()
        .unwrap()
        .starts_with("cozy/cozy-stack"));
    assert!(services["cozy-stack"]["volumes"][0]
        .as_str()
        .unwrap()
        .starts_with("./cozy.yaml:/etc/cozy/cozy.yaml"));
    let env = &services["broker"]["environment"];
    let get = |k: &str| env[k].as_str().unwrap_or_else(|| panic!("{k}")).to_owned();
    assert_eq!(
        get("BROKER__SUBDOMAINS"),
        cozy["subdomains"].as_str().unwrap()
    );
    // The same Redis, and its `sessions` database.
    let redis = url::Url::parse(&get("BROKER__COZY__REDIS_URL")).unwrap();
    assert_eq!(
        format!("{}:{}", redis.host_str().unwrap(), redis.port().unwrap()),
        cozy["redis"]["addrs"].as_str().unwrap()
    );
    assert_eq!(
        redis.path().trim_start_matches('/'),
        cozy["redis"]["databases"]["sessions"]
            .as_u64()
            .unwrap()
            .to_string()
    );
    assert!(services[redis.host_str().unwrap()]["image"]
        .as_str()
        .unwrap()
        .starts_with("redis"));
    // The same CouchDB.
    // (The password is a compose variable, so the URLs are compared by their host part.)
    let host_of = |u: &str| {
        u.rsplit_once('@')
            .unwrap()
            .1
            .trim_end_matches('/')
            .to_owned()
    };
    assert_eq!(
        host_of(&get("BROKER__COUCHDB__URL")),
        host_of(cozy["couchdb"]["url"].as_str().unwrap())
    );
    // The redirect host is under the binding cookie's domain, and nginx serves it.
    let public = url::Url::parse(&get("BROKER__PUBLIC_URL")).unwrap();
    let parent = get("BROKER__FLOW_BINDING_COOKIE_DOMAIN");
    assert!(public.host_str().unwrap().ends_with(&format!(".{parent}")));
    let nginx = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/beside-cozy-stack/nginx.conf"),
    )
    .unwrap();
    assert!(nginx.contains(&format!("*.{parent}")));
    for (k, _) in env.as_mapping().unwrap() {
        let k = k.as_str().unwrap();
        assert!(k.starts_with("BROKER__") || k == "RUST_LOG", "{k}");
    }
    // The balancer reaches both by their compose names.
    for upstream in ["server broker:8080", "server cozy-stack:8080"] {
        assert!(nginx.contains(upstream), "{upstream}");
    }
}

fn manifest(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
}

/// `promtool` (Debian's `prometheus` package; `scripts/test.sh` installs it) on `args`.
fn promtool(args: &[&str]) -> std::process::Output {
    std::process::Command::new("promtool")
        .args(args)
        .current_dir(manifest("deploy/prometheus"))
        .output()
        .expect("promtool runs (scripts/test.sh installs Debian's prometheus package)")
}

#[test]
fn the_alert_rules_pass_promtool_and_fire_on_what_they_watch() {
    if !needs::program("promtool", "promtool (Debian's prometheus package)") {
        return;
    }
    let check = promtool(&["check", "rules", "alerts.yml"]);
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let test = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}

/// Every `broker_*` name in a file, with a histogram's `_bucket`, `_sum` and `_count`
/// brought back to the family's name.
fn metric_names(file: &str) -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(manifest(file)).unwrap();
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("broker_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        // `broker_*` in a comment names no metric.
        if family.len() > "broker_".len() {
            names.insert(family.to_owned());
        }
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alerts_name_is_one_the_broker_exports() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(manifest("deploy/grafana/oauth-broker.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 8));
    let mut named = metric_names("deploy/grafana/oauth-broker.json");
    named.extend(metric_names("deploy/prometheus/alerts.yml"));
    for watched in [
        "broker_flows_failed_total",
        "broker_refreshes_total",
        "broker_token_endpoint_seconds",
        "broker_store_seconds",
        "broker_store_errors_total",
        "broker_accounts_reconnect_needed",
        "broker_lease_takeovers_total",
    ] {
        assert!(named.contains(watched), "{watched} is watched");
    }

    // A fresh broker on its embedded store: no flow or refresh yet.
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut broker = std::process::Command::new(env!("CARGO_BIN_EXE_oauth-broker"))
        .env("BROKER__LISTEN", format!("127.0.0.1:{port}"))
        .env("BROKER__PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("BROKER__DATA_DIR", dir.path())
        .env("BROKER__COUCHDB__URL", "")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let mut exported = String::new();
    for _ in 0..100 {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
        {
            exported = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = broker.kill();
    let _ = broker.wait();
    let families: std::collections::BTreeSet<&str> = exported
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for name in &named {
        assert!(
            families.contains(name.as_str()),
            "{name} is named by deploy/ but not exported: {families:?}"
        );
    }
}
