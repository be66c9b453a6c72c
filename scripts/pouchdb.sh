# Sourced by scripts/test.sh, scripts/bench-peer.sh and scripts/bench-refresher.sh: installs pouchdb-server into a
# tools folder and starts it in memory on a free loopback port.

# A free TCP port on the loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# install_pouchdb TOOLS: pouchdb-server 4.2.0 from npm into TOOLS, once.
install_pouchdb() {
  if [ ! -x "$1/node_modules/.bin/pouchdb-server" ]; then
    echo "installing pouchdb-server 4.2.0 (about two minutes)" >&2
    npm install --prefix "$1" --no-audit --no-fund --loglevel=error pouchdb-server@4.2.0 >&2
  fi
}

# start_pouchdb TOOLS LOG: starts it and waits until it answers; sets POUCH_PORT and
# POUCH_PID (the caller stops it).
start_pouchdb() {
  POUCH_PORT=$(free_port)
  # pouchdb-server writes its config and log into the working directory.
  (cd "$1" && exec ./node_modules/.bin/pouchdb-server --in-memory --port "$POUCH_PORT" --host 127.0.0.1 >"$2" 2>&1) &
  POUCH_PID=$!
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$POUCH_PORT/" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$POUCH_PID" 2>/dev/null; then cat "$2" >&2; echo "pouchdb-server died" >&2; return 1; fi
    sleep 0.2
  done
  echo "pouchdb-server did not answer" >&2
  return 1
}

# pouchdb_for_bench: for a benchmark script run from the repository's root: installs
# pouchdb-server into .tools/, starts it, stops it when the script exits; sets POUCH_PORT.
pouchdb_for_bench() {
  local tools
  tools="$(pwd)/.tools"
  mkdir -p "$tools"
  install_pouchdb "$tools"
  trap 'kill ${POUCH_PID:-} 2>/dev/null || true' EXIT
  start_pouchdb "$tools" "$tools/pouchdb-bench.log"
}
