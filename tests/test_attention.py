"""Reasons for attention: stored with a code and values, shown in the reader's language."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from inbox import attention
from inbox.attention import Attention, shown_reason
from inbox.enums import RequestType
from inbox.extensions import db
from inbox.models.ticket import Ticket
from inbox.models.types import utcnow
from inbox.services.tickets import NewTicket, flag_ticket, open_ticket, sla_policy
from tests.conftest import AuthActions

DUTCH = {"Accept-Language": "nl"}


def tagged(text: str) -> str:
    """Stand in for a catalogue: "translate" by putting a language tag in front."""
    return "[nl] " + text


@pytest.mark.parametrize(
    ("code", "params", "expected"),
    [
        (attention.BOUNCE, None, "[nl] " + attention.TEXTS[attention.BOUNCE]),
        (attention.PARSE_FAILED, {"error": "bad"}, "[nl] parse failed: bad"),
        (
            attention.OVERSIZE_COPY,
            {"size": 12},
            "[nl] oversize: only the headers of this 12-byte copy were stored",
        ),
        # A value the text names is missing: the stored text is shown.
        (attention.PARSE_FAILED, {}, "stored text"),
        # No code (flagged before codes) or a code this version does not know.
        ("", None, "stored text"),
        ("from_a_newer_version", {"x": 1}, "stored text"),
    ],
)
def test_shown_reason_cases(code: str, params: dict[str, object] | None, expected: str) -> None:
    assert shown_reason(code, params, "stored text", tagged) == expected


def test_every_reason_has_english_text() -> None:
    values = {
        "reference": "PRQ-2026-00001",
        "recipient": "a@example.net",
        "attempts": 5,
        "error": "timed out",
        "size": 40_000_000,
        "limit": 36_700_160,
        "folder": "INBOX",
        "uid": 7,
    }
    for code in attention.TEXTS:
        assert "%(" not in Attention(code, values).english, code


def open_flagged(app: Flask, reason: Attention) -> Ticket:
    """Open a ticket that needs attention for ``reason``."""
    new = NewTicket(
        request_type=RequestType.ACCESS,
        received_at=utcnow(),
        requester_email="jan@example.net",
        attention=reason,
    )
    ticket = open_ticket(db.session, new, sla_policy(app.config), "system")
    db.session.commit()
    return ticket


def test_reason_shown_in_dutch(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    reason = Attention(attention.POSSIBLE_FOLLOWUP, {"reference": "PRQ-2026-00001"})
    ticket = open_flagged(app, reason)
    auth.login()

    page = client.get(f"/tickets/{ticket.reference}", headers=DUTCH).text

    assert "mogelijk vervolg op PRQ-2026-00001" in page
    assert ticket.attention_reason == reason.english


def test_flag_stores_code_and_values(app: Flask) -> None:
    ticket = open_flagged(app, Attention(attention.PARSE_FAILED, {"error": "no headers"}))

    flag_ticket(db.session, ticket, Attention(attention.BOUNCE))
    db.session.commit()

    assert ticket.needs_attention
    assert ticket.attention_code == attention.BOUNCE
    assert ticket.attention_params == {}
    assert ticket.attention_reason.startswith("requester address failed")


def test_reason_without_code_shows_stored_text(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    ticket = open_flagged(app, Attention(attention.BOUNCE))
    ticket.attention_code = ""
    ticket.attention_reason = "flagged by an earlier version"
    db.session.commit()
    auth.login()

    page = client.get(f"/tickets/{ticket.reference}", headers=DUTCH).text

    assert "flagged by an earlier version" in page
