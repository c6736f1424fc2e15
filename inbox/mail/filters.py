"""Recognise automatic mail: auto-replies, bounces, mailing lists and our own loops.

The checks only report, and the caller decides what to do: no mail is dropped here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from inbox.mail.parse import ParsedMail

logger = logging.getLogger(__name__)

LOOP_HEADER = "X-Privacy-Inbox-Loop"
"""Header that privacy-inbox sets on every mail it sends, so its own mail is recognised."""

MAX_REASON_VALUE_CHARS = 80
"""Maximum length of a header value quoted in a reason."""

BULK_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
"""Precedence values that mark mail as automatic. Some vacation tools send auto_reply."""

DAEMON_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster"})
"""Sender local parts used for delivery reports."""

# Phrases that open the subject of an out-of-office reply in English, Dutch, German and
# French. Short words such as "absent" also open human subjects, so they count only when a
# colon or the end of the subject follows.
_REPLY_PREFIX = r"^\s*(?:(?:re|aw|antw|sv|wg|tr|fw|fwd)\s*:\s*)*"
_OUT_OF_OFFICE_PHRASES = (
    r"out of (?:the )?office",
    r"auto(?:matic)?[- ]?(?:reply|response)",
    r"autoreply",
    r"vacation reply",
    r"automatisch antwoord",
    r"afwezigheidsbericht",
    r"niet aanwezig",
    r"abwesenheitsnotiz",
    r"automatische antwort",
    r"abwesenheitsmeldung",
    r"r[ée]ponse automatique",
    r"message d'absence",
    r"absente? du bureau",
)
_OUT_OF_OFFICE_WORDS = r"(?:afwezig|abwesend|absence|absente?|away)\s*(?::|$)"
_OUT_OF_OFFICE_PATTERN = (
    r"(?:(?:" + "|".join(_OUT_OF_OFFICE_PHRASES) + r")\b|" + _OUT_OF_OFFICE_WORDS + ")"
)
OUT_OF_OFFICE_SUBJECT = re.compile(_REPLY_PREFIX + _OUT_OF_OFFICE_PATTERN, re.IGNORECASE)
"""Subject pattern of out-of-office replies in English, Dutch, German and French."""


@dataclass(frozen=True)
class AutoCheck:
    """Outcome of the automatic-mail checks, with one reason per check that matched."""

    is_automatic: bool
    is_bounce: bool
    reasons: tuple[str, ...]


def _quote(value: str) -> str:
    """Shorten a header value for a reason line."""
    value = " ".join(value.split())
    if len(value) > MAX_REASON_VALUE_CHARS:
        return value[:MAX_REASON_VALUE_CHARS] + "…"
    return value


def _check_auto_submitted(mail: ParsedMail) -> str | None:
    """Apply RFC 3834: any Auto-Submitted value other than "no" is automatic."""
    value = mail.headers.get("auto-submitted")
    if value is None:
        return None
    keyword = value.split(";", 1)[0].strip().lower()
    if keyword == "no":
        return None
    return f"Auto-Submitted: {_quote(value)}"


def _check_autoreply_headers(mail: ParsedMail) -> str | None:
    """Match X-Autoreply and X-Autorespond, but not X-Auto-Response-Suppress: we send it."""
    for name in ("x-autoreply", "x-autorespond"):
        if name in mail.headers:
            return f"{name} header present"
    return None


def _check_precedence(mail: ParsedMail) -> str | None:
    """Match Precedence: bulk, junk, list (and auto_reply)."""
    value = mail.headers.get("precedence", "").strip().lower()
    if value in BULK_PRECEDENCE:
        return f"Precedence: {value}"
    return None


def _check_list_headers(mail: ParsedMail) -> str | None:
    """Match mailing-list mail by its List-Id or List-Unsubscribe header (RFC 2919, 2369)."""
    for name in ("list-id", "list-unsubscribe"):
        if name in mail.headers:
            return f"{name} header present"
    return None


def _check_daemon_sender(mail: ParsedMail) -> str | None:
    """Match a mailer-daemon or postmaster sender."""
    local_part = mail.from_addr.rpartition("@")[0] or mail.from_addr
    if local_part.lower() in DAEMON_LOCAL_PARTS:
        return f"sender is {local_part.lower()}"
    return None


def _check_loop_header(mail: ParsedMail) -> str | None:
    """Match mail that carries our own loop header."""
    if LOOP_HEADER.lower() in mail.headers:
        return f"{LOOP_HEADER} header present"
    return None


def _check_out_of_office(mail: ParsedMail) -> str | None:
    """Match an out-of-office subject in English, Dutch, German or French."""
    if OUT_OF_OFFICE_SUBJECT.search(mail.subject):
        return "out-of-office subject"
    return None


def is_delivery_report(mail: ParsedMail) -> bool:
    """Tell whether the mail is a delivery status notification (RFC 3464 multipart/report)."""
    content_type = mail.headers.get("content-type", "").lower()
    if "multipart/report" in content_type and "delivery-status" in content_type:
        return True
    return any(a.content_type == "message/delivery-status" for a in mail.attachments)


_HEADER_CHECKS: tuple[Callable[[ParsedMail], str | None], ...] = (
    _check_auto_submitted,
    _check_autoreply_headers,
    _check_precedence,
    _check_list_headers,
    _check_daemon_sender,
)


def check_automatic(mail: ParsedMail, *, own_addresses: Collection[str] = ()) -> AutoCheck:
    """Run every automatic-mail check in a fixed order and collect the reasons."""
    reasons = [reason for check in _HEADER_CHECKS if (reason := check(mail))]

    own = {address.strip().lower() for address in own_addresses}
    if mail.from_addr and mail.from_addr in own:
        reasons.append("sender is one of our own addresses")

    for check in (_check_out_of_office, _check_loop_header):
        if reason := check(mail):
            reasons.append(reason)

    is_bounce = is_delivery_report(mail)
    if is_bounce:
        reasons.append("delivery status report")
    if _check_daemon_sender(mail) == "sender is mailer-daemon":
        is_bounce = True

    return AutoCheck(is_automatic=bool(reasons), is_bounce=is_bounce, reasons=tuple(reasons))
