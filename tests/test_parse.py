"""Tests for inbox.mail.parse: hand-made .eml files and messages built with EmailMessage."""

from __future__ import annotations

import email
import email.policy
import hashlib
import logging
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import mailparser
import pytest

from inbox.errors import ParseError
from inbox.mail.parse import parse_message, safe_filename
from inbox.mail.quoting import split_reply

MAIL_DIR = Path(__file__).parent / "data" / "mail"


def load(name: str) -> bytes:
    """Read one test mail from tests/data/mail."""
    return (MAIL_DIR / name).read_bytes()


def build_mail(**headers: str) -> EmailMessage:
    """Build a plain-text mail with the given headers (underscores become dashes)."""
    message = EmailMessage()
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Ik wil graag inzage in mijn persoonsgegevens.\n")
    return message


EML_CASES = [
    # file, subject, sender, body excerpt, [(attachment filename, content type)]
    (
        "rfc2047_split.eml",
        "Verzoek om inzage voor Jós én co",
        "jose.garcia@example.es",
        "Groet, José",
        [],
    ),
    ("mixed_charsets.eml", "Привет und Löschung", "greta@example.de", "löschen Sie", []),
    ("wrong_charset.eml", "Verwijderverzoek", "anna@example.nl", "cafébezoeken", []),
    (
        "subject_raw_utf8.eml",
        "Inzageverzoek van Zoë – dringend",
        "zoe@example.nl",
        "welke gegevens",
        [],
    ),
    (
        "subject_raw_latin1.eml",
        "Demande d'accès à mes données",
        "rene@example.fr",
        "accéder à mes données",
        [],
    ),
    ("missing_headers.eml", "no sender", "", "Body without From", []),
    ("bad_date.eml", "Bezwaar", "piet@example.nl", "bezwaar tegen", []),
    (
        "broken_boundary.eml",
        "Rectificatie adres",
        "kees@example.nl",
        "Dorpsstraat 1",
        [("uittreksel.pdf", "application/pdf")],
    ),
    (
        "nested_rfc822.eml",
        "Fwd: Inner message",
        "forwarder@example.com",
        "See the attached mail",
        [("forwarded.eml", "message/rfc822")],
    ),
    (
        "invalid_base64.eml",
        "Kopie ID",
        "lisa@example.nl",
        "Hierbij mijn ID.",
        [("id.jpg", "image/jpeg")],
    ),
    ("nul_bytes.eml", "Null bytes", "nul@example.nl", "Beforeafter the NUL", []),
    ("long_line.eml", "Long line", "long@example.nl", "xxxxx end", []),
    (
        "html_hostile.eml",
        "Verzoek via webformulier",
        "form@example.com",
        "Ik wil mijn gegevens inzien.",
        [("attachment-1.png", "image/png")],
    ),
    (
        "rfc2231_filename.eml",
        "Bijlage",
        "bram@example.nl",
        "Zie bijlage.",
        [("übersicht.pdf", "application/pdf")],
    ),
    (
        "bounce.eml",
        "Undelivered Mail Returned to Sender",
        "mailer-daemon@mx.org.example",
        "could not be delivered",
        [
            ("attachment-1.bin", "message/delivery-status"),
            ("attachment-2.bin", "text/rfc822-headers"),
        ],
    ),
]


@pytest.mark.parametrize(("name", "subject", "sender", "excerpt", "attachments"), EML_CASES)
def test_parse_message_eml_files(
    name: str, subject: str, sender: str, excerpt: str, attachments: list[tuple[str, str]]
) -> None:
    parsed = parse_message(load(name))

    assert parsed.subject == subject
    assert parsed.from_addr == sender
    assert excerpt in parsed.text
    assert [(a.filename, a.content_type) for a in parsed.attachments] == attachments


def test_parse_message_split_encoded_name() -> None:
    parsed = parse_message(load("rfc2047_split.eml"))

    assert parsed.from_name == "José García"


def test_parse_message_raw_latin1_sender_name() -> None:
    parsed = parse_message(load("subject_raw_latin1.eml"))

    assert parsed.from_name == "René Dubois"
    assert "header subject: not valid UTF-8, decoded as cp1252" in parsed.defects


def test_parse_message_mixed_charset_addresses() -> None:
    parsed = parse_message(load("mixed_charsets.eml"))

    assert parsed.from_name == "Müller, Gréta"
    assert parsed.to == ("privacy@org.example", "dpo@org.example")
    assert parsed.cc == ("juergen@example.de",)
    assert parsed.html == "<p>Bitte löschen Sie meine Daten.</p>"


