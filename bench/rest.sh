#!/usr/bin/env bash
# REST benchmark: authenticated GET of a 20-cell notebook and a cell PATCH,
# 64 connections, wrk on the same machine. Usage: bench/rest.sh [seconds]
# Needs wrk (Debian: apt-get install wrk) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-15}"
PORT="${PORT:-18181}"
. bench/common.sh

start_dev_server
TOKEN=$(bench_token)
NB_JSON=$(create_bench_notebook "$TOKEN")
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
