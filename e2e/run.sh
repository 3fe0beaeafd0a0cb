#!/usr/bin/env bash
# The end-to-end browser test of the web app:
#   installs what is missing (Debian's chromium, playwright-core from e2e/package-lock.json),
#   builds quire, starts `quire dev` on a free loopback port with a throwaway SQLite database,
#   runs e2e/e2e.mjs against it, and stops the server. Never downloads a browser.
# Usage: bash e2e/run.sh        Screenshots: target/e2e-screenshots/   Server log: target/e2e-server.log
#        bash e2e/run.sh bench-page.mjs   the same server, another script of e2e/ (the page benchmark)
#        E2E_RELEASE=1 bash e2e/run.sh ...  against a release build (what e2e/bench-page.sh does)
set -euo pipefail
SCRIPT="${1:-e2e.mjs}"
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ ! -x /usr/bin/chromium ]; then
  echo "e2e: installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "e2e: node and npm are needed (Node.js 20 or newer)" >&2
  exit 1
fi
if [ ! -f e2e/node_modules/playwright-core/package.json ] ||
   [ "$(node -p "require('./e2e/node_modules/playwright-core/package.json').version")" != \
     "$(node -p "require('./e2e/package.json').dependencies['playwright-core']")" ]; then
  echo "e2e: npm ci"
  (cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi

if [ -n "${E2E_RELEASE:-}" ]; then
  echo "e2e: cargo build --release -p quire"
  cargo build --release -p quire
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/quire"
else
  echo "e2e: cargo build -p quire"
  cargo build -p quire
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/quire"
fi

TMP=$(mktemp -d)
PORT=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
LOG="$ROOT/target/e2e-server.log"
mkdir -p "$ROOT/target"
"$BIN" dev --addr "127.0.0.1:$PORT" --database-url "sqlite://$TMP/e2e.db" >"$LOG" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  if node -e "fetch('http://127.0.0.1:$PORT/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"; then break; fi
  if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "e2e: quire dev exited; its log:" >&2
    cat "$LOG" >&2
    exit 1
  fi
  sleep 0.1
done

echo "e2e: quire dev at http://127.0.0.1:$PORT (log: target/e2e-server.log)"
QUIRE_URL="http://127.0.0.1:$PORT" QUIRE_BIN="$BIN" node "e2e/$SCRIPT"
