"""Find direct requests about the writer's own data in mails that the phrase scores put in other.

A direct request is a sentence with a request cue ("kunnen jullie", "please", "bitte") and a
mention of the writer's own data ("mijn gegevens", "my details", "über mich"). Such a mail is
kept out of "other" with low confidence, because "other" starts no legal deadline.

NOTE: the rule also matches requests that invoke no GDPR right ("kunt u mijn gegevens in de
offerte zetten?"). Their low confidence leaves the type to a person in the queue.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from inbox.classify.phrasebook import PhraseBook
from inbox.enums import RequestType

DIRECT_CONFIDENCE = 0.3
"""Confidence of a type chosen from a direct request, low enough for the queue to ask for a
type check."""

DIRECT_MIN_SCORE = 2.0
"""Lowest score, summed over direct-request sentences, with which a type beats "other"."""

WEAK_SIGNAL_SCORE = 1.0
"""Lowest total with which a request type, rather than access, names a vague direct request."""

_SENTENCE_END_RE = re.compile(r"[.!?;]+|\n[ \t]*\n")


@dataclass(frozen=True)
class LocatedHit:
    """One weighted phrase hit and where it starts in the lowercased subject or body."""

    is_body: bool
    start: int
    type: RequestType
    value: float


@dataclass(frozen=True)
class DirectRequest:
    """The type given to a mail for its direct request, with the confidence and the evidence."""

    type: RequestType
    confidence: float
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class _Sentence:
    is_body: bool
    start: int
    end: int
    own_data: str


def _direct_sentences(
    cue_re: re.Pattern[str], own_data_re: re.Pattern[str], texts: tuple[str, str]
) -> Iterator[_Sentence]:
    """Yield the sentences of subject and body that contain a request cue and own data."""
    for is_body, text in enumerate(texts):
        lowered = text.lower()
        start = 0
        for end_match in [*_SENTENCE_END_RE.finditer(lowered), None]:
            end = end_match.start() if end_match is not None else len(lowered)
            own = own_data_re.search(lowered, start, end)
            if own is not None and cue_re.search(lowered, start, end):
                yield _Sentence(bool(is_body), start, end, " ".join(own.group().split()))
            if end_match is not None:
                start = end_match.end()


def decide_direct_request(
    book: PhraseBook,
    texts: tuple[str, str],
    hits: Sequence[LocatedHit],
    totals: dict[RequestType, float],
) -> DirectRequest | None:
    """Pick a request type for a mail scored as other that asks about the writer's own data.

    A type wins when its hits inside direct-request sentences reach DIRECT_MIN_SCORE, even
    against noise such as a job application subject. Without such hits, a mail with no
    noise phrases of its own becomes its strongest weak request type, or access.

    :param texts: the subject and the body text that was scored, in that order.
    :param hits: the phrase hits, without those of types that a false friend damped.
    :param totals: the scores per type, without the types that a false friend damped.
    """
    if book.request_cue_re is None or book.own_data_re is None:
        return None
    sentences = list(_direct_sentences(book.request_cue_re, book.own_data_re, texts))
    if not sentences:
        return None
    evidence = tuple(dict.fromkeys(sentence.own_data for sentence in sentences))[:2]

    in_sentences: defaultdict[RequestType, float] = defaultdict(float)
    for hit in hits:
        if hit.type is RequestType.OTHER:
            continue
        if any(s.is_body == hit.is_body and s.start <= hit.start < s.end for s in sentences):
            in_sentences[hit.type] += hit.value
    if in_sentences:
        best_type = max(in_sentences, key=in_sentences.__getitem__)
        if in_sentences[best_type] >= DIRECT_MIN_SCORE:
            return DirectRequest(best_type, DIRECT_CONFIDENCE, evidence)

    if totals.get(RequestType.OTHER, 0.0) >= DIRECT_MIN_SCORE:
        return None
    weak = {
        t: s for t, s in totals.items() if t is not RequestType.OTHER and s >= WEAK_SIGNAL_SCORE
    }
    chosen = max(weak, key=weak.__getitem__) if weak else RequestType.ACCESS
    return DirectRequest(chosen, DIRECT_CONFIDENCE, evidence)
