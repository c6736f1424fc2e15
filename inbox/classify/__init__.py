"""Multilingual classifier that gives a mail its request type, confidence and evidence.

The classifier is pure: it reads no database, no clock and no settings. Phrase lists and
weights live in ``phrases/<lang>.yaml``; an installation can add its own files through
``load_phrasebook(extra_dirs=...)``.
"""

from __future__ import annotations

from inbox.classify.classifier import Classification, classify
from inbox.classify.phrasebook import PhraseBook, PhraseBookError, load_phrasebook

__all__ = ["Classification", "PhraseBook", "PhraseBookError", "classify", "load_phrasebook"]
