#!/usr/bin/env bash
# Create .venv and install the pinned requirements (skipped when unchanged since last time).
# Usage: scripts/setup.sh [app|dev]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-app}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
req=requirements.txt
[ "$what" = dev ] && req=requirements-dev.txt
stamp=".venv/.installed-$what"
sum=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  # torch first and pinned: an unpinned resolve would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -r "$req"
  echo "$sum" > "$stamp"
fi
if [ "$what" = dev ] && ! command -v chromium >/dev/null 2>&1; then
  # Browser tests drive Debian's Chromium (Playwright cannot download a browser offline).
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    (sudo apt-get update -qq && sudo apt-get install -y -qq chromium) >/dev/null
  else
    echo "Install Debian's chromium package for the browser tests." >&2
  fi
fi
