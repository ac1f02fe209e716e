#!/usr/bin/env bash
# The Python SDK's tests: a virtual environment with pinned tools, the extension built
# into it (`maturin develop`: the workspace's dev profile and target directory, so the
# crates `cargo test` compiled are reused), then mypy (strict, over the package, its
# tests and examples/python) and pytest. The devnet tests use target/debug/the-block
# and tb-cli (or $TB_BIN_DIR): run `cargo build -p the-block -p tb-cli` first.
# The venv is $TB_PY_VENV (default: $TMPDIR/tb-python), made afresh each run.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${TB_PY_VENV:-${TMPDIR:-/tmp}/tb-python}"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  "maturin==1.16.0" "numpy==2.4.6" "websockets==17.4" \
  "pytest==9.2.0" "hypothesis==6.170.27" "mypy==2.4.1"
VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop --locked --quiet
"$VENV/bin/mypy"
"$VENV/bin/python" -m pytest -q -ra "$@"
