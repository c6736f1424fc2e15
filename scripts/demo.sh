#!/usr/bin/env bash
# Set everything up, ingest the bundled sample mails, print a summary and serve the web UI
# on http://127.0.0.1:5000/ (embedded default: SQLite in instance/, no Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/privacy-inbox demo "$@"
