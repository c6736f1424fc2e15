#!/usr/bin/env bash
# Create the virtual environment in .venv, install privacy-inbox into it, compile the
# translations and prepare the SQLite database in instance/.
#
# Usage: bash scripts/setup.sh [EXTRAS]   EXTRAS is a pip extras list such as "test".
# Running it again is safe and fast when everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=${1:-}
venv=${VENV:-.venv}
python=${PYTHON:-python3}

if ! command -v "$python" >/dev/null 2>&1 || ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "==> installing python3 and python3-venv with apt-get"
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: $python with the venv module is missing; run as root or install python3-venv" >&2
        exit 1
    fi
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv python3-pip >/dev/null
    python=python3
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating virtual environment $venv"
    "$python" -m venv "$venv"
fi

target="."
[ -n "$extras" ] && target=".[$extras]"
echo "==> installing privacy-inbox$([ -n "$extras" ] && echo " with $extras") into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$target"

if compgen -G "inbox/translations/*/LC_MESSAGES/messages.po" >/dev/null; then
    echo "==> compiling translations"
    "$venv/bin/pybabel" compile -d inbox/translations >/dev/null
fi

echo "==> preparing the database"
"$venv/bin/privacy-inbox" init
