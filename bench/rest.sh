#!/usr/bin/env bash
# REST benchmark: authenticated GET of a 20-cell notebook and a cell PATCH,
# 64 connections, wrk on the same machine. Usage: bench/rest.sh [seconds]
# Needs wrk (Debian: apt-get install wrk) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-15}"
PORT="${PORT:-18181}"
BASE="http://127.0.0.1:$PORT"
DIR=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DIR"' EXIT

cargo build --release -q -p quire
RUST_LOG=warn ./target/release/quire dev --addr "127.0.0.1:$PORT" \
  --database-url "sqlite://$DIR/bench.db" >"$DIR/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 50); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done

TOKEN=$(curl -sf "$BASE/__dev/token?user_id=user_bench&lifetime_secs=86400")
CELLS=$(python3 -c 'import json; print(json.dumps([{"cell_type": "code" if i % 2 else "markdown", "source": "x = %d\nprint(x * 2)  # a line of code of ordinary length" % i} for i in range(20)]))')
NB_JSON=$(curl -sf -H "Authorization: Bearer $TOKEN" -X POST "$BASE/api/v1/notebooks" \
  -d "{\"title\":\"bench\",\"cells\":$CELLS}")
NB=$(echo "$NB_JSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
CELL=$(echo "$NB_JSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cells"][3]["id"])')

cat >"$DIR/patch.lua" <<LUA
wrk.method = "PATCH"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.body = '{"source":"y = 42\\\\nprint(y)"}'
LUA

echo "== GET /api/v1/notebooks/{id} (20 cells), 64 connections, ${DURATION}s"
wrk -t2 -c64 -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/notebooks/$NB"
echo
echo "== PATCH /api/v1/notebooks/{id}/cells/{cell_id}, 64 connections, ${DURATION}s"
wrk -t2 -c64 -d"${DURATION}s" --latency -s "$DIR/patch.lua" "$BASE/api/v1/notebooks/$NB/cells/$CELL"
