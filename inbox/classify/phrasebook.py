"""Load, validate and compile the per-language phrase files of the request classifier.

A phrase file is ``phrases/<lang>.yaml``. Its ``phrases`` section maps a request type to a list
of entries; an entry is a phrase (weight 1) or a one-key mapping ``phrase: weight``. In a
phrase, words match case-insensitively and any run of spaces or punctuation between them,
``word*`` matches any word that starts with ``word``, and ``...`` matches up to three words.
The ``request_cues`` and ``own_data`` sections hold phrases in the same notation.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inbox.enums import RequestType
from inbox.errors import InboxError

logger = logging.getLogger(__name__)

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""The safe YAML loader, in C when PyYAML was built with libyaml (about 10 times faster here)."""

DEFAULT_PHRASE_DIR = Path(__file__).parent / "phrases"
"""Folder of the phrase files shipped with privacy-inbox."""

MAX_ABS_WEIGHT = 10.0
"""Largest absolute weight a phrase may carry, so one entry cannot silence all others."""

GAP_WORDS = 3
"""Number of words that ``...`` in a phrase may stand for."""

KEY_LENGTH = 3
"""Number of leading characters of a phrase's first word used to index it."""

LIST_KEYS = (
    "stopwords",
    "negations",
    "negations_after",
    "contrasts",
    "subject_pronouns",
    "article_words",
    "gdpr_names",
    "other_law_names",
    "reply_headers",
    "footer_markers",
    "request_cues",
    "own_data",
)

LANGUAGE_WORD_KEYS = LIST_KEYS[:5]
"""Sections that ``LanguageWords`` keeps per language."""
RAW_KEYS = frozenset(("reply_headers", "footer_markers"))
"""Sections whose texts keep their case: regexes and markers compiled case-insensitively."""
ALLOWED_KEYS = frozenset((*LIST_KEYS, "language", "phrases", "false_friends"))
TYPE_NAMES = tuple(member.value for member in RequestType)
_WORD_RE = re.compile(r"\w+")


class PhraseBookError(InboxError):
    """Raised when a phrase file is missing, not valid YAML, or has an invalid entry."""


@dataclass(frozen=True)
class Rule:
    """One compiled phrase: the type it votes for, its weight and where it was defined."""

    type: RequestType
    weight: float
    pattern: re.Pattern[str]
    source: str
    suppresses: tuple[RequestType, ...] = ()


@dataclass(frozen=True)
class LanguageWords:
    """The function words of one language, used for detection, negation and contrast."""

    stopwords: frozenset[str]
    negations: frozenset[str]
    negations_after: frozenset[str]
    contrasts: frozenset[str]
    subject_pronouns: frozenset[str]


@dataclass(frozen=True)
class PhraseBook:
    """All phrase files merged and compiled: rules indexed by their first word or its prefix."""

    languages: Mapping[str, LanguageWords]
    rules_by_key: Mapping[str, tuple[Rule, ...]]
    article_re: re.Pattern[str]
    gdpr_name_re: re.Pattern[str]
    other_law_re: re.Pattern[str] | None
    reply_header_re: re.Pattern[str] | None
    footer_markers: tuple[str, ...]
    stopword_languages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    request_cue_re: re.Pattern[str] | None = None
    own_data_re: re.Pattern[str] | None = None


def compile_phrase(phrase: str) -> re.Pattern[str]:
    """Compile a phrase of words, ``word*`` prefixes and ``...`` gaps into a regex."""
    parts: list[str] = []
    for word in phrase.lower().split():
        if word == "...":
            parts.append(rf"(?:\w+\W+){{0,{GAP_WORDS}}}")
            continue
        prefix = word.endswith("*")
        pieces = [re.escape(piece) for piece in _WORD_RE.findall(word)]
        if not pieces:
            raise ValueError(f"word {word!r} has no letters or digits")
        parts.append(r"[\W_]*".join(pieces) + (r"\w*" if prefix else r"\b") + r"[\W_]*")
    if not parts:
        raise ValueError("the phrase is empty")
    return re.compile("".join(parts).removesuffix(r"[\W_]*"))


def _index_keys(phrase: str) -> tuple[str, ...]:
    """Return the index keys of a phrase: its first word, or prefixes of it.

    A plain first word ("access") is looked up as a whole word. A prefix ("verwijder*") or a
    word with inner punctuation ("e-mail", which also matches "email") is looked up by its
    first KEY_LENGTH letters, marked with a leading "*".
    """
    first_word = phrase.lower().split()[0] if phrase.split() else ""
    pieces = _WORD_RE.findall(first_word)
    if not pieces or first_word == "...":
        raise ValueError("a phrase must start with a word")
    joined = "".join(pieces)
    if first_word.endswith("*") and len(joined) < KEY_LENGTH:
        raise ValueError(f"a prefix must have at least {KEY_LENGTH} letters")
    if first_word.endswith("*") or len(pieces) > 1:
        return ("*" + joined[:KEY_LENGTH], pieces[0])
    return (pieces[0],)


