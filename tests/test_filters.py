"""Tests for inbox.mail.filters: auto-replies, bounces, list mail and loops."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from inbox.mail.filters import LOOP_HEADER, check_automatic
from inbox.mail.parse import ParsedMail, parse_message

MAIL_DIR = Path(__file__).parent / "data" / "mail"


def parse_built(
    subject: str = "Inzageverzoek", sender: str = "jan@example.nl", **headers: str
) -> ParsedMail:
    """Build and parse a plain mail with extra headers (underscores become dashes)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "privacy@org.example"
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Ik wil weten welke gegevens u van mij verwerkt.\n")
    return parse_message(message.as_bytes())


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Auto_Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
        ({"Auto_Submitted": "auto-generated; owner-email=x@example.nl"},
         "Auto-Submitted: auto-generated; owner-email=x@example.nl"),
        ({"X_Autoreply": "yes"}, "x-autoreply header present"),
        ({"X_Autorespond": "Vacation"}, "x-autorespond header present"),
        ({"Precedence": "bulk"}, "Precedence: bulk"),
        ({"Precedence": "Junk"}, "Precedence: junk"),
        ({"Precedence": "list"}, "Precedence: list"),
        ({"List_Id": "Nieuwsbrief <news.example.nl>"}, "list-id header present"),
        ({"List_Unsubscribe": "<mailto:unsub@example.nl>"}, "list-unsubscribe header present"),
        ({"X_Privacy_Inbox_Loop": "ticket PI-2024-0001"}, f"{LOOP_HEADER} header present"),
    ],
)  # fmt: skip
def test_check_automatic_header_signs(headers: dict[str, str], reason: str) -> None:
    result = check_automatic(parse_built(**headers))

    assert result.is_automatic is True
    assert result.reasons == (reason,)
    assert result.is_bounce is False


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Auto_Submitted": "no"},
        {"X_Auto_Response_Suppress": "All"},
        {"Precedence": "first-class"},
    ],
)
def test_check_automatic_human_mail(headers: dict[str, str]) -> None:
    result = check_automatic(parse_built(**headers))

    assert result.is_automatic is False
    assert result.reasons == ()


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Inzageverzoek",
        "Automatic reply: Your request",
        "Autoreply: Your request",
        "RE: Out of office until Monday",
        "Afwezig",
        "Afwezig: Inzageverzoek",
        "Automatisch antwoord: Uw verzoek",
        "Abwesenheitsnotiz: Ihre Anfrage",
        "Automatische Antwort: Ihre Anfrage",
        "AW: Abwesend",
        "Réponse automatique : Votre demande",
        "Absence : Votre demande",
        "Absent du bureau",
    ],
)
def test_check_automatic_out_of_office(subject: str) -> None:
    result = check_automatic(parse_built(subject=subject))

    assert result.is_automatic is True
    assert result.reasons == ("out-of-office subject",)


@pytest.mark.parametrize(
    "subject",
    [
        "Afwezigheid van antwoord op mijn inzageverzoek",
        "Absence of consent for marketing",
        "Verzoek om gegevens over mijn afwezigheid",
        "Request about automatic decision making",
    ],
)
def test_check_automatic_human_subjects(subject: str) -> None:
    assert check_automatic(parse_built(subject=subject)).is_automatic is False


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        ("MAILER-DAEMON@mx.example.nl", "sender is mailer-daemon"),
        ("Postmaster <postmaster@example.nl>", "sender is postmaster"),
    ],
)
def test_check_automatic_daemon_sender(sender: str, reason: str) -> None:
    result = check_automatic(parse_built(sender=sender))

    assert result.reasons == (reason,)


def test_check_automatic_own_address() -> None:
    mail = parse_built(sender="Privacy <Privacy@Org.Example>")

    result = check_automatic(mail, own_addresses=["privacy@org.example"])

    assert result.reasons == ("sender is one of our own addresses",)


def test_check_automatic_bounce_eml() -> None:
    result = check_automatic(parse_message((MAIL_DIR / "bounce.eml").read_bytes()))

    assert result.is_automatic is True
    assert result.is_bounce is True
    assert result.reasons == (
        "Auto-Submitted: auto-replied",
        "sender is mailer-daemon",
        "delivery status report",
    )


def test_check_automatic_list_mail_eml() -> None:
    message = EmailMessage()
    message["From"] = "Nieuwsbrief <nieuws@shop.example.nl>"
    message["To"] = "privacy@org.example"
    message["Subject"] = "Onze aanbiedingen van deze week"
    message["List-Id"] = "Aanbiedingen <aanbiedingen.shop.example.nl>"
    message["List-Unsubscribe"] = "<https://shop.example.nl/afmelden>"
    message["Precedence"] = "bulk"
    message.set_content("Deze week: alles in de aanbieding.\n")

    result = check_automatic(parse_message(message.as_bytes()))

    assert result.reasons == ("Precedence: bulk", "list-id header present")
    assert result.is_bounce is False


def test_check_automatic_reasons_in_fixed_order() -> None:
    mail = parse_built(
        subject="Automatic reply: Inzageverzoek",
        sender="postmaster@org.example",
        Auto_Submitted="auto-replied",
        X_Autoreply="yes",
        Precedence="bulk",
        List_Id="<list.example>",
        X_Privacy_Inbox_Loop="1",
    )

    result = check_automatic(mail, own_addresses={"postmaster@org.example"})

    assert result.reasons == (
        "Auto-Submitted: auto-replied",
        "x-autoreply header present",
        "Precedence: bulk",
        "list-id header present",
        "sender is postmaster",
        "sender is one of our own addresses",
        "out-of-office subject",
        f"{LOOP_HEADER} header present",
    )


def test_check_automatic_long_value_shortened() -> None:
    result = check_automatic(parse_built(Auto_Submitted="auto-generated " + "x" * 200))

    assert len(result.reasons[0]) < 120


def test_check_automatic_french_ooo_eml() -> None:
    mail = parse_message((MAIL_DIR / "ooo_fr.eml").read_bytes())

    result = check_automatic(mail)

    assert mail.subject == "Réponse automatique : Demande d'accès"
    assert mail.from_addr == "claire.martin@example.fr"
    assert "absente jusqu'au 20 mars" in mail.text
    assert mail.attachments == ()
    assert result.reasons == ("out-of-office subject",)
