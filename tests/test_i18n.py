"""The Dutch catalogue: complete, not fuzzy, placeholders intact, compiles, matches the source."""

from __future__ import annotations

import gettext
import io
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "inbox" / "translations"
POT_PATH = TRANSLATIONS / "messages.pot"
NL_PO_PATH = TRANSLATIONS / "nl" / "LC_MESSAGES" / "messages.po"
NL_MO_PATH = TRANSLATIONS / "nl" / "LC_MESSAGES" / "messages.mo"

PLACEHOLDER = re.compile(r"%\((\w+)\)[a-z]|%[a-z%]")
"""A printf-style placeholder as gettext uses them: ``%(name)s``, or a bare ``%s`` or ``%%``."""

REFRESH_HINT = "run scripts/update-translations.sh and translate the new entries in the .po file"


def read_catalogue(path: Path, locale: str | None = None) -> Catalog:
    """Read a .po or .pot file."""
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def message_ids(catalogue: Catalog) -> list[str]:
    """Return the singular msgids of a catalogue, without the header entry."""
    return [str(m.id if isinstance(m.id, str) else m.id[0]) for m in catalogue if m.id]


def placeholders(text: str) -> list[str]:
    """Return the sorted placeholders of a message, so that their order may differ."""
    return sorted(match.group(0) for match in PLACEHOLDER.finditer(text))


def singular(value: str | tuple[str, ...] | list[str]) -> str:
    """Return the singular form of a msgid or msgstr."""
    return value if isinstance(value, str) else value[0]


def plural_forms(value: str | tuple[str, ...] | list[str]) -> list[str]:
    """Return every form of a msgid or msgstr: one for a plain message, more for ngettext."""
    return [value] if isinstance(value, str) else list(value)


POT = read_catalogue(POT_PATH)
NL = read_catalogue(NL_PO_PATH, locale="nl")
POT_IDS = message_ids(POT)


def nl_entry(msgid: str) -> Message:
    """Return the Dutch entry of a msgid, failing the test when it is missing."""
    entry = NL.get(msgid)
    assert entry is not None, f"{msgid!r} is missing from {NL_PO_PATH.name}: {REFRESH_HINT}"
    return entry


def test_pot_has_messages() -> None:
    assert len(POT_IDS) > 50


@pytest.mark.parametrize("msgid", POT_IDS)
def test_nl_entry_translated(msgid: str) -> None:
    entry = nl_entry(msgid)

    for form in plural_forms(entry.string):
        assert form.strip(), f"no Dutch translation for {msgid!r}"


@pytest.mark.parametrize("msgid", POT_IDS)
def test_nl_entry_not_fuzzy(msgid: str) -> None:
    entry = nl_entry(msgid)

    assert not entry.fuzzy, f"fuzzy Dutch translation for {msgid!r}: check it, then drop the flag"


@pytest.mark.parametrize("msgid", POT_IDS)
def test_nl_entry_keeps_placeholders(msgid: str) -> None:
    entry = nl_entry(msgid)

    sources = plural_forms(entry.id)
    for index, form in enumerate(plural_forms(entry.string)):
        # Dutch has the same two plural forms as English: one, and everything else.
        assert placeholders(form) == placeholders(sources[min(index, len(sources) - 1)])


def test_nl_catalogue_not_marked_fuzzy() -> None:
    assert not NL.fuzzy


def test_nl_catalogue_passes_babel_checks() -> None:
    problems = [(m.id, [str(e) for e in errors]) for m, errors in NL.check()]

    assert problems == []


def test_nl_catalogue_compiles() -> None:
    buffer = io.BytesIO()
    write_mo(buffer, NL)
    buffer.seek(0)

    translations = gettext.GNUTranslations(buffer)

    assert translations.gettext("Access request") == "Inzageverzoek"


def test_nl_compiled_catalogue_in_tree() -> None:
    with NL_MO_PATH.open("rb") as handle:
        translations = gettext.GNUTranslations(handle)

    assert translations.gettext("Queue") == "Wachtrij"


def test_pot_matches_source() -> None:
    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "N_": None}

    extracted = {
        singular(message)
        for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords
        )
        if message
    }

    assert sorted(extracted - set(POT_IDS)) == [], f"strings missing from the .pot: {REFRESH_HINT}"