def _fail(path: Path, entry: str, problem: str) -> PhraseBookError:
    return PhraseBookError(f"Invalid phrase file {path}: entry {entry}: {problem}")


def _parse_entry(path: Path, where: str, item: Any) -> tuple[str, float]:
    """Return phrase and weight of one list item, or raise naming the entry and the rule."""
    if isinstance(item, str):
        return item, 1.0
    if not isinstance(item, dict) or len(item) != 1:
        raise _fail(path, where, f"got {item!r}; allowed are a phrase or one 'phrase: weight' pair")
    phrase, weight = next(iter(item.items()))
    if not isinstance(phrase, str):
        raise _fail(path, where, f"phrase {phrase!r} must be text")
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise _fail(path, where, f"weight {weight!r} must be a number")
    if weight == 0 or abs(weight) > MAX_ABS_WEIGHT:
        raise _fail(path, where, f"weight {weight} must be non-zero and within ±{MAX_ABS_WEIGHT}")
    return phrase, float(weight)


def _compile_rule(path: Path, where: str, phrase: str, rule_type: RequestType, weight: float,
                  suppresses: tuple[RequestType, ...] = ()) -> tuple[tuple[str, ...], Rule]:
    try:
        pattern = compile_phrase(phrase)
        keys = _index_keys(phrase)
    except ValueError as exc:
        raise _fail(path, where, f"phrase {phrase!r} is invalid: {exc}") from exc
    rule = Rule(rule_type, weight, pattern, f"{path.name}:{where}", suppresses)
    return keys, rule


def _parse_type(path: Path, where: str, name: Any) -> RequestType:
    if name not in TYPE_NAMES:
        raise _fail(path, where, f"unknown request type {name!r}; allowed: {', '.join(TYPE_NAMES)}")
    return RequestType(name)


def _parse_phrases(path: Path, section: Any) -> list[tuple[tuple[str, ...], Rule]]:
    """Compile the ``phrases`` section: request type to a list of phrase entries."""
    if not isinstance(section, dict):
        raise _fail(path, "phrases", "must map a request type to a list of phrases")
    rules: list[tuple[tuple[str, ...], Rule]] = []
    for type_name, items in section.items():
        rule_type = _parse_type(path, f"phrases.{type_name}", type_name)
        if not isinstance(items, list):
            raise _fail(path, f"phrases.{type_name}", "must be a list of phrases")
        for number, item in enumerate(items):
            where = f"phrases.{type_name}[{number}]"
            phrase, weight = _parse_entry(path, where, item)
            rules.append(_compile_rule(path, where, phrase, rule_type, weight))
    return rules


