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
  tools="$(pwd)/.tools"
  mkdir -p "$tools"
  if [ ! -x "$tools/node_modules/.bin/pouchdb-server" ]; then
    npm install --prefix "$tools" --no-audit --no-fund --loglevel=error pouchdb-server@4.2.0 >&2
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (cd "$tools" && exec ./node_modules/.bin/pouchdb-server --in-memory --port "$port" --host 127.0.0.1 >"$tools/pouchdb-bench.log" 2>&1) &
  pouch_pid=$!
  trap 'kill $pouch_pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/" >/dev/null 2>&1; then break; fi
    sleep 0.2
  done
  export BENCH_COUCHDB_URL="http://127.0.0.1:$port"
fi
cargo bench --bench peer
