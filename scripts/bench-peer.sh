#!/usr/bin/env bash
# The broker against Grant on one local provider: installs Grant and express (npm) into
# benches/peer/, then runs `cargo bench --bench peer`, which prints the tables.
# `--couchdb`: the broker runs on Apache CouchDB 3.5 (a single node from ../shared/couchdb,
# see scripts/couchdb.sh, started on a free port), and the store's own write rate is
# printed beside the broker's flow rate.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d benches/peer/node_modules/grant ]; then
  npm install --prefix benches/peer --no-audit --no-fund --loglevel=error >&2
fi
if [ "${1:-}" = "--couchdb" ]; then
  . scripts/pouchdb.sh
  . scripts/couchdb.sh
  couchdb_for_bench
  export BENCH_COUCHDB_URL="$COUCH_URL"
fi
cargo bench --bench peer
