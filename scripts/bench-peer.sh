#!/usr/bin/env bash
# The broker against Grant on one local provider: installs Grant and express (npm) into
# benches/peer/, then runs `cargo bench --bench peer`, which prints the tables.
# `--couchdb`: the broker runs on pouchdb-server (installed into .tools/ as by
# scripts/test.sh, started in memory on a free port), and the store's own write rate is
# printed beside the broker's flow rate.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d benches/peer/node_modules/grant ]; then
  npm install --prefix benches/peer --no-audit --no-fund --loglevel=error >&2
fi
if [ "${1:-}" = "--couchdb" ]; then
  . scripts/pouchdb.sh
  pouchdb_for_bench
  export BENCH_COUCHDB_URL="http://127.0.0.1:$POUCH_PORT"
fi
cargo bench --bench peer
