"""Outlook's winmail.dat: its body and files are unpacked, and the original is kept."""

from __future__ import annotations

import struct
from email.message import EmailMessage

from inbox.mail.parse import parse_message

TNEF_SIGNATURE = 0x223E9F78
LEVEL_MESSAGE = 1
LEVEL_ATTACHMENT = 2


def tnef_attribute(level: int, attribute: int, data: bytes) -> bytes:
    """Encode one TNEF attribute: level, id, length, data and the 16-bit sum of the data."""
    header = struct.pack("<BII", level, attribute, len(data))
    return header + data + struct.pack("<H", sum(data) & 0xFFFF)


def make_tnef(body: bytes, filename: bytes, content: bytes) -> bytes:
    """Build a small TNEF container with a message body and one attached file."""
    return (
        struct.pack("<IH", TNEF_SIGNATURE, 1)
        + tnef_attribute(LEVEL_MESSAGE, 0x00089006, struct.pack("<I", 0x00010000))
        + tnef_attribute(LEVEL_MESSAGE, 0x0002800C, body + b"\x00")
        + tnef_attribute(LEVEL_ATTACHMENT, 0x00069002, b"\x01\x00" + b"\x00" * 12)
        + tnef_attribute(LEVEL_ATTACHMENT, 0x00018010, filename + b"\x00")
        + tnef_attribute(LEVEL_ATTACHMENT, 0x0006800F, content)
    )


def outlook_mail(text: str | None, tnef: bytes) -> bytes:
    message = EmailMessage()
    message["From"] = "Anna Smit <anna@example.net>"
    message["To"] = "privacy@example.org"
    message["Subject"] = "Verzoek in winmail.dat"
    if text is not None:
        message.set_content(text)
    message.add_attachment(tnef, maintype="application", subtype="ms-tnef", filename="winmail.dat")
    return message.as_bytes()


def test_tnef_files_added_beside_original() -> None:
    tnef = make_tnef(b"Zie bijlage.", b"inzageverzoek.txt", b"Ik wil inzage in mijn gegevens.")

    mail = parse_message(outlook_mail("Bijlage uit Outlook.", tnef))

    assert [a.filename for a in mail.attachments] == ["winmail.dat", "inzageverzoek.txt"]
    assert mail.attachments[1].data == b"Ik wil inzage in mijn gegevens."
    assert mail.attachments[1].content_type == "text/plain"


def test_tnef_body_used_when_mail_has_no_text() -> None:
    tnef = make_tnef(b"Ik wil inzage in mijn gegevens.", b"leeg.txt", b"")

    mail = parse_message(outlook_mail(None, tnef))

    assert mail.text == "Ik wil inzage in mijn gegevens."


def test_tnef_garbage_kept_with_defect() -> None:
    mail = parse_message(outlook_mail("Tekst.", b"not a TNEF container at all"))

    assert [a.filename for a in mail.attachments] == ["winmail.dat"]
    assert any("winmail.dat" in defect for defect in mail.defects)


def test_tnef_path_in_inner_name_removed() -> None:
    tnef = make_tnef(b"", b"..\\..\\evil.txt", b"x")

    mail = parse_message(outlook_mail("Tekst.", tnef))

    assert "\\" not in mail.attachments[1].filename
    assert "/" not in mail.attachments[1].filename
