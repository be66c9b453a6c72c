# Sourced by scripts/test.sh: installs what tests/harvest.rs runs, cozy-harvest-lib's own
# code in a real browser.
#
# - Debian's chromium (puppeteer-core drives it; no browser is downloaded);
# - the npm packages of tests/harvest/package.json into .tools/harvest: cozy-harvest-lib
#   35.1.0 (the Home app pins ^35; 35.1.0 is the newest 35.x on the registry) and 39.1.4
#   (the latest), as npm aliases, with cozy-client, cozy-realtime, esbuild, puppeteer-core
#   and ws;
# - of cozy-ui, the one module Harvest's OAuth code imports
#   (`transpiled/react/helpers/appDataset.js`, which reads `data-cozy`), taken from its npm
#   tarball: cozy-ui as a whole depends on a GitHub-hosted package this machine cannot reach.

install_harvest() {
  local tools=$1 dir="$1/harvest"
  if ! command -v chromium >/dev/null 2>&1; then
    echo "chromium not found: installing Debian's chromium (about a minute)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if ! command -v openssl >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq openssl >/dev/null
  fi
  if ! cmp -s tests/harvest/package.json "$dir/package.json" || [ ! -f "$dir/node_modules/cozy-ui/transpiled/react/helpers/appDataset.js" ]; then
    echo "installing cozy-harvest-lib 35.1.0 and 39.1.4 with puppeteer-core and esbuild (npm)" >&2
    rm -rf "$dir" && mkdir -p "$dir"
    cp tests/harvest/package.json "$dir/package.json"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --legacy-peer-deps >&2
    local ui="$dir/node_modules/cozy-ui" pack
    pack=$(cd "$dir" && npm pack --silent cozy-ui@141.0.0)
    mkdir -p "$ui/transpiled/react/helpers"
    tar -xzf "$dir/$pack" -C "$ui" --strip-components=1 package/package.json package/transpiled/react/helpers/appDataset.js
    rm -f "$dir/$pack"
  fi
  export BROKER_TEST_HARVEST_MODULES="$dir/node_modules"
  # puppeteer-core wants a path, not a command name.
  BROKER_TEST_CHROMIUM=$(command -v chromium)
  export BROKER_TEST_CHROMIUM
}
