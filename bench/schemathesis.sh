#!/usr/bin/env bash
# Fuzzes the REST API against its own OpenAPI document with schemathesis
# (`run --checks all`): every request the document calls valid must be
# accepted, every one it calls invalid refused, and every response must match
# the documented status, headers and schema.
#
# schemathesis lives in a throwaway venv, not in the project:
#   python3 -m venv /tmp/st && /tmp/st/bin/pip install schemathesis
#
# Usage: bench/schemathesis.sh [extra schemathesis args]
# Env: ST (venv, default /tmp/st), PORT (default 18730), MAX_TIME (seconds of
# fuzzing, default 300), QUIRE_BIN (default: build target/debug/quire).
set -euo pipefail

ST=${ST:-/tmp/st}
PORT=${PORT:-18730}
MAX_TIME=${MAX_TIME:-300}
BASE="http://127.0.0.1:$PORT"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
EXTRA=("$@")

if [ -z "${QUIRE_BIN:-}" ]; then
  cargo build -p quire --bin quire --manifest-path "$ROOT/Cargo.toml"
  QUIRE_BIN="$ROOT/target/debug/quire"
fi

# A dev server on a fresh SQLite database; stopped (by its pid) on exit.
QUIRE_DATABASE_URL="sqlite://$WORK/st.db?mode=rwc" RUST_LOG=warn \
  "$QUIRE_BIN" dev --addr "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
# On the way out: a server that died says why (its log's tail), then it goes.
stop_server() {
  if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "schemathesis.sh: the server exited; the end of its log:" >&2
    tail -n 40 "$WORK/server.log" >&2
  fi
  kill "$SERVER" 2>/dev/null
  rm -rf "$WORK"
}
trap stop_server EXIT
for _ in $(seq 1 100); do
  curl -sf "$BASE/healthz" >/dev/null && break
  sleep 0.2
done

# Dev tokens last an hour: longer than the run.
TOKEN=$(curl -sf "$BASE/__dev/token?user_id=user_st")
api() { curl -sf -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }
json_id() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }

# Real ids for the path parameters: one notebook with cells and a member for
# every operation, and a separate one for DELETE so the others keep theirs.
NOTEBOOK=$(api -X POST "$BASE/api/v1/notebooks" \
  -d '{"title":"fuzzed","cells":[{"cell_type":"code","source":"x = 1","id":"c1"},{"cell_type":"markdown","source":"# hi","id":"c2"}]}' | json_id)
DOOMED=$(api -X POST "$BASE/api/v1/notebooks" -d '{"title":"to delete"}' | json_id)
api -X PUT "$BASE/api/v1/notebooks/$NOTEBOOK/members/user_friend" -d '{"role":"viewer"}' >/dev/null

# Statuses a schema-valid request may get besides schemathesis's defaults
# (2xx, 3xx, 401, 403, 404, 409, 429, 5xx), each because of server state that
# no schema can describe.
POSITIVE='"2xx", "3xx", "401", "403", "404", "409", "429", "5xx"'
write_config() {
  local ids=$1
  {
    if [ "$ids" = yes ]; then
      cat <<EOF
[parameters]
"path.id" = "$NOTEBOOK"
"path.cell_id" = "c1"
"path.user_id" = "user_friend"

[[operations]]
include-operation-id = "deleteNotebook"
parameters = { "path.id" = "$DOOMED" }

[[operations]]
include-operation-id = "deleteCell"
parameters = { "path.cell_id" = "c2" }

EOF
    fi
    cat <<EOF
# An index past the end of the notebook is 400 (DESIGN.md): the number of
# cells is state; the schema can only bound it by the 5,000-cell limit.
[[operations]]
include-operation-id = ["insertCell", "moveCell"]
checks.positive_data_acceptance.expected-statuses = [$POSITIVE, "400"]

# A well-formed If-Match naming another version is 412: that is its job.
[[operations]]
include-operation-id = "patchNotebook"
checks.positive_data_acceptance.expected-statuses = [$POSITIVE, "412"]

# A cursor is minted and signed by the server: any other string is 400.
[[operations]]
include-operation-id = "listNotebooks"
checks.positive_data_acceptance.expected-statuses = [$POSITIVE, "400"]

# The owner's own user id is 400 (the owner stays owner): which id is the
# owner's is state, not schema.
[[operations]]
include-operation-id = "putMember"
checks.positive_data_acceptance.expected-statuses = [$POSITIVE, "400"]

# An unknown cell_type is kept as a raw cell in a document of a newer 4.x minor
# and refused (400) in one of minor 5 or older: a rule across two fields.
[[operations]]
include-operation-id = "importNotebook"
checks.positive_data_acceptance.expected-statuses = [$POSITIVE, "400"]

# quire dev runs without CLERK_WEBHOOK_SECRET, so the webhook answers its
# documented 503 (with a secret, no fuzzer could sign a request: 400).
[[operations]]
include-operation-id = "clerkWebhook"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]
checks.positive_data_acceptance.expected-statuses = [$POSITIVE, "400"]
checks.missing_required_header.expected-statuses = ["400", "503"]
EOF
  } >"$WORK/schemathesis.toml"
}

cd "$WORK"
# The WebSocket upgrade is left out: after its 101 the server speaks
# WebSocket, which an HTTP fuzzer cannot (tests/openapi.rs and
# tests/realtime.rs cover it).
run() {
  "$ST/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run \
    --checks all --exclude-operation-id notebookWebSocket \
    -H "Authorization: Bearer $TOKEN" "$@" "$BASE/api/v1/openapi.json"
}
status=0
# Examples, coverage and fuzzing with the real ids above ...
write_config yes
run --phases examples,coverage,fuzzing --max-time "$MAX_TIME" "${EXTRA[@]}" || status=$?
# ... and the stateful phase following the ids the API itself returns (the
# fixed ids would mask them).
write_config no
run --phases stateful --max-time "$MAX_TIME" "${EXTRA[@]}" || status=$?
exit "$status"
