#!/usr/bin/env bash
# Install and start the test servers, set up .venv with the test extras, then run the whole
# suite twice: on SQLite and on PostgreSQL. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
bash scripts/setup.sh test

status=0
for database in sqlite postgresql; do
    echo "==> test suite on $database"
    INBOX_TEST_DB=$database .venv/bin/python -m pytest -p no:cacheprovider "$@" || status=$?
    [ "$status" -eq 0 ] || break
done
exit "$status"
