#!/usr/bin/env bash
# Installs what spikeforge needs into .venv (pinned), and iverilog through
# apt-get when it is not on PATH. A second run reuses what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STAMP=.venv/.spikeforge-installed
if [ ! -x .venv/bin/python ]; then
  echo "spikeforge setup: creating virtual environment .venv"
  "$PY" -m venv .venv
fi
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "spikeforge setup: installing pinned Python packages (first run only)"
  # pip's notes about this machine's unused local index folders are noise here
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 \
    | { grep -v "^WARNING: Location 'file://" || true; }
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "spikeforge setup: pip install failed" >&2; exit 1; }
  touch "$STAMP"
fi
if ! command -v iverilog >/dev/null 2>&1; then
  echo "spikeforge setup: iverilog not found, installing Debian's iverilog with apt-get"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq iverilog; } >/tmp/spikeforge-apt.log 2>&1; then
    echo "spikeforge setup: could not install iverilog with apt-get (see /tmp/spikeforge-apt.log);" \
         "install Icarus Verilog yourself (Debian/Ubuntu: apt-get install iverilog)" >&2
    exit 1
  fi
fi
