#!/usr/bin/env bash
# Refresh the gettext catalogues: extract messages.pot, update (or create) the Dutch
# catalogue from it, then compile every catalogue to .mo.
#
# Run from anywhere; it works in the repository root. VENV selects the virtualenv whose
# pybabel is used (default .venv, then /tmp/venv when .venv has none).
set -euo pipefail

cd "$(dirname "$0")/.."

TRANSLATIONS=inbox/translations
POT="$TRANSLATIONS/messages.pot"
LOCALES=(nl)

fail() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

find_pybabel() {
    local candidate
    for candidate in "${VENV:-.venv}/bin/pybabel" /tmp/venv/bin/pybabel; do
        if [ -x "$candidate" ]; then
            printf '%s\n' "$candidate"
            return
        fi
    done
    fail "pybabel not found in ${VENV:-.venv}/bin or /tmp/venv/bin; install the project's dependencies into a virtualenv and set VENV to it"
}

PYBABEL=$(find_pybabel)

# -k adds the lazy_gettext names and the N_ marker of inbox/attention.py to the default
# keywords (_, gettext, ngettext, ...).
# --ignore-dirs keeps the virtualenvs, tests and benchmarks out of the catalogue, and
# --add-location=file leaves line numbers out so that moving code does not churn the files.
"$PYBABEL" -q extract -F babel.cfg -k _l -k lazy_gettext -k N_ \
    --ignore-dirs=".* _* .venv venv tests bench" \
    --add-location=file --sort-by-file \
    --project=privacy-inbox --copyright-holder="privacy-inbox contributors" \
    -o "$POT" .

for locale in "${LOCALES[@]}"; do
    if [ -f "$TRANSLATIONS/$locale/LC_MESSAGES/messages.po" ]; then
        "$PYBABEL" -q update -i "$POT" -d "$TRANSLATIONS" -l "$locale" --no-fuzzy-matching
    else
        "$PYBABEL" -q init -i "$POT" -d "$TRANSLATIONS" -l "$locale"
    fi
done

"$PYBABEL" compile -d "$TRANSLATIONS" --statistics
