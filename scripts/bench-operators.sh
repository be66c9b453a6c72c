#!/usr/bin/env bash
# Operators' listings with 10,000 accounts stored, on both stores in one run: `cargo bench
# --bench operators` on the embedded store, then on pouchdb-server (installed into .tools/
# as by scripts/test.sh, started in memory on a free port). BENCH_ACCOUNTS changes the count.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pouchdb.sh
pouchdb_for_bench
cargo bench --bench operators
BENCH_STORE=couch BROKER_TEST_COUCHDB_URL="http://127.0.0.1:$POUCH_PORT" \
  cargo bench --bench operators