def test_parse_message_wrong_charset_defect() -> None:
    parsed = parse_message(load("wrong_charset.eml"))

    assert any("x-no-such-charset" in defect for defect in parsed.defects)


def test_parse_message_missing_headers() -> None:
    parsed = parse_message(load("missing_headers.eml"))

    assert parsed.message_id is None
    assert parsed.date is None
    assert parsed.from_name == ""
    assert "missing or empty From header" in parsed.defects
    assert "missing Message-ID header" in parsed.defects
    assert "missing Date header" in parsed.defects


def test_parse_message_unparseable_date() -> None:
    parsed = parse_message(load("bad_date.eml"))

    assert parsed.date is None
    assert "unparseable Date header" in parsed.defects


def test_parse_message_broken_boundary_defect() -> None:
    parsed = parse_message(load("broken_boundary.eml"))

    assert parsed.attachments[0].data == b"%PDF-1.4\n"
    assert any("CloseBoundaryNotFoundDefect" in defect for defect in parsed.defects)


def test_parse_message_nested_rfc822_kept_whole() -> None:
    parsed = parse_message(load("nested_rfc822.eml"))

    assert b"Subject: Inner message" in parsed.attachments[0].data
    assert parsed.message_id == "outer-1@example.com"


def test_parse_message_invalid_base64_defects() -> None:
    parsed = parse_message(load("invalid_base64.eml"))

    assert parsed.attachments[0].data.startswith(b"\xff\xd8\xff")
    assert "text/plain part: InvalidBase64PaddingDefect" in parsed.defects
    assert "image/jpeg part: InvalidBase64CharactersDefect" in parsed.defects


def test_parse_message_nul_bytes_removed() -> None:
    parsed = parse_message(load("nul_bytes.eml"))

    assert "\x00" not in parsed.text
    assert "\x00" not in parsed.subject
    assert "text body: removed 1 NUL characters" in parsed.defects


def test_parse_message_long_line_kept() -> None:
    parsed = parse_message(load("long_line.eml"))

    assert len(parsed.text) == len("Start ") + 300_000 + len(" end")


def test_parse_message_cid_image_inline() -> None:
    parsed = parse_message(load("html_hostile.eml"))
    image = parsed.attachments[0]

    assert image.content_id == "logo@example.com"
    assert image.is_inline is True
    assert parsed.html is not None
    assert "<script>" in parsed.html


def test_parse_message_html_only_text_derived() -> None:
    parsed = parse_message(load("html_hostile.eml"))

    assert "alert" not in parsed.text
    assert "display:none" not in parsed.text


def test_parse_message_bounce_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="mailparser"):
        parse_message(load("bounce.eml"))

    assert [r for r in caplog.records if r.name.startswith("mailparser")] == []


def test_parse_message_mailparser_logging_restored(caplog: pytest.LogCaptureFixture) -> None:
    parse_message(load("bounce.eml"))

    with caplog.at_level(logging.WARNING, logger="mailparser.core"):
        logging.getLogger("mailparser.core").warning("outside the parse call")

    assert [r.getMessage() for r in caplog.records] == ["outside the parse call"]


