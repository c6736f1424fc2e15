"""Split a reply into its new text and the quoted history or signature below it."""

from __future__ import annotations

import logging
import re

logger = logging.getLogger(__name__)

# Attribution lines that mail clients put above a quoted message. They may be wrapped over
# two lines, so each is tried on a line alone and joined with the next one.
_ATTRIBUTION = re.compile(
    r"^\s*(?:"
    r"On\b.{1,300}\bwrote\s*:"
    r"|Op\b.{1,300}\bschreef\b.{0,300}:"
    r"|Am\b.{1,300}\bschrieb\b.{0,300}:"
    r"|Le\b.{1,300}\ba [ée]crit\s*:"
    r")\s*$",
    re.IGNORECASE,
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Oorspronkelijk bericht|Origineel bericht"
    r"|Ursprüngliche Nachricht|Message d'origine|Forwarded message"
    r"|Doorgestuurd bericht|Weitergeleitete Nachricht|Message transféré)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\**(?:From|Van|Von|De)\s*\**\s*:", re.IGNORECASE)
_HEADER_OTHER = re.compile(
    r"^\s*\**(?:Sent|Date|To|Subject|Cc|Verzonden|Datum|Aan|Onderwerp|Gesendet|An|Betreff"
    r"|Envoyé|À|Objet)\s*\**\s*:",
    re.IGNORECASE,
)
_UNDERSCORE_RULE = re.compile(r"^\s*_{10,}\s*$")
_SIGNATURE = re.compile(r"^-- ?$")
_QUOTED = re.compile(r"^\s*>")

HEADER_BLOCK_LINES = 5
"""Lines after a From: line in which another header line must appear to form a header block."""


def _is_header_block(lines: list[str], index: int) -> bool:
    """Tell whether a From:/Van:/Von:/De: line opens a quoted Outlook header block."""
    if not _HEADER_FROM.match(lines[index]):
        return False
    following = lines[index + 1 : index + 1 + HEADER_BLOCK_LINES]
    return any(_HEADER_OTHER.match(line) for line in following)


def _is_attribution(lines: list[str], index: int) -> bool:
    """Tell whether an attribution line starts here, alone or wrapped onto the next line."""
    if _ATTRIBUTION.match(lines[index]):
        return True
    if index + 1 < len(lines) and lines[index].strip():
        return bool(_ATTRIBUTION.match(lines[index] + " " + lines[index + 1]))
    return False


def _find_marker(lines: list[str]) -> int | None:
    """Return the index of the first line that opens quoted history or a signature."""
    for index, line in enumerate(lines):
        if _SIGNATURE.match(line) or _ORIGINAL_MESSAGE.match(line):
            return index
        if _is_attribution(lines, index) or _is_header_block(lines, index):
            return index
        if _UNDERSCORE_RULE.match(line) and index + 1 < len(lines):
            if _is_header_block(lines, index + 1):
                return index
    return None


def _find_trailing_quote(lines: list[str]) -> int | None:
    """Return where a block of "> " lines starts that runs to the end of the text."""
    start = None
    for index, line in enumerate(lines):
        if _QUOTED.match(line):
            if start is None:
                start = index
        elif line.strip():
            start = None
    return start


def split_reply(text: str) -> tuple[str, str]:
    """Split mail text into the new text and the quoted history or signature below it.

    NOTE: "> " lines count as history only when nothing but quotes follows them, so new
    text written between quotes stays new. Attribution lines and header blocks cut anyway.
    """
    lines = text.splitlines()
    candidates = [i for i in (_find_marker(lines), _find_trailing_quote(lines)) if i is not None]
    if not candidates:
        return text.strip(), ""

    cut = min(candidates)
    new_text = "\n".join(lines[:cut]).strip()
    quoted = "\n".join(lines[cut:]).strip()
    return new_text, quoted
