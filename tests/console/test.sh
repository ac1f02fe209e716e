#!/usr/bin/env bash
# The operator's console: the explorer in headless Chromium (selenium, with Debian's
# chromium and chromium-driver), the dashboards and alert rules against a real
# Prometheus (Debian's prometheus), all against one devnet that settled a job and
# slashed a cheater. Uses target/debug/the-block and tb-cli (or $TB_BIN_DIR): run
# `cargo build -p the-block -p tb-cli` first. The venv is $TB_CONSOLE_VENV (default
# $TMPDIR/tb-console), made afresh each run.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${TB_CONSOLE_VENV:-${TMPDIR:-/tmp}/tb-console}"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  "pytest==9.2.0" "selenium==4.40.0" "PyYAML==6.0.3"
# Selenium must not try to download a driver: the path is given.
export SE_OFFLINE=true
"$VENV/bin/python" -m pytest -q -ra -p no:cacheprovider "$@"
