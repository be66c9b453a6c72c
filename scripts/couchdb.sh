# Sourced by scripts/test.sh and the benchmark scripts: starts Apache CouchDB 3.5.0 on the
# loopback, from the release kept in ../shared/couchdb (or COUCHDB_SH=path/to/couchdb.sh),
# as a single node or a 3-node cluster, each in a fresh data folder under .tools/.
# free_port comes from scripts/pouchdb.sh.

COUCHDB_SH=${COUCHDB_SH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/couchdb/couchdb.sh}

# couchdb_missing: explains where the release is looked for, and fails.
couchdb_missing() {
  echo "Apache CouchDB 3.5 not found at $COUCHDB_SH: set COUCHDB_SH to its couchdb.sh" >&2
  return 1
}

# A base port whose next two are free too (for the cluster's three nodes).
free_port_run() {
  local base
  for _ in $(seq 1 50); do
    base=$(python3 -c 'import random; print(random.randrange(20000, 60000, 10))')
    if python3 - "$base" <<'PY'
import socket, sys
b = int(sys.argv[1])
for p in range(b, b + 3):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
    then echo "$base"; return 0; fi
  done
  return 1
}

# start_couchdb MODE DIR: starts `single` or `cluster` in DIR (its old data removed, the
# unpacked release kept); sets COUCH_URL to node 1's URL with the admin's credentials.
# The caller stops it with `stop_couchdb DIR`.
start_couchdb() {
  local mode=$1 dir=$2 port
  [ -x "$COUCHDB_SH" ] || couchdb_missing || return 1
  "$COUCHDB_SH" stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"/node1 "$dir"/node2 "$dir"/node3 "$dir"/cookie
  port=$(free_port_run)
  COUCH_URL=$("$COUCHDB_SH" "$mode" "$dir" "$port")
}

# stop_couchdb DIR: stops every node started in DIR.
stop_couchdb() {
  [ -x "$COUCHDB_SH" ] && "$COUCHDB_SH" stop "$1" >/dev/null 2>&1 || true
}

# couchdb_for_bench: for a benchmark script run from the repository's root: a single node
# in .tools/couchdb-bench, stopped when the script exits; sets COUCH_URL.
couchdb_for_bench() {
  local dir
  dir="$(pwd)/.tools/couchdb-bench"
  mkdir -p "$dir"
  COUCH_BENCH_DIR=$dir
  trap 'stop_couchdb "$COUCH_BENCH_DIR"; kill ${POUCH_PID:-} 2>/dev/null || true' EXIT
  start_couchdb single "$dir"
}
