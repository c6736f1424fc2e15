"""Score a mail against the phrase book and pick its request type, confidence and evidence."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

from inbox.classify.direct import LocatedHit, decide_direct_request
from inbox.classify.phrasebook import KEY_LENGTH, PhraseBook, Rule, load_phrasebook
from inbox.classify.text import detect_language, strip_history, tokenize
from inbox.enums import RequestType

SUBJECT_FACTOR = 2.0
"""Multiplier for phrases in the subject, which names the request more often than not."""

LEAD_CHARS = 700
"""Number of body characters that count as the opening, where template letters state the main
request before they add further rights."""

LEAD_FACTOR = 1.5
"""Multiplier for phrases in the opening of the body."""

CONTRAST_FACTOR = 1.5
"""Multiplier for a phrase after a contrast word ("I only want a copy", "maar wel inzage")."""

REPEAT_FACTORS = (1.0, 0.5, 0.25)
"""Weight of the first, second and third hit of one phrase. Further hits add nothing."""

NEGATION_WINDOW_TOKENS = 5
"""Number of words before a phrase searched for a negation such as "not" or "geen"."""

NEGATION_AFTER_TOKENS = 2
"""Number of words after a phrase searched for a trailing negation such as "nicht"."""

MIN_REQUEST_SCORE = 2.0
"""Lowest score with which a request type beats "other"."""

SUPPRESS_FACTOR = 0.2
"""Share of its score that a type keeps when a false friend such as "bezwaarschrift" matched."""

SECONDARY_SHARE = 0.3
"""Share of the winning score that another type needs to be listed as secondary."""

NO_SIGNAL_CONFIDENCE = 0.5
"""Confidence of "other" when no phrase matched at all."""

STRENGTH_SCALE = 5.0
"""Score at which confidence reaches 63% of its margin-based maximum (1 - 1/e)."""

ARTICLE_WEIGHT = 3.0
"""Weight of a GDPR article reference followed by the regulation's name ("art. 15 AVG")."""

BARE_ARTICLE_WEIGHT = 1.5
"""Weight of an article reference without a law name ("Artikel 21 Absatz 2")."""

LAW_NAME_WINDOW_CHARS = 40
"""Number of characters after an article number searched for the name of the law."""

# GDPR articles and the request type each one grounds. Art. 7(3) is the withdrawal of
# consent. Art. 77 is the complaint to a supervisory authority, which is no request to the
# controller. A complaint names Art. 77 once and the article it complains about several
# times, so Art. 77 gets a larger factor.
ARTICLE_TYPES: dict[int, tuple[RequestType, float]] = {
    7: (RequestType.CONSENT_WITHDRAWAL, 1.0),
    15: (RequestType.ACCESS, 1.0),
    16: (RequestType.RECTIFICATION, 1.0),
    17: (RequestType.ERASURE, 1.0),
    18: (RequestType.RESTRICTION, 1.0),
    20: (RequestType.PORTABILITY, 1.0),
    21: (RequestType.OBJECTION, 1.0),
    22: (RequestType.AUTOMATED_DECISION, 1.0),
    33: (RequestType.BREACH, 1.0),
    34: (RequestType.BREACH, 1.0),
    77: (RequestType.OTHER, 2.0),
}
ARTICLES_NEEDING_LAW_NAME = frozenset((7, 33, 34, 77))
_SENTENCE_BREAK_RE = re.compile(r"[.!?;:\n]")


@dataclass(frozen=True)
class Classification:
    """The request type of a mail, with the other rights it invokes and why."""

    type: RequestType
    secondary: tuple[RequestType, ...]
    confidence: float
    language: str
    evidence: tuple[str, ...]


@dataclass
class _Scores:
    """Running totals per type while a mail is scored."""

    totals: defaultdict[RequestType, float]
    evidence: defaultdict[RequestType, dict[str, float]]
    hits: defaultdict[str, int]
    suppressed: set[RequestType]
    located: list[LocatedHit] = field(default_factory=list)

    def add(self, rule_id: str, rule_type: RequestType, weight: float, found: str) -> None:
        """Add one hit, weighting repeats of the same phrase down."""
        count = self.hits[rule_id]
        self.hits[rule_id] = count + 1
        if count >= len(REPEAT_FACTORS):
            return
        value = weight * REPEAT_FACTORS[count]
        self.totals[rule_type] += value
        if value > 0:
            phrase = " ".join(found.split())
            self.evidence[rule_type][phrase] = self.evidence[rule_type].get(phrase, 0) + value


