#!/usr/bin/env bash
# Runs every test: installs pouchdb-server and cozy-konnector-libs (npm) into .tools/ and
# redis-server (Debian) if missing, starts pouchdb-server in memory and redis-server (the
# role of cozy-stack's Redis) on free loopback ports, runs `cargo test`, and stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tools="$root/.tools"
mkdir -p "$tools"

if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: installing Node.js from Debian" >&2
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x "$tools/node_modules/.bin/pouchdb-server" ]; then
  echo "installing pouchdb-server 4.2.0 (about two minutes)" >&2
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error pouchdb-server@4.2.0 >&2
fi

# cozy-konnector-libs for the standalone konnector test (tests/dev.rs). Its git-hosted
# dependency `geco` is pinned to the npm release, and peer dependencies (React Native
# modules hosted on GitHub) are left out: this machine reaches only the npm registry.
konnector="$tools/konnector"
if ! cmp -s tests/konnector/package.json "$konnector/package.json" || [ ! -d "$konnector/node_modules/cozy-konnector-libs" ]; then
  echo "installing cozy-konnector-libs 5.13.0 (about half a minute)" >&2
  mkdir -p "$konnector"
  cp tests/konnector/package.json "$konnector/package.json"
  npm install --prefix "$konnector" --no-audit --no-fund --loglevel=error --legacy-peer-deps >&2
fi
export BROKER_TEST_KONNECTOR_LIBS="$konnector/node_modules"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing it from Debian" >&2
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  >"$tools/redis.log" 2>&1 &
redis_pid=$!

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# pouchdb-server writes its config and log into the working directory.
(cd "$tools" && exec ./node_modules/.bin/pouchdb-server --in-memory --port "$port" --host 127.0.0.1 >"$tools/pouchdb.log" 2>&1) &
pouch_pid=$!
trap 'kill $pouch_pid $redis_pid 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pouch_pid" 2>/dev/null; then cat "$tools/pouchdb.log" >&2; echo "pouchdb-server died" >&2; exit 1; fi
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/" >/dev/null

for _ in $(seq 1 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then break; fi
  if ! kill -0 "$redis_pid" 2>/dev/null; then cat "$tools/redis.log" >&2; echo "redis-server died" >&2; exit 1; fi
  sleep 0.1
done

export BROKER_TEST_COUCHDB_URL="http://127.0.0.1:$port"
# cozy-stack keeps session codes in Redis database 3 (`sessions`).
export BROKER_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/3"
cargo test --all-targets "$@"