def _parse_false_friends(path: Path, section: Any) -> list[tuple[tuple[str, ...], Rule]]:
    """Compile ``false_friends``: phrases that vote for other and damp the types they mimic."""
    if not isinstance(section, list):
        raise _fail(path, "false_friends", "must be a list of {phrase, suppresses, weight}")
    rules: list[tuple[tuple[str, ...], Rule]] = []
    for number, item in enumerate(section):
        where = f"false_friends[{number}]"
        if not isinstance(item, dict) or not isinstance(item.get("phrase"), str):
            raise _fail(path, where, "must be a mapping with a 'phrase' text")
        unknown = set(item) - {"phrase", "suppresses", "weight"}
        if unknown:
            raise _fail(path, where, f"unknown keys {sorted(unknown)}; allowed: phrase, "
                        "suppresses, weight")
        names = item.get("suppresses", [])
        if not isinstance(names, list) or not names:
            raise _fail(path, where, "'suppresses' must be a non-empty list of request types")
        suppressed = tuple(_parse_type(path, where, name) for name in names)
        _, weight = _parse_entry(path, where, {item["phrase"]: item.get("weight", 2)})
        rules.append(_compile_rule(path, where, item["phrase"], RequestType.OTHER, weight,
                                   suppressed))
    return rules


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)  # noqa: S506
    except OSError as exc:
        raise PhraseBookError(f"Cannot read phrase file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PhraseBookError(f"Invalid phrase file {path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PhraseBookError(f"Invalid phrase file {path}: must be a mapping of sections")
    unknown = set(data) - ALLOWED_KEYS
    if unknown:
        raise _fail(path, ", ".join(sorted(unknown)),
                    f"unknown section; allowed: {', '.join(sorted(ALLOWED_KEYS))}")
    for key in LIST_KEYS:
        values = data.get(key, [])
        if not isinstance(values, list):
            raise _fail(path, key, "must be a list of texts")
        for number, value in enumerate(values):
            if not isinstance(value, str):
                raise _fail(path, f"{key}[{number}]", f"got {value!r}, but only text is allowed "
                            "(quote words that YAML reads as booleans, such as \"no\")")
    return data


def _alternation(words: Iterable[str]) -> str:
    ordered = sorted({word.lower() for word in words}, key=len, reverse=True)
    return "|".join(re.escape(word) for word in ordered)


def _compile_regexes(path_by_text: dict[str, Path], key: str) -> re.Pattern[str] | None:
    """Compile the user-written regexes of one section into one, naming a file on error."""
    if not path_by_text:
        return None
    for text, path in path_by_text.items():
        try:
            re.compile(text)
        except re.error as exc:
            raise _fail(path, key, f"regex {text!r} is invalid: {exc}") from exc
    combined = "|".join(f"(?:{text})" for text in path_by_text)
    return re.compile(combined, re.IGNORECASE | re.MULTILINE)


def _compile_phrase_list(path_by_phrase: dict[str, Path], key: str) -> re.Pattern[str] | None:
    """Compile the phrases of one section into one regex that matches any of them."""
    if not path_by_phrase:
        return None
    patterns = []
    for phrase, path in path_by_phrase.items():
        try:
            patterns.append(compile_phrase(phrase).pattern)
        except ValueError as exc:
            raise _fail(path, key, f"phrase {phrase!r} is invalid: {exc}") from exc
    return re.compile(r"(?<!\w)(?:" + "|".join(patterns) + ")")


def build_phrasebook(paths: Sequence[Path]) -> PhraseBook:
    """Merge and compile the given phrase files; a later file adds to the earlier ones."""
    languages: dict[str, LanguageWords] = {}
    rules: dict[str, list[Rule]] = {}
    lists: dict[str, dict[str, Path]] = {key: {} for key in LIST_KEYS}

    for path in paths:
        data = _read_file(path)
        language = str(data.get("language") or path.stem)
        compiled = _parse_phrases(path, data.get("phrases", {}))
        compiled += _parse_false_friends(path, data.get("false_friends", []))
        for keys, rule in compiled:
            for key in keys:
                rules.setdefault(key, []).append(rule)
        for key in LIST_KEYS:
            for value in data.get(key, []):
                text = value if key in RAW_KEYS else value.lower()
                lists[key].setdefault(text, path)
        old = languages.get(language)
        words = {k: frozenset(v.lower() for v in data.get(k, [])) for k in LANGUAGE_WORD_KEYS}
        if old is not None:
            words = {k: words[k] | getattr(old, k) for k in words}
        languages[language] = LanguageWords(**words)

    if not lists["article_words"] or not lists["gdpr_names"]:
        raise PhraseBookError(f"Invalid phrase files {[str(p) for p in paths]}: no file "
                              "defines 'article_words' and 'gdpr_names'; add them to one")
    article_re = re.compile(
        rf"(?<!\w)(?:{_alternation(lists['article_words'])})\.?\s*(\d{{1,2}})(?![\d:])"
    )
    other_laws = lists["other_law_names"]
    stopword_languages: dict[str, list[str]] = {}
    for language, words_of in languages.items():
        for word in words_of.stopwords:
            stopword_languages.setdefault(word, []).append(language)

    logger.debug("Compiled phrase book from %s files, %s rule keys", len(paths), len(rules))
    return PhraseBook(
        languages=languages,
        rules_by_key={key: tuple(value) for key, value in rules.items()},
        article_re=article_re,
        gdpr_name_re=re.compile(rf"(?<!\w)(?:{_alternation(lists['gdpr_names'])})(?!\w)"),
        other_law_re=(re.compile(rf"(?<!\w)(?:{_alternation(other_laws)})(?!\w)")
                      if other_laws else None),
        reply_header_re=_compile_regexes(lists["reply_headers"], "reply_headers"),
        footer_markers=tuple(sorted({text.lower() for text in lists["footer_markers"]})),
        stopword_languages={word: tuple(langs) for word, langs in stopword_languages.items()},
        request_cue_re=_compile_phrase_list(lists["request_cues"], "request_cues"),
        own_data_re=_compile_phrase_list(lists["own_data"], "own_data"),
    )


def list_phrase_files(extra_dirs: Sequence[Path] = ()) -> list[Path]:
    """List the shipped phrase files, then the ``*.yaml`` files of each extra folder."""
    files = sorted(DEFAULT_PHRASE_DIR.glob("*.yaml"))
    for directory in extra_dirs:
        if not Path(directory).is_dir():
            raise PhraseBookError(f"Phrase folder {directory} not found; pass an existing folder")
        files.extend(sorted(Path(directory).glob("*.yaml")))
    return files


@functools.lru_cache(maxsize=8)
def _load_cached(extra_dirs: tuple[Path, ...]) -> PhraseBook:
    return build_phrasebook(list_phrase_files(extra_dirs))


def load_phrasebook(extra_dirs: Sequence[Path] = ()) -> PhraseBook:
    """Load the shipped phrase files plus those in ``extra_dirs``, compiled once and cached.

    :raises PhraseBookError: if a file is invalid; the message names the file and the entry.
    """
    return _load_cached(tuple(Path(directory) for directory in extra_dirs))