class _Context:
    """The negation, contrast and pronoun words of the detected language, checked around a hit."""

    def __init__(self, book: PhraseBook, language: str) -> None:
        words = book.languages.get(language)
        if words is None:
            words_list = list(book.languages.values())
            self.negations = frozenset().union(*(w.negations for w in words_list))
            self.after = frozenset().union(*(w.negations_after for w in words_list))
            self.contrasts = frozenset().union(*(w.contrasts for w in words_list))
            self.pronouns = frozenset().union(*(w.subject_pronouns for w in words_list))
        else:
            self.negations, self.after, self.contrasts, self.pronouns = (
                words.negations, words.negations_after, words.contrasts, words.subject_pronouns)

    def look_back(self, text: str, tokens: list[re.Match[str]], index: int) -> tuple[bool, bool]:
        """Return (negated, contrasted) for the hit starting at token ``index``.

        A subject pronoun between a negation and the hit opens a new clause, so the negation
        belongs to the clause before ("ik werk hier niet meer en ik trek mijn toestemming in").
        """
        in_clause = True
        for back in range(index - 1, max(index - 1 - NEGATION_WINDOW_TOKENS, -1), -1):
            if _SENTENCE_BREAK_RE.search(text, tokens[back].end(), tokens[back + 1].start()):
                return False, False
            word = tokens[back].group()
            if word in self.contrasts:
                return False, True
            if word in self.pronouns:
                in_clause = False
            elif in_clause and word in self.negations:
                return True, False
        return False, False

    def look_ahead(self, text: str, tokens: list[re.Match[str]], end: int, index: int) -> bool:
        """Return whether a trailing negation ("löschen Sie nicht") follows the hit."""
        position = end
        seen = 0
        for token in tokens[index + 1:]:
            if token.start() < end:
                continue
            if seen >= NEGATION_AFTER_TOKENS or _SENTENCE_BREAK_RE.search(text, position,
                                                                          token.start()):
                return False
            if token.group() in self.after:
                return True
            position = token.end()
            seen += 1
        return False


def _score_rules(book: PhraseBook, original: str, tokens: list[re.Match[str]], is_body: bool,
                 context: _Context, scores: _Scores) -> None:
    """Match every indexed phrase against one text, adding the weights of the hits.

    ``tokens`` are the words of the lowercased ``original``, as ``tokenize`` returns them.
    """
    text = tokens[0].string if tokens else ""
    source = original if len(text) == len(original) else text
    factor = 1.0 if is_body else SUBJECT_FACTOR
    by_key = book.rules_by_key
    for index, token in enumerate(tokens):
        word = token.group()
        candidates = by_key.get(word, ()) + by_key.get("*" + word[:KEY_LENGTH], ())
        if not candidates:
            continue
        best: dict[RequestType, tuple[float, Rule, re.Match[str]]] = {}
        for rule in candidates:
            found = rule.pattern.match(text, token.start())
            if found is None:
                continue
            previous = best.get(rule.type)
            if previous is None or abs(rule.weight) > abs(previous[0]):
                best[rule.type] = (rule.weight, rule, found)
        if not best:
            continue

        negated, contrasted = context.look_back(text, tokens, index)
        for weight, rule, found in best.values():
            if negated or context.look_ahead(text, tokens, found.end(), index):
                continue
            value = weight * factor * (CONTRAST_FACTOR if contrasted else 1.0)
            if is_body and token.start() < LEAD_CHARS:
                value *= LEAD_FACTOR
            scores.add(rule.source, rule.type, value, source[found.start():found.end()])
            scores.located.append(LocatedHit(is_body, token.start(), rule.type, value))
            scores.suppressed.update(rule.suppresses)


