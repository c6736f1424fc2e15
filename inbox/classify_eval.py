"""Evaluate the request classifier on a folder of labelled mails and format the result.

The folder contains ``MANIFEST.csv`` with the columns ``file``, ``language`` and
``expected_type`` (other columns are ignored) and the files it names: plain text that starts
with a ``Subject:`` line and a blank line, or ``.eml`` messages.
"""

from __future__ import annotations

import csv
import email
import email.policy
import logging
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from inbox.classify import PhraseBook, classify
from inbox.enums import RequestType
from inbox.errors import InputError

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("file", "language", "expected_type")
"""Manifest columns the evaluation reads."""


class EvalCorpusError(InputError):
    """Raised when the manifest or a file it names is missing or invalid."""


@dataclass(frozen=True)
class Sample:
    """One labelled mail of the corpus."""

    file: str
    language: str
    expected: RequestType
    subject: str
    body: str


@dataclass(frozen=True)
class Outcome:
    """The classifier's result for one sample."""

    sample: Sample
    predicted: RequestType
    confidence: float


@dataclass
class EvalReport:
    """Outcomes of an evaluation run with per-type and per-language tallies."""

    directory: Path
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Number of samples evaluated."""
        return len(self.outcomes)

    @property
    def correct(self) -> int:
        """Number of samples whose predicted type equals the expected one."""
        return sum(1 for o in self.outcomes if o.predicted is o.sample.expected)

    @property
    def accuracy(self) -> float:
        """Share of correct samples, 0.0 for an empty corpus."""
        return self.correct / self.total if self.total else 0.0

    def confusion(self) -> Counter[tuple[RequestType, RequestType]]:
        """Count (expected, predicted) pairs."""
        return Counter((o.sample.expected, o.predicted) for o in self.outcomes)

    def precision(self, request_type: RequestType) -> float | None:
        """Return the share of predictions of ``request_type`` that were right, or None."""
        predicted = [o for o in self.outcomes if o.predicted is request_type]
        if not predicted:
            return None
        return sum(1 for o in predicted if o.sample.expected is request_type) / len(predicted)


def _read_text_mail(path: Path) -> tuple[str, str]:
    text = path.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    if not first.startswith("Subject:"):
        raise EvalCorpusError(f"{path}: the first line must start with 'Subject:'")
    return first.removeprefix("Subject:").strip(), rest.lstrip("\n")


def _read_eml(path: Path) -> tuple[str, str]:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    if not isinstance(message, EmailMessage):
        raise EvalCorpusError(f"{path}: not a parsable e-mail message")
    part = message.get_body(preferencelist=("plain", "html"))
    body = part.get_content() if part is not None else ""
    return str(message.get("Subject", "")), body


def read_corpus(directory: Path) -> list[Sample]:
    """Read the manifest of ``directory`` and every mail it names.

    :raises EvalCorpusError: if the manifest, a column, a file or a label is missing or invalid.
    """
    manifest = directory / "MANIFEST.csv"
    if not manifest.is_file():
        raise EvalCorpusError(f"Manifest {manifest} not found; the folder needs a MANIFEST.csv")
    with manifest.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise EvalCorpusError(f"Manifest {manifest} lacks the columns {missing}")
        rows = list(reader)

    samples = []
    for line, row in enumerate(rows, start=2):
        path = directory / row["file"]
        if not path.is_file():
            raise EvalCorpusError(f"File {path} named on line {line} of {manifest} not found")
        try:
            expected = RequestType(row["expected_type"].strip())
        except ValueError as exc:
            raise EvalCorpusError(
                f"{manifest} line {line}: unknown expected_type {row['expected_type']!r}. "
                f"Allowed: {', '.join(t.value for t in RequestType)}") from exc
        reader_of = _read_eml if path.suffix.lower() == ".eml" else _read_text_mail
        subject, body = reader_of(path)
        samples.append(Sample(row["file"], row["language"].strip(), expected, subject, body))
    return samples


def evaluate(directory: Path, phrases: PhraseBook | None = None) -> EvalReport:
    """Classify every mail of the corpus in ``directory`` and collect the outcomes."""
    report = EvalReport(Path(directory))
    for sample in read_corpus(Path(directory)):
        result = classify(sample.subject, sample.body, phrases)
        report.outcomes.append(Outcome(sample, result.type, result.confidence))
    logger.info("Evaluated %s mails in %s: %s correct", report.total, directory, report.correct)
    return report


def _rate(correct: int, total: int) -> str:
    return f"{correct / total:.3f} ({correct}/{total})"


def _group_lines(report: EvalReport, title: str, key: str) -> list[str]:
    groups: dict[str, list[Outcome]] = {}
    for outcome in report.outcomes:
        name = outcome.sample.expected.value if key == "type" else outcome.sample.language
        groups.setdefault(name, []).append(outcome)
    lines = [f"{title}:"]
    for name in sorted(groups):
        items = groups[name]
        right = sum(1 for o in items if o.predicted is o.sample.expected)
        lines.append(f"  {name:<20} {_rate(right, len(items))}")
    return lines


def format_report(report: EvalReport) -> str:
    """Format accuracy per type and per language, the confusion matrix and the errors.

    The last line is always ``accuracy: 0.953 (143/150)``.
    """
    lines = [f"corpus: {report.directory} ({report.total} mails)", ""]
    lines += _group_lines(report, "accuracy per type", "type") + [""]
    lines += _group_lines(report, "accuracy per language", "language") + [""]

    used = [t for t in RequestType if any(
        t in (o.sample.expected, o.predicted) for o in report.outcomes)]
    short = {t: t.value[:6] for t in used}
    confusion = report.confusion()
    lines.append("confusion matrix (rows: expected, columns: predicted):")
    lines.append(" " * 20 + "".join(f"{short[t]:>8}" for t in used))
    for expected in used:
        cells = "".join(f"{confusion[(expected, p)]:>8}" for p in used)
        lines.append(f"  {expected.value:<18}{cells}")

    wrong = [o for o in report.outcomes if o.predicted is not o.sample.expected]
    if wrong:
        lines += ["", "misclassified:"]
        lines += [f"  {o.sample.file}: expected {o.sample.expected.value}, got "
                  f"{o.predicted.value} ({o.confidence:.2f})" for o in wrong]
    other_precision = report.precision(RequestType.OTHER)
    if other_precision is not None:
        lines += ["", f"precision of other: {other_precision:.3f}"]

    overall = _rate(report.correct, report.total) if report.total else "0.000 (0/0)"
    lines += ["", f"accuracy: {overall}"]
    return "\n".join(lines)
