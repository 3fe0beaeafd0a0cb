#!/usr/bin/env bash
# CI: quire's .ipynb exports of nbformat's own test notebooks, checked with the
# real `nbformat.validate` from PyPI (in a throwaway venv), not only with the
# JSON-schema check `cargo test` runs. The Rust test imports every valid
# fixture through the REST API and writes each export to
# $QUIRE_IPYNB_EXPORT_DIR; this script then validates every file there,
# strictly: nbformat 4.5, and no repair (a duplicate or missing cell id that
# nbformat would silently fix counts as a failure).
set -euo pipefail
cd "$(dirname "$0")/.."

# The nbformat release the fixtures were taken from (tests/fixtures/nbformat/README.md).
NBFORMAT_VERSION=5.11.1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "nbformat==$NBFORMAT_VERSION"

export QUIRE_IPYNB_EXPORT_DIR="$work/exports"
export CARGO_TERM_COLOR=never
cargo test -p quire --test ipynb_nbformat -- --exact valid_fixtures_import_and_export_schema_valid_documents

"$work/venv/bin/python" - "$QUIRE_IPYNB_EXPORT_DIR" <<'PY'
import json
import pathlib
import sys
import warnings

import nbformat

warnings.simplefilter("error")  # any repair nbformat would make is a failure
files = sorted(pathlib.Path(sys.argv[1]).glob("*.ipynb"))
if not files:
    sys.exit("no exports were written")
failed = 0
for path in files:
    nb = nbformat.from_dict(json.loads(path.read_text(encoding="utf-8")))
    try:
        if (nb.nbformat, nb.nbformat_minor) != (4, 5):
            raise ValueError(f"nbformat {nb.nbformat}.{nb.nbformat_minor}, want 4.5")
        nbformat.validate(nb)
    except Exception as e:  # noqa: BLE001 - report every kind of failure
        failed += 1
        print(f"INVALID {path.name}: {e}", file=sys.stderr)
    else:
        print(f"valid   {path.name}")
print(f"nbformat {nbformat.__version__}: {len(files) - failed}/{len(files)} exports valid")
sys.exit(1 if failed else 0)
PY
