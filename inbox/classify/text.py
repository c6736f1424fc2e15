"""Reduce a mail body to the text its writer just wrote, and guess its language."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inbox.classify.phrasebook import PhraseBook

UNDETERMINED_LANGUAGE = "und"
"""ISO 639-2 code for a language that could not be determined."""

MIN_STOPWORD_HITS = 3
"""Number of stop words a text needs before a language is named."""

# RFC 3676 section 4.3 sets "-- " as the signature separator; many clients drop the space.
_SIGNATURE_RE = re.compile(r"^-- ?$", re.MULTILINE)
_QUOTED_LINE_RE = re.compile(r"^[ \t]*>.*$\n?", re.MULTILINE)
_TOKEN_RE = re.compile(r"\w+")


def strip_history(body: str, phrases: PhraseBook) -> str:
    """Remove quoted lines, the history below a reply header, the signature and legal footers.

    Falls back to the full body when nothing new is left, so that a forwarded mail without
    text of its own is still classified on what it forwards.
    """
    text = body.replace("\r\n", "\n")

    text = text[: _find_reply_header(text, phrases)]
    signature = _SIGNATURE_RE.search(text)
    if signature is not None:
        text = text[: signature.start()]
    # NOTE: footers are only cut when lowercasing keeps every offset (no "İ" or similar),
    # because the marker offset found in the lowercased text must fit the original.
    lowered = text.lower()
    if len(lowered) == len(text):
        cut = min((lowered.find(m) for m in phrases.footer_markers if m in lowered),
                  default=len(text))
        text = text[:cut]
    if ">" in text:
        text = _QUOTED_LINE_RE.sub("", text)

    if not text.strip():
        return body
    return text


def _find_reply_header(text: str, phrases: PhraseBook) -> int:
    """Return the offset of the first reply header line, or the text length if there is none.

    Matching at each line start is far cheaper than a multi-line search, because the regex
    engine does not skip ahead to line starts by itself.
    """
    pattern = phrases.reply_header_re
    if pattern is None:
        return len(text)
    position = 0
    while position < len(text):
        if pattern.match(text, position) is not None:
            return position
        newline = text.find("\n", position)
        if newline < 0:
            break
        position = newline + 1
    return len(text)


def detect_language(tokens: list[str], phrases: PhraseBook) -> str:
    """Return the language whose stop words occur most often among ``tokens``, or "und"."""
    counts: dict[str, int] = {}
    lookup = phrases.stopword_languages
    for token in tokens:
        for language in lookup.get(token, ()):
            counts[language] = counts.get(language, 0) + 1
    if not counts:
        return UNDETERMINED_LANGUAGE

    language = max(counts, key=counts.__getitem__)
    hits = counts[language]
    if hits < MIN_STOPWORD_HITS:
        return UNDETERMINED_LANGUAGE
    return language


def tokenize(text: str) -> list[re.Match[str]]:
    """Split lowercased text into word matches that keep their offsets."""
    return list(_TOKEN_RE.finditer(text))
