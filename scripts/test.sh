#!/usr/bin/env bash
# Runs every test: installs pouchdb-server, cozy-konnector-libs and grant (npm) into .tools/ and redis-server and
# promtool (Debian) if missing, starts Apache CouchDB 3.5 (from ../shared/couchdb, see
# scripts/couchdb.sh) as a single node and as a 3-node cluster, pouchdb-server, and redis-server (the role
# of cozy-stack's Redis), all on free loopback ports, runs `cargo test`, and stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tools="$root/.tools"
mkdir -p "$tools"

if ! command -v curl >/dev/null 2>&1; then
  echo "curl not found: installing it from Debian" >&2
  apt-get update -qq && apt-get install -y -qq curl >/dev/null
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: installing Node.js from Debian" >&2
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
. scripts/pouchdb.sh
. scripts/couchdb.sh
. scripts/harvest.sh
# pouchdb-server too, for the Store contract tests only (tests/api/store.rs): it is more
# lenient than CouchDB in ways the broker must not come to rely on.
install_pouchdb "$tools"

# cozy-konnector-libs for the standalone konnector test (tests/dev.rs) and the konnectors'
# refresh idioms (tests/konnectors.rs), with a current cozy-client. Its git-hosted
# dependency `geco` is pinned to the npm release, and peer dependencies (React Native
# modules hosted on GitHub) are left out: this machine reaches only the npm registry.
konnector="$tools/konnector"
if ! cmp -s tests/konnector/package.json "$konnector/package.json" || [ ! -d "$konnector/node_modules/cozy-konnector-libs" ]; then
  echo "installing cozy-konnector-libs 5.13.0 and cozy-client 60.21.2 (about half a minute)" >&2
  mkdir -p "$konnector"
  cp tests/konnector/package.json "$konnector/package.json"
  npm install --prefix "$konnector" --no-audit --no-fund --loglevel=error --legacy-peer-deps >&2
fi
export BROKER_TEST_KONNECTOR_LIBS="$konnector/node_modules"

# Grant 5.4's provider list, which the catalogue is checked against (tests/catalogue_grant.rs).
grant_list="$tools/grant/node_modules/grant/config/oauth.json"
if [ ! -f "$grant_list" ] || ! grep -q '"version": "5.4.24"' "$tools/grant/node_modules/grant/package.json"; then
  echo "installing npm grant 5.4.24 (its provider list)" >&2
  mkdir -p "$tools/grant"
  npm install --prefix "$tools/grant" --no-audit --no-fund --loglevel=error --no-save grant@5.4.24 >&2
fi
export BROKER_TEST_GRANT_OAUTH_JSON="$grant_list"

# cozy-harvest-lib in Debian's Chromium (tests/harvest.rs).
install_harvest "$tools"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing it from Debian" >&2
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi

# promtool checks and unit-tests the alert rules in deploy/prometheus (tests/deploy.rs).
if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool not found: installing Debian's prometheus package" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  >"$tools/redis.log" 2>&1 &
redis_pid=$!

trap 'kill $redis_pid ${POUCH_PID:-} 2>/dev/null || true; stop_couchdb "$tools/couchdb-single"; stop_couchdb "$tools/couchdb-cluster"' EXIT
start_pouchdb "$tools" "$tools/pouchdb.log"
start_couchdb single "$tools/couchdb-single"
single_url=$COUCH_URL
# The cluster tests (tests/cluster.rs) stop and start its nodes through couchdb.sh.
start_couchdb cluster "$tools/couchdb-cluster"
export BROKER_TEST_COUCHDB_CLUSTER="$tools/couchdb-cluster" COUCHDB_SH

for _ in $(seq 1 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then break; fi
  if ! kill -0 "$redis_pid" 2>/dev/null; then cat "$tools/redis.log" >&2; echo "redis-server died" >&2; exit 1; fi
  sleep 0.1
done

# Every test runs here: a test that would skip for want of a server or tool fails instead.
export BROKER_TEST_REQUIRE_ALL=1
export BROKER_TEST_COUCHDB_URL="$single_url"
export BROKER_TEST_POUCHDB_URL="http://127.0.0.1:$POUCH_PORT"
# cozy-stack keeps session codes in Redis database 3 (`sessions`).
export BROKER_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/3"
# With arguments, only what they select (`scripts/test.sh --test api refresh`); without,
# every target, benches' smoke runs included.
if [ $# -gt 0 ]; then
  cargo test "$@"
else
  cargo test --all-targets
fi
