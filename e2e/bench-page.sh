#!/usr/bin/env bash
# The notebook-page benchmark (BENCHMARKS.md, "Notebook page"): a release build
# of quire, and e2e/bench-page.mjs comparing the bundle in web/dist with the one
# of an earlier commit (BENCH_BASE_REV, default: the commit before the page
# speed work), both served by the same server in the same session, their runs
# alternating. The machine's load average is printed before and after.
# Usage: bash e2e/bench-page.sh      BENCH_RUNS=7 BENCH_CELLS=500 BENCH_BASE_REV=<rev> BENCH_PROFILE=<dir>
set -euo pipefail
cd "$(dirname "$0")/.."
REV="${BENCH_BASE_REV:-9a7b9b0}"
BASE_DIST=$(mktemp -d)
trap 'rm -rf "$BASE_DIST"' EXIT
git archive "$REV" web/dist | tar -x -C "$BASE_DIST"
echo "bench-page: baseline web/dist of $(git log -1 --format='%h %s' "$REV" | cut -c1-80)"
echo "bench-page: before: $(uptime)"
E2E_RELEASE=1 BENCH_VARIANTS="new=web/dist base=$BASE_DIST/web/dist" bash e2e/run.sh bench-page.mjs
echo "bench-page: after: $(uptime)"
