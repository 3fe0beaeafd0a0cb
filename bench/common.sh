# Shared by the wrk benches (bench/rest.sh, bench/identity.sh): a release
# `quire dev` on a throwaway SQLite database, and a 20-cell notebook to GET.
# Source it after setting PORT; it sets BASE, DIR and SERVER and stops the
# server and removes DIR on exit.

BASE="http://127.0.0.1:$PORT"
DIR=$(mktemp -d)
SERVER=""
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$DIR"' EXIT

# Builds and starts the server (extra env assignments may be given), waits for /healthz.
start_dev_server() {
  cargo build --release -q -p quire
  env "$@" RUST_LOG=warn ./target/release/quire dev --addr "127.0.0.1:$PORT" \
    --database-url "sqlite://$DIR/bench.db" >"$DIR/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 50); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
}

# A dev session token for user_bench that outlives any run.
bench_token() {
  curl -sf "$BASE/__dev/token?user_id=user_bench&lifetime_secs=86400"
}

# Creates the 20-cell notebook with token $1; prints its JSON.
create_bench_notebook() {
  local cells
  cells=$(python3 -c 'import json; print(json.dumps([{"cell_type": "code" if i % 2 else "markdown", "source": "x = %d\nprint(x * 2)  # a line of code of ordinary length" % i} for i in range(20)]))')
  curl -sf -H "Authorization: Bearer $1" -X POST "$BASE/api/v1/notebooks" -d "{\"title\":\"bench\",\"cells\":$cells}"
}
