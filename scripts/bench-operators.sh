#!/usr/bin/env bash
# Operators' listings with 10,000 accounts stored, on both stores in one run: `cargo bench
# --bench operators` on the embedded store, then on Apache CouchDB 3.5 (a single node from
# ../shared/couchdb, see scripts/couchdb.sh, started on a free port). BENCH_ACCOUNTS changes
# the count.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pouchdb.sh
. scripts/couchdb.sh
couchdb_for_bench
cargo bench --bench operators
BENCH_STORE=couch BROKER_TEST_COUCHDB_URL="$COUCH_URL" cargo bench --bench operators
