#!/usr/bin/env bash
# The background refresher on both stores, in one run: `cargo bench --bench refresher` on
# the embedded store, then on pouchdb-server (installed into .tools/ as by scripts/test.sh,
# started in memory on a free port). Each prints its table: accounts per second and store
# round-trips per refresh, with 10,000 and 100,000 accounts stored, 1,000 of them due.
# Settings come from the environment, e.g. BENCH_SCENARIOS=10000:1000 or BENCH_INSTANCES=10.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pouchdb.sh
pouchdb_for_bench
cargo bench --bench refresher
BENCH_STORE=couch BROKER_TEST_COUCHDB_URL="http://127.0.0.1:$POUCH_PORT" \
  cargo bench --bench refresher
