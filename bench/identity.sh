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
BASE="http://127.0.0.1:$PORT"
DIR=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DIR"' EXIT

cargo build --release -q -p quire
RUST_LOG=warn ./target/release/quire dev --addr "127.0.0.1:$PORT" \
  --database-url "sqlite://$DIR/bench.db" >"$DIR/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 50); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done

TOKEN=$(curl -sf "$BASE/__dev/token?user_id=user_bench&lifetime_secs=86400")
KEY=$(curl -sf "$BASE/__dev/api_key?subject=user_bench")
CELLS=$(python3 -c 'import json; print(json.dumps([{"cell_type": "code" if i % 2 else "markdown", "source": "x = %d\nprint(x * 2)  # a line of code of ordinary length" % i} for i in range(20)]))')
NB=$(curl -sf -H "Authorization: Bearer $TOKEN" -X POST "$BASE/api/v1/notebooks" \
  -d "{\"title\":\"bench\",\"cells\":$CELLS}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
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
