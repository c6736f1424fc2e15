"""Check the bundled demo mails in samples/mail and the benchmark generator bench/mailgen.py."""

from __future__ import annotations

import csv
import email
import importlib.util
import sys
from collections import Counter
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from types import ModuleType

import mailparser
import pytest

from inbox.enums import RequestType

REPOSITORY = Path(__file__).resolve().parent.parent
SAMPLES = REPOSITORY / "samples" / "mail"
SAMPLE_FILES = sorted(path.name for path in SAMPLES.glob("*.eml"))
MALFORMED_SAMPLE = "29-rectification-en.eml"
REPLY_SAMPLE = "27-access-nl.eml"
REPLIED_SAMPLE = "01-access-nl.eml"
AUTO_REPLY_SAMPLE = "28-other-nl.eml"
HTML_ONLY_SAMPLE = "22-other-en.eml"
ATTACHMENT_SAMPLE = "02-access-en.eml"
MAILBOX_ADDRESS = "privacy@example.org"
LANGUAGES = {"nl", "en", "de", "fr"}
KIB = 1024


def read_sample(name: str) -> EmailMessage:
    """Parse one sample file with the email package's default policy."""
    raw = (SAMPLES / name).read_bytes()
    return email.message_from_bytes(raw, policy=default_policy)  # type: ignore[return-value]


def read_manifest() -> list[dict[str, str]]:
    """Read the rows of samples/mail/MANIFEST.csv."""
    with (SAMPLES / "MANIFEST.csv").open(encoding="utf-8", newline="") as manifest:
        return list(csv.DictReader(manifest))


