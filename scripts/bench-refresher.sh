#!/usr/bin/env bash
# The refresher on every store, in one run: `cargo bench --bench refresher` (the
# background refresher: accounts per second and store round-trips per refresh, with 10,000
# and 100,000 accounts stored, 1,000 of them due) and `cargo bench --bench hot_account`
# (bursts of 64 concurrent refreshes of one account) on the embedded store, on Apache
# CouchDB 3.5 (a single node from ../shared/couchdb, see scripts/couchdb.sh) and on
# pouchdb-server (installed into .tools/ as by scripts/test.sh), each started on a free
# loopback port. Settings come from the environment, e.g. BENCH_SCENARIOS=10000:1000,
# BENCH_INSTANCES=10 or BENCH_BURSTS=50.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pouchdb.sh
. scripts/couchdb.sh
pouchdb_for_bench
couchdb_for_bench
for bench in refresher hot_account; do
  cargo bench --bench "$bench"
  BENCH_STORE=couch BENCH_STORE_LABEL="Apache CouchDB 3.5" BROKER_TEST_COUCHDB_URL="$COUCH_URL" \
    cargo bench --bench "$bench"
  BENCH_STORE=couch BENCH_STORE_LABEL="pouchdb-server" BROKER_TEST_COUCHDB_URL="http://127.0.0.1:$POUCH_PORT" \
    cargo bench --bench "$bench"
done
