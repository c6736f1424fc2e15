"""Reasons a ticket needs a person's attention, stored with their values and shown translated.

A ticket keeps its reason's code and values, from which each screen shows the reason in the
reader's language, and the reason's English text, which logs and the audit trail keep.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


def N_(message: str) -> str:  # noqa: N802 - the usual name of the gettext no-op marker
    """Return ``message`` unchanged; the catalogue extraction collects it for translation."""
    return message


BOUNCE = "bounce"
POSSIBLE_FOLLOWUP = "possible_followup"
DELIVERY_GIVEN_UP = "delivery_given_up"
OVERSIZE = "oversize"
OVERSIZE_COPY = "oversize_copy"
PARSE_FAILED = "parse_failed"
PROCESSING_FAILED = "processing_failed"

TEXTS = {
    BOUNCE: N_("requester address failed: a delivery report says our mail could not be delivered"),
    POSSIBLE_FOLLOWUP: N_(
        "possible follow-up of %(reference)s: the mail carries its reference but comes from "
        "someone other than its requester"
    ),
    DELIVERY_GIVEN_UP: N_(
        "mail to %(recipient)s failed %(attempts)s times and is given up (%(error)s); send it "
        "again from the ticket page or reach the requester another way"
    ),
    OVERSIZE: N_(
        "oversize: the message is %(size)s bytes, over INBOX_MAX_MESSAGE_BYTES (%(limit)s); "
        "only its headers were stored, retrieve it manually from %(folder)s (UID %(uid)s)"
    ),
    OVERSIZE_COPY: N_("oversize: only the headers of this %(size)s-byte copy were stored"),
    PARSE_FAILED: N_("parse failed: %(error)s"),
    PROCESSING_FAILED: N_("processing failed: %(error)s"),
}
"""English text of each reason, with %(name)s for its values; the catalogue translates it."""


@dataclass(frozen=True)
class Attention:
    """A reason for attention: its code and the values its text names."""

    code: str
    params: Mapping[str, str | int] = field(default_factory=dict)

    @property
    def english(self) -> str:
        """Return the reason's English text, as logs and the audit trail keep it."""
        return TEXTS[self.code] % dict(self.params)


def shown_reason(
    code: str, params: Mapping[str, object] | None, stored: str, gettext: Callable[[str], str]
) -> str:
    """Return a ticket's reason in the reader's language, or the stored text if none fits.

    Tickets flagged before reasons had codes, and codes a newer version wrote, keep their stored
    English text.
    """
    text = TEXTS.get(code)
    if text is None:
        return stored
    try:
        return gettext(text) % dict(params or {})
    except (KeyError, TypeError, ValueError):
        return stored