def parse(raw: bytes) -> EmailMessage:
    """Parse raw bytes with the email package's default policy."""
    return email.message_from_bytes(raw, policy=default_policy)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def mailgen() -> ModuleType:
    """Import bench/mailgen.py, which is a script outside any package."""
    spec = importlib.util.spec_from_file_location(
        "bench_mailgen", REPOSITORY / "bench" / "mailgen.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses looks the module up in sys.modules while the class body runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(mailgen: ModuleType) -> list[bytes]:
    """Generate the 50 messages that the size and structure tests share."""
    return list(mailgen.generate_messages(50))


def test_samples_folder_has_about_26_mails() -> None:
    assert 24 <= len(SAMPLE_FILES) <= 32


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_sample_parses_with_default_policy(name: str) -> None:
    message = read_sample(name)

    # Header values are parsed lazily, so read each one to surface parse errors.
    values = [str(value) for value in message.values()]

    assert values
    assert message.get_body(("plain", "html")) is not None or name == MALFORMED_SAMPLE


@pytest.mark.parametrize("name", [name for name in SAMPLE_FILES if name != MALFORMED_SAMPLE])
def test_sample_has_no_parse_defects(name: str) -> None:
    message = read_sample(name)

    defects = [defect for part in message.walk() for defect in part.defects]

    assert defects == []


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_sample_has_from_and_subject(name: str) -> None:
    message = read_sample(name)

    assert message["From"]
    assert message["Subject"]
    assert message["To"] == MAILBOX_ADDRESS


@pytest.mark.parametrize("name", [name for name in SAMPLE_FILES if name != MALFORMED_SAMPLE])
def test_sample_date_is_november_2026(name: str) -> None:
    date = read_sample(name)["Date"].datetime

    assert date is not None
    assert (date.year, date.month) == (2026, 11)


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_sample_parses_with_mail_parser(name: str) -> None:
    raw = (SAMPLES / name).read_bytes()

    parsed = mailparser.parse_from_bytes(raw)

    # mail-parser drops non-ASCII letters of an 8-bit Subject, so every sample encodes it.
    assert parsed.subject == read_sample(name)["Subject"]


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_sample_headers_are_ascii(name: str) -> None:
    raw = (SAMPLES / name).read_bytes()

    header_block = raw.split(b"\n\n", 1)[0]

    assert header_block.isascii()


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_sample_uses_lf_line_endings(name: str) -> None:
    assert b"\r" not in (SAMPLES / name).read_bytes()


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_sample_eight_bit_body_declares_encoding(name: str) -> None:
    message = read_sample(name)

    for part in message.walk():
        payload = part.get_payload(decode=False)
        if part.is_multipart() or not isinstance(payload, str) or payload.isascii():
            continue
        assert part.get("Content-Transfer-Encoding", "").lower() in {"8bit", "quoted-printable"}


def test_sample_message_ids_are_unique() -> None:
    message_ids = [read_sample(name)["Message-ID"] for name in SAMPLE_FILES]
    present = [message_id for message_id in message_ids if message_id]

    assert len(present) == len(SAMPLE_FILES) - 1
    assert len(set(present)) == len(present)
    assert all(message_id.endswith("@example.org>") for message_id in present)


def test_malformed_sample_lacks_message_id() -> None:
    assert read_sample(MALFORMED_SAMPLE)["Message-ID"] is None


def test_malformed_sample_has_boundary_defect() -> None:
    message = read_sample(MALFORMED_SAMPLE)

    defect_names = {type(defect).__name__ for defect in message.defects}

    assert "StartBoundaryNotFoundDefect" in defect_names


def test_reply_sample_references_original() -> None:
    original_id = read_sample(REPLIED_SAMPLE)["Message-ID"]
    reply = read_sample(REPLY_SAMPLE)

    assert reply["In-Reply-To"] == original_id
    assert original_id in reply["References"].split()
    assert reply["Subject"] == "Re: " + read_sample(REPLIED_SAMPLE)["Subject"]


def test_auto_reply_sample_is_auto_submitted() -> None:
    assert read_sample(AUTO_REPLY_SAMPLE)["Auto-Submitted"] == "auto-replied"


def test_html_only_sample_has_no_plain_part() -> None:
    message = read_sample(HTML_ONLY_SAMPLE)

    assert message.get_content_type() == "text/html"
    assert message.get_body(("plain",)) is None
    assert '<img src="https://' in message.get_content()
    assert '<a href="https://' in message.get_content()


def test_attachment_sample_carries_pdf() -> None:
    attachments = list(read_sample(ATTACHMENT_SAMPLE).iter_attachments())

    assert len(attachments) == 1
    assert attachments[0].get_content_type() == "application/pdf"
    assert attachments[0].get_content().startswith(b"%PDF-1.")
    assert attachments[0].get_content().rstrip().endswith(b"%%EOF")


def test_manifest_names_every_file_once() -> None:
    listed = Counter(row["file"] for row in read_manifest())

    assert [name for name, count in listed.items() if count > 1] == []
    assert sorted(listed) == SAMPLE_FILES


def test_manifest_has_expected_columns() -> None:
    with (SAMPLES / "MANIFEST.csv").open(encoding="utf-8", newline="") as manifest:
        header = next(csv.reader(manifest))

    assert header == ["file", "language", "expected_type"]


@pytest.mark.parametrize("row", read_manifest(), ids=lambda row: row["file"])
def test_manifest_row_matches_file_name(row: dict[str, str]) -> None:
    number, remainder = row["file"].removesuffix(".eml").split("-", 1)
    request_type, language = remainder.rsplit("-", 1)

    assert number.isdigit()
    assert request_type == row["expected_type"]
    assert language == row["language"]
    assert row["expected_type"] in set(RequestType)
    assert row["language"] in LANGUAGES


@pytest.mark.parametrize("language", ["nl", "en"])
@pytest.mark.parametrize("request_type", list(RequestType))
def test_manifest_covers_type_in_language(request_type: RequestType, language: str) -> None:
    pairs = {(row["expected_type"], row["language"]) for row in read_manifest()}

    assert (request_type.value, language) in pairs


@pytest.mark.parametrize("language", ["de", "fr"])
def test_manifest_has_two_mails_in_language(language: str) -> None:
    languages = Counter(row["language"] for row in read_manifest())

    assert languages[language] >= 2


def test_mailgen_is_deterministic(mailgen: ModuleType, generated: list[bytes]) -> None:
    assert list(mailgen.generate_messages(50)) == generated


def test_mailgen_seed_changes_output(mailgen: ModuleType) -> None:
    first = list(mailgen.generate_messages(5, seed=1))
    second = list(mailgen.generate_messages(5, seed=2))

    assert first != second


@pytest.mark.parametrize("count", [0, 1, 7, 50])
def test_mailgen_yields_requested_count(mailgen: ModuleType, count: int) -> None:
    assert len(list(mailgen.generate_messages(count))) == count


def test_mailgen_average_size_near_150_kib(generated: list[bytes]) -> None:
    average = sum(len(raw) for raw in generated) / len(generated)

    assert average >= 100 * KIB
    assert average <= 250 * KIB


def test_mailgen_messages_parse_without_defects(generated: list[bytes]) -> None:
    defects = [
        (index, defect)
        for index, raw in enumerate(generated)
        for part in parse(raw).walk()
        for defect in part.defects
    ]

    assert defects == []


def test_mailgen_messages_have_unique_ids(generated: list[bytes]) -> None:
    message_ids = [parse(raw)["Message-ID"] for raw in generated]

    assert len(set(message_ids)) == len(generated)


def test_mailgen_replies_reference_earlier_messages(generated: list[bytes]) -> None:
    messages = [parse(raw) for raw in generated]
    earlier_ids: set[str] = set()
    reply_count = 0

    for message in messages:
        if message["In-Reply-To"]:
            reply_count += 1
            assert message["In-Reply-To"] in earlier_ids
            assert message["In-Reply-To"] == message["References"].split()[-1]
            assert message["Subject"].startswith("Re: ")
            assert not message["Subject"].startswith("Re: Re: ")
        earlier_ids.add(message["Message-ID"])

    assert reply_count >= 3


def test_mailgen_mixes_body_kinds(generated: list[bytes]) -> None:
    messages = [parse(raw) for raw in generated]

    attachment_sizes = [
        len(part.get_content()) for message in messages for part in message.iter_attachments()
    ]
    html_only = [m for m in messages if m.get_body(("plain",)) is None]
    with_plain_and_html = [m for m in messages if m.get_body(("html",)) and m.get_body(("plain",))]

    assert len(attachment_sizes) == 10
    assert min(attachment_sizes) >= 50 * KIB
    assert max(attachment_sizes) <= 2 * KIB * KIB
    assert html_only
    assert with_plain_and_html


def test_mailgen_main_writes_files(mailgen: ModuleType, tmp_path: Path) -> None:
    exit_code = mailgen.main(["--count", "3", "--out", str(tmp_path / "mail")])

    assert exit_code == 0
    assert sorted(path.name for path in (tmp_path / "mail").iterdir()) == [
        "000001.eml",
        "000002.eml",
        "000003.eml",
    ]
