#!/usr/bin/env bash
# Audits the dependencies against the RustSec advisory database, offline: installs
# cargo-deny (pinned, into .tools/cargo) when missing, unpacks the snapshot of
# ../shared/advisory-db.tar.gz where deny.toml looks for it, and fails on any advisory
# deny.toml does not explain. `.ci/run` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tools="$root/.tools"
snapshot=${ADVISORY_DB_TAR:-$root/../shared/advisory-db.tar.gz}
deny="$tools/cargo/bin/cargo-deny"
if [ ! -x "$deny" ] || ! "$deny" --version | grep -q '0.20.2'; then
  echo "installing cargo-deny 0.20.2 into .tools/cargo (about six minutes the first time)" >&2
  cargo install --quiet --locked --root "$tools/cargo" cargo-deny@0.20.2 >&2
fi
dbs="$tools/advisory-dbs"
if [ ! -d "$dbs/advisory-db-3157b0e258782691" ]; then
  [ -f "$snapshot" ] || { echo "the RustSec snapshot is not at $snapshot (ADVISORY_DB_TAR=...)" >&2; exit 1; }
  rm -rf "$dbs" && mkdir -p "$dbs"
  tar -xzf "$snapshot" -C "$dbs"
  mv "$dbs/advisory-db" "$dbs/advisory-db-3157b0e258782691"
fi
# cargo-deny reads the metadata of every platform's dependencies: fetch them (from
# crates.io) so that it can run with --offline, which keeps it off GitHub.
cargo fetch --locked --quiet
"$deny" --offline check advisories