def _score_articles(book: PhraseBook, original: str, factor: float, scores: _Scores) -> None:
    """Add the weight of article references such as "art. 15 AVG" or "Artikel 21 Absatz 2"."""
    text = original.lower()
    for found in book.article_re.finditer(text):
        mapped = ARTICLE_TYPES.get(int(found.group(1)))
        if mapped is None:
            continue
        rule_type, article_factor = mapped
        tail = text[found.end(): found.end() + LAW_NAME_WINDOW_CHARS].split("\n", 1)[0]
        other_law = book.other_law_re.search(tail) if book.other_law_re else None
        gdpr_name = book.gdpr_name_re.search(tail)
        if other_law is not None and (gdpr_name is None or other_law.start() < gdpr_name.start()):
            continue
        if gdpr_name is None and int(found.group(1)) in ARTICLES_NEEDING_LAW_NAME:
            continue
        weight = ARTICLE_WEIGHT if gdpr_name is not None else BARE_ARTICLE_WEIGHT
        end = found.end() + gdpr_name.end() if gdpr_name is not None else found.end()
        scores.add(f"article {found.group(1)}", rule_type, weight * article_factor * factor,
                   original[found.start():end] if len(text) == len(original) else text[
                       found.start():end])


def _confidence(best: float, runner_up: float) -> float:
    """Combine how strong the winner is with how far it leads the runner-up."""
    strength = 1.0 - math.exp(-best / STRENGTH_SCALE)
    margin = (best - runner_up) / best
    return round(strength * (0.5 + 0.5 * margin), 3)


def _effective_totals(scores: _Scores) -> dict[RequestType, float]:
    """Return the positive totals per type, with the types a false friend matched damped."""
    totals = {t: s for t, s in scores.totals.items() if s > 0}
    for rule_type in scores.suppressed:
        if rule_type in totals:
            totals[rule_type] *= SUPPRESS_FACTOR
    return totals


def _decide(scores: _Scores) -> tuple[RequestType, tuple[RequestType, ...], float]:
    """Pick the primary type, the secondary types and the confidence from the totals."""
    totals = _effective_totals(scores)
    if not totals:
        return RequestType.OTHER, (), NO_SIGNAL_CONFIDENCE

    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)
    requests = [(t, s) for t, s in ranked if t is not RequestType.OTHER]
    other_score = totals.get(RequestType.OTHER, 0.0)
    if not requests or requests[0][1] < MIN_REQUEST_SCORE or other_score >= requests[0][1]:
        primary, best = RequestType.OTHER, max(other_score, MIN_REQUEST_SCORE)
        runner_up = requests[0][1] if requests else 0.0
    else:
        primary, best = requests[0]
        runner_up = max([other_score] + [s for _, s in requests[1:2]])

    secondary = tuple(
        t for t, s in requests
        if t is not primary and s >= SECONDARY_SHARE * best and s >= MIN_REQUEST_SCORE
    )
    return primary, secondary, _confidence(best, min(runner_up, best))


def classify(subject: str, body: str, phrases: PhraseBook | None = None) -> Classification:
    """Classify one mail by the phrases and article references in its subject and new text."""
    book = phrases if phrases is not None else load_phrasebook()
    new_text = strip_history(body, book)

    subject_tokens = tokenize(subject.lower())
    body_tokens = tokenize(new_text.lower())
    words = [token.group() for token in subject_tokens + body_tokens]
    language = detect_language(words, book)
    context = _Context(book, language)

    scores = _Scores(defaultdict(float), defaultdict(dict), defaultdict(int), set())
    _score_rules(book, subject, subject_tokens, False, context, scores)
    _score_articles(book, subject, SUBJECT_FACTOR, scores)
    _score_rules(book, new_text, body_tokens, True, context, scores)
    _score_articles(book, new_text, 1.0, scores)

    primary, secondary, confidence = _decide(scores)
    evidence: tuple[str, ...] = ()

    # A missed request has no legal clock, so a direct request about the writer's own data
    # gets a request type with low confidence, which the queue marks for a type check.
    if primary is RequestType.OTHER:
        direct = decide_direct_request(
            book,
            (subject, new_text),
            [hit for hit in scores.located if hit.type not in scores.suppressed],
            {t: s for t, s in _effective_totals(scores).items() if t not in scores.suppressed},
        )
        if direct is not None:
            primary, secondary, confidence = direct.type, (), direct.confidence
            evidence = direct.evidence

    ranked = sorted(scores.evidence[primary].items(), key=lambda item: item[1], reverse=True)
    evidence += tuple(phrase for phrase, _ in ranked[: 6 - len(evidence)])
    return Classification(
        type=primary,
        secondary=secondary,
        confidence=confidence,
        language=language,
        evidence=evidence,
    )
