#!/usr/bin/env bash
# Authenticated GET of a 20-cell notebook with a session token and with an
# API key (cache warm: each token is verified once, then served from the
# verified-token cache), alternating runs in one session so both see the same
# machine. 64 connections, wrk on the same machine.
# Usage: bench/identity.sh [seconds per run] [rounds]
# Needs wrk (Debian: apt-get install wrk) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
ROUNDS="${2:-3}"
PORT="${PORT:-18182}"
. bench/common.sh

start_dev_server
TOKEN=$(bench_token)
KEY=$(curl -sf "$BASE/__dev/api_key?subject=user_bench")
NB=$(create_bench_notebook "$TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
URL="$BASE/api/v1/notebooks/$NB"
# Both must really be served (and warm the caches) before measuring.
curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "$URL"
curl -sf -o /dev/null -H "Authorization: Bearer $KEY" "$URL"

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  for kind in session api_key; do
    if [ "$kind" = session ]; then BEARER=$TOKEN; else BEARER=$KEY; fi
    echo "== round $round: GET (20 cells) with a $kind, 64 connections, ${DURATION}s"
    wrk -t2 -c64 -d"${DURATION}s" --latency -H "Authorization: Bearer $BEARER" "$URL" |
      grep -E "Requests/sec|99%|Non-2xx"
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