def test_parse_message_built_mail_fields() -> None:
    message = build_mail(
        From='"de Boer, Sanne" <Sanne.deBoer@Example.NL>',
        To="privacy@org.example",
        Cc="Legal <legal@org.example>",
        Reply_To="sanne.private@example.nl",
        Subject="Inzageverzoek",
        Message_ID="<req-1@example.nl>",
        In_Reply_To="<ack-1@org.example>",
        References="<first@org.example> <ack-1@org.example>",
        Date="Mon, 04 Mar 2024 10:00:00 +0100",
    )

    parsed = parse_message(message.as_bytes())

    assert parsed.from_name == "de Boer, Sanne"
    assert parsed.from_addr == "sanne.deboer@example.nl"
    assert parsed.reply_to == "sanne.private@example.nl"
    assert parsed.cc == ("legal@org.example",)
    assert parsed.message_id == "req-1@example.nl"
    assert parsed.in_reply_to == ("ack-1@org.example",)
    assert parsed.references == ("first@org.example", "ack-1@org.example")
    assert parsed.date == datetime(2024, 3, 4, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert parsed.text == "Ik wil graag inzage in mijn persoonsgegevens."
    assert parsed.html is None
    assert parsed.headers["subject"] == "Inzageverzoek"
    assert parsed.defects == ()


def test_parse_message_date_without_zone_is_utc() -> None:
    message = build_mail(From="a@example.nl", Date="Mon, 04 Mar 2024 10:00:00 -0000")

    parsed = parse_message(message.as_bytes())

    assert parsed.date == datetime(2024, 3, 4, 10, 0, tzinfo=UTC)


def test_parse_message_attachment_hash_and_name() -> None:
    message = build_mail(From="a@example.nl", Subject="ID")
    message.add_attachment(
        b"%PDF-1.7 data", maintype="application", subtype="pdf", filename="..\\..\\paspoort.pdf"
    )

    attachment = parse_message(message.as_bytes()).attachments[0]

    assert attachment.filename == "paspoort.pdf"
    assert attachment.data == b"%PDF-1.7 data"
    assert attachment.sha256 == hashlib.sha256(b"%PDF-1.7 data").hexdigest()
    assert attachment.is_inline is False


def test_parse_message_attachment_over_limit() -> None:
    message = build_mail(From="a@example.nl", Subject="Groot")
    message.add_attachment(b"x" * 2048, maintype="application", subtype="octet-stream")

    parsed = parse_message(message.as_bytes(), max_attachment_bytes=1024)

    assert parsed.attachments[0].data == b""
    assert parsed.attachments[0].filename == "attachment-1.bin"
    assert "attachment 1 not kept: 2048 bytes is over the limit of 1024 bytes" in parsed.defects


def test_parse_message_html_only_body() -> None:
    message = EmailMessage()
    message["From"] = "a@example.nl"
    message.set_content("<h1>Verzoek</h1><p>Wis mijn <b>gegevens</b>.</p>", subtype="html")

    parsed = parse_message(message.as_bytes())

    assert parsed.text == "Verzoek\n\nWis mijn gegevens."


def test_parse_message_mailparser_failure_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_parser(raw: bytes) -> None:
        raise RuntimeError("simulated mail-parser fault")

    monkeypatch.setattr(mailparser, "parse_from_bytes", broken_parser)

    parsed = parse_message(load("mixed_charsets.eml"))

    assert parsed.subject == "Привет und Löschung"
    assert parsed.text == "Bitte löschen Sie meine Daten."
    assert "mail-parser failed (RuntimeError), parsed with the email package" in parsed.defects


def test_parse_message_fallback_wrong_charset(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_parser(raw: bytes) -> None:
        raise RuntimeError("simulated mail-parser fault")

    monkeypatch.setattr(mailparser, "parse_from_bytes", broken_parser)

    parsed = parse_message(load("wrong_charset.eml"))

    assert "cafébezoeken" in parsed.text
    assert "body: unknown charset 'x-no-such-charset', decoded as UTF-8 or cp1252" in parsed.defects


def test_parse_message_empty_input_raises() -> None:
    with pytest.raises(ParseError, match="empty"):
        parse_message(b"\r\n")


def test_parse_message_deep_nesting_raises() -> None:
    depth = 2000
    raw = b"From: a@example.nl\r\nMIME-Version: 1.0\r\n"
    for level in range(depth):
        raw += f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n'.encode()
    raw += b"Content-Type: text/plain\r\n\r\nbottom\r\n"

    with pytest.raises(ParseError, match="RecursionError"):
        parse_message(raw)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("brief.pdf", "brief.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\scan.jpg", "scan.jpg"),
        ("..", "attachment-3.pdf"),
        ("", "attachment-3.pdf"),
        (None, "attachment-3.pdf"),
        ("a\x00b\x1f.pdf", "ab.pdf"),
        (".htaccess", "htaccess"),
        ("n" * 300 + ".pdf", "n" * 196 + ".pdf"),
    ],
)
def test_safe_filename_table(name: str | None, expected: str) -> None:
    assert safe_filename(name, 3, "application/pdf") == expected


