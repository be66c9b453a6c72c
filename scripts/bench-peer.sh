#!/usr/bin/env bash
# The broker against Grant on one local provider: installs Grant and express (npm) into
# benches/peer/, then runs `cargo bench --bench peer`, which prints the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d benches/peer/node_modules/grant ]; then
  npm install --prefix benches/peer --no-audit --no-fund --loglevel=error >&2
fi
cargo bench --bench peer
