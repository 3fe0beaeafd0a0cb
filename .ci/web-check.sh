#!/usr/bin/env bash
# CI for the front-end bundle: installs web/'s npm dependencies from
# package-lock.json, rebuilds web/dist/, runs the front-end unit tests
# (node --test over web/test/), and fails when the rebuilt bundle differs
# from the committed one (someone changed web/src/ without `npm run build`,
# or the build stopped being reproducible).
set -euo pipefail
cd "$(dirname "$0")/.."

(cd web && npm ci --no-audit --no-fund && npm run build)
node --test web/test/
if ! git diff --exit-code --stat -- web/dist || [ -n "$(git status --porcelain -- web/dist)" ]; then
  echo "web-check: web/dist differs from a rebuild of web/src; run: cd web && npm ci && npm run build" >&2
  git status --short -- web/dist >&2
  exit 1
fi
echo "web-check: web/dist matches a rebuild from package-lock.json"
