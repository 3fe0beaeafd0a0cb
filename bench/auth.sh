#!/usr/bin/env bash
# Auth cost on the hot path: authenticated GET /api/v1/notebooks/{id} (20 cells),
# 64 connections, in one run: verified-token cache off, on, and the
# clients.verify strategy (with its cache) against the local stand-in.
# Usage: bench/auth.sh [seconds]. Needs wrk and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-15}"
PORT="${PORT:-18282}"
BASE="http://127.0.0.1:$PORT"
DIR=$(mktemp -d)
SERVER=""
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT

cargo build --release -q -p quire

run() { # label, then env assignments for the server
  local label="$1"; shift
  env "$@" RUST_LOG=warn ./target/release/quire dev --addr "127.0.0.1:$PORT" \
    --database-url "sqlite://$DIR/$label.db" >"$DIR/$label.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 50); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
  local token cells nb before after
  token=$(curl -sf "$BASE/__dev/token?user_id=user_bench&lifetime_secs=86400")
  cells=$(python3 -c 'import json; print(json.dumps([{"cell_type": "code", "source": "x = %d\nprint(x * 2)" % i} for i in range(20)]))')
  nb=$(curl -sf -H "Authorization: Bearer $token" -X POST "$BASE/api/v1/notebooks" -d "{\"title\":\"bench\",\"cells\":$cells}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  before=$(curl -sf "$BASE/__dev/stats")
  echo "== $label"
  wrk -t2 -c64 -d"${DURATION}s" --latency -H "Authorization: Bearer $token" "$BASE/api/v1/notebooks/$nb" \
    | grep -E "Requests/sec|requests in|50%|99%|Non-2xx"
  after=$(curl -sf "$BASE/__dev/stats")
  echo "   stand-in calls before/after: $before -> $after"
  kill $SERVER; wait $SERVER 2>/dev/null || true; SERVER=""
}

run no-cache QUIRE_TOKEN_CACHE_CAPACITY=0
run cache QUIRE_TOKEN_CACHE_CAPACITY=100000
run clients-verify QUIRE_AUTH_STRATEGY=clients-verify