REPLY_CASES = [
    # text, expected new text, expected start of the quoted part
    ("Alleen nieuwe tekst.", "Alleen nieuwe tekst.", ""),
    ("Dank u.\n\nOn Mon, 4 Mar 2024 at 10:00, Privacy Team <privacy@org.example> wrote:\n"
     "> Uw verzoek",
     "Dank u.", "On Mon, 4 Mar 2024"),
    ("Thanks.\n\nOn Mon, 4 Mar 2024 at 10:00, Privacy Team\n<privacy@org.example> wrote:\n> Hi",
     "Thanks.", "On Mon, 4 Mar 2024"),
    ("Bedankt.\n\nOp ma 4 mrt 2024 om 10:00 schreef Privacy Team <privacy@org.example>:\n> Hallo",
     "Bedankt.", "Op ma 4 mrt 2024"),
    ("Danke.\n\nAm 04.03.2024 um 10:00 schrieb Privacy Team <privacy@org.example>:\n> Hallo",
     "Danke.", "Am 04.03.2024"),
    ("Merci.\n\nLe lun. 4 mars 2024 à 10:00, Privacy Team <privacy@org.example> a écrit :\n"
     "> Bonjour",
     "Merci.", "Le lun. 4 mars 2024"),
    ("Zie hieronder.\n\n-----Original Message-----\nFrom: Privacy Team\nSent: Monday\nHallo",
     "Zie hieronder.", "-----Original Message-----"),
    ("Zie hieronder.\n\n-----Oorspronkelijk bericht-----\nVan: Privacy Team\nHallo",
     "Zie hieronder.", "-----Oorspronkelijk bericht-----"),
    ("Akkoord.\n\nVan: Privacy Team <privacy@org.example>\nVerzonden: maandag 4 maart 2024\n"
     "Aan: Jan\nOnderwerp: Uw verzoek", "Akkoord.", "Van: Privacy Team"),
    ("Okay.\n\n________________________________\nFrom: Privacy Team\nSent: Monday\nTo: Jan",
     "Okay.", "________________________________"),
    ("Met vriendelijke groet,\nJan\n-- \nJan Jansen\nTel. 0612345678",
     "Met vriendelijke groet,\nJan", "-- \nJan Jansen"),
    ("Mijn antwoord.\n\n> eerdere vraag\n> nog een regel", "Mijn antwoord.", "> eerdere vraag"),
    ("> vraag 1\nantwoord 1\n> vraag 2\nantwoord 2",
     "> vraag 1\nantwoord 1\n> vraag 2\nantwoord 2", ""),
    ("Van: Jan Jansen, Dorpsstraat 1\nIk wil inzage.",
     "Van: Jan Jansen, Dorpsstraat 1\nIk wil inzage.", ""),
]  # fmt: skip


@pytest.mark.parametrize(("text", "new_text", "quoted_start"), REPLY_CASES)
def test_split_reply_table(text: str, new_text: str, quoted_start: str) -> None:
    new, quoted = split_reply(text)

    assert new == new_text
    assert quoted.startswith(quoted_start)
    assert bool(quoted) is bool(quoted_start)


BASE64_PAYLOADS = [
    "SGFsbG8gd2VyZWxk\r\n",
    "SGFsbG8g\r\nd2VyZWxk\r\n",
    "SGFsbG8gd2VyZWw=\r\n",
    "SGFsbG8gd2VyZQ==\n\n\n",
    "SGFsbG8gd2VyZQ",
    "SGFs bG8gd2VyZWxk\r\n",
    "SGFsbG8=d2VyZWxk\r\n",
    "SGFsbG8gd2VyZ===\r\n",
    "SGFs*bG8gd2VyZWx\r\n",
    "",
    "QUJD" * 5000 + "\r\n" * 100,
]


@pytest.mark.parametrize("payload", BASE64_PAYLOADS)
def test_attachment_base64_decodes_as_email_package(payload: str) -> None:
    raw = (
        "From: a@example.net\r\nSubject: bijlage\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/plain\r\n\r\nZie bijlage.\r\n--b\r\n"
        'Content-Type: application/octet-stream; name="x.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n" + payload + "\r\n--b--\r\n"
    ).encode("ascii")
    part = list(email.message_from_bytes(raw, policy=email.policy.compat32).walk())[-1]
    expected = part.get_payload(decode=True)
    expected_defects = [type(defect).__name__ for defect in part.defects]

    parsed = parse_message(raw)

    assert parsed.attachments[0].data == expected
    for name in expected_defects:
        assert any(name in defect for defect in parsed.defects), name


def test_byte_order_mark_before_headers_ignored() -> None:
    raw = b"\xef\xbb\xbfFrom: Jan <jan@example.net>\r\nSubject: Inzageverzoek\r\n\r\nTekst\r\n"

    parsed = parse_message(raw)

    assert parsed.from_addr == "jan@example.net"
    assert parsed.subject == "Inzageverzoek"
    assert "byte-order mark before the headers ignored" in parsed.defects
