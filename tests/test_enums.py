"""Parsing enum values from outside input."""

from __future__ import annotations

import pytest

from inbox.enums import RequestType, TicketStatus, parse_choice
from inbox.errors import TransitionError


def test_parse_choice_returns_member() -> None:
    assert parse_choice(RequestType, "erasure", "request type", TransitionError) is RequestType.ERASURE


def test_parse_choice_names_allowed_values() -> None:
    expected = "unknown status 'gone'; allowed: new, open, waiting, closed"

    with pytest.raises(TransitionError, match=expected):
        parse_choice(TicketStatus, "gone", "status", TransitionError)
