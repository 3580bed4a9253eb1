#!/usr/bin/env bash
# Set up (first time) and launch CyberBill Studio on http://127.0.0.1:7860
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh app
exec .venv/bin/python main.py "$@"
