#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 600), starting from the corpus kept in
# fuzz/corpus/ (read only); what it finds goes to fuzz/target/corpus/.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets the stable
# toolchain take the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
export RUSTC_BOOTSTRAP=1
# SQLite is linked twice into the sanitized build; the duplicate global is harmless.
export ASAN_OPTIONS=detect_odr_violation=0
cargo fuzz build -O
for target in token_reply account_type redirect_query; do
  echo "== $target: ${seconds}s" >&2
  mkdir -p "fuzz/target/corpus/$target"
  "fuzz/target/x86_64-unknown-linux-gnu/release/$target" "fuzz/target/corpus/$target" "fuzz/corpus/$target" \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
done
