"""Find the ticket a message belongs to, and who really sent a forwarded request.

Order: In-Reply-To and References first, then the ticket reference in the subject. A delivery
report joins the ticket of the message it reports on. A request that a colleague forwarded is
opened in the name of its original sender.
"""

from __future__ import annotations

import email
import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message as EmailMessage
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import TYPE_CHECKING, NamedTuple

from dateutil import parser as date_parser
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from inbox.models.message import Message
from inbox.models.ticket import Ticket
from inbox.txcache import transaction_cache

if TYPE_CHECKING:
    from inbox.mail.parse import ParsedMail

logger = logging.getLogger(__name__)

_LOOKED_UP = "threading.looked_up"
"""Key in the transaction cache of what ``look_up_threads`` read for a batch."""

_COPIES = "threading.copies"
"""Key in the transaction cache of the stored mail that shares a Message-ID with a batch's mail."""


class _BatchCopies(NamedTuple):
    """The rows ``look_up_threads`` read for ``stored_copy``, with the batch's Message-IDs."""

    message_ids: set[str]
    """The Message-IDs of the batch's mails."""
    repeated: set[str]
    """Those that two mails of the batch share, so a row the batch adds may match them."""
    stored: dict[str, list[tuple[int, str]]]
    """Stored incoming messages by Message-ID: their id and lower-cased sender."""


REFERENCE_PATTERN = re.compile(r"\[?\b((?:PRQ|BRE)-\d{4}-\d{5})\b\]?")
"""A ticket reference such as PRQ-2026-00042 anywhere in a subject, behind any reply prefix."""

FORWARD_MARKER = re.compile(
    r"^[ \t>]*(?:-{2,}\s*(?:Forwarded message|Original Message|Doorgestuurd bericht|"
    r"Oorspronkelijk bericht|Weitergeleitete Nachricht|Urspr\u00fcngliche Nachricht)\s*-{2,}"
    r"|Begin forwarded message:)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
"""The line that opens an inline forwarded mail in common clients (English, Dutch, German)."""

FORWARD_HEADER = re.compile(
    r"^[ \t>]*(From|Van|Von|Date|Sent|Datum|Verzonden|Gesendet|Subject|Onderwerp|Betreff)"
    r"\s*:\s*(.*)$",
    re.IGNORECASE,
)
"""A header line in the block of an inline forwarded mail."""

FORWARD_HEADER_NAMES = {
    "from": "from",
    "van": "from",
    "von": "from",
    "date": "date",
    "sent": "date",
    "datum": "date",
    "verzonden": "date",
    "gesendet": "date",
    "subject": "subject",
    "onderwerp": "subject",
    "betreff": "subject",
}
"""Localised header names of a forwarded block, mapped to the English field."""


@dataclass(frozen=True)
class ThreadMatch:
    """The ticket a mail continues, or the ticket it may follow up when its sender is a stranger."""

    ticket: Ticket | None
    possible_followup_of: Ticket | None = None
    copy_of: Message | None = None


@dataclass(frozen=True)
class Forwarded:
    """The original sender and date of a request that a colleague forwarded."""

    sender_name: str
    sender_addr: str
    date: datetime | None
    forwarded_by: str


def find_reference_token(subject: str) -> str | None:
    """Return the first ticket reference in a subject, or None."""
    match = REFERENCE_PATTERN.search(subject)
    return match.group(1) if match else None


def find_thread(session: Session, parsed: ParsedMail) -> Ticket | None:
    """Return the ticket this mail continues, or None when it starts a new conversation."""
    return match_thread(session, parsed).ticket


def match_thread(session: Session, parsed: ParsedMail) -> ThreadMatch:
    """Find the ticket this mail continues by its headers, else by the subject's reference.

    A mail with the Message-ID and sender of a stored incoming mail that reads the same is a
    second copy of it with other bytes (see ``stored_copy``), and joins that mail's ticket.

    A subject token alone is trusted only from the ticket's requester, so a stranger cannot add
    text to someone else's request by copying its reference. Such mail gets its own ticket,
    marked as a possible follow-up of the referenced one.
    """
    copy = stored_copy(session, parsed)
    if copy is not None:
        return ThreadMatch(follow_merges(session, copy.ticket), copy_of=copy)

    ticket = ticket_by_message_ids(session, [*parsed.in_reply_to, *parsed.references])
    if ticket is not None:
        return ThreadMatch(ticket)

    reference = find_reference_token(parsed.subject)
    if reference is None:
        return ThreadMatch(None)
    ticket = ticket_by_reference(session, reference)
    if ticket is None:
        return ThreadMatch(None)
    ticket = follow_merges(session, ticket)
    if parsed.from_addr and parsed.from_addr.lower() == ticket.requester_email.lower():
        return ThreadMatch(ticket)
    logger.warning(
        "mail carries reference %s but comes from someone other than its requester", reference
    )
    return ThreadMatch(None, possible_followup_of=ticket)


MAX_MERGE_HOPS = 20
"""Maximum length of a chain of merged tickets that is followed; a longer one means a cycle in bad data."""


def follow_merges(session: Session, ticket: Ticket) -> Ticket:
    """Return the ticket that ``ticket`` was merged into, following chains of merges."""
    for _ in range(MAX_MERGE_HOPS):
        if ticket.merged_into_id is None:
            return ticket
        target = session.get(Ticket, ticket.merged_into_id)
        if target is None:
            return ticket
        ticket = target
    return ticket


def look_up_threads(session: Session, mails: list[ParsedMail]) -> None:
    """Read the stored messages and tickets a batch of mail may continue, a query per kind.

    ``ticket_by_message_ids`` and ``ticket_by_reference`` then return tickets from these rows.
    Any flush drops them, because rows it writes were not there when they were read.
    """
    wanted = {mid for mail in mails for mid in conversation_ids(mail)}
    own_ids = Counter(mail.message_id for mail in mails if mail.message_id)
    own = set(own_ids)
    references = {ref for mail in mails if (ref := find_reference_token(mail.subject))}
    known: dict[str, tuple[int, int]] = {}
    copies: dict[str, list[tuple[int, str]]] = {}
    with session.no_autoflush:
        if wanted or own:
            rows = session.execute(
                select(
                    Message.message_id,
                    Message.id,
                    Message.ticket_id,
                    Message.direction,
                    Message.from_addr,
                ).where(Message.message_id.in_(wanted | own))
            )
            for message_id, pk, ticket_id, direction, from_addr in rows:
                if message_id in own and direction == "in":
                    copies.setdefault(message_id, []).append((pk, (from_addr or "").lower()))
                if message_id not in wanted:
                    continue
                if message_id not in known or known[message_id][0] < pk:
                    known[message_id] = (pk, ticket_id)
        ticket_ids = {ticket_id for _pk, ticket_id in known.values()}
        tickets = []
        if ticket_ids or references:
            tickets = list(
                session.scalars(
                    select(Ticket).where(
                        Ticket.id.in_(ticket_ids) | Ticket.reference.in_(references)
                    )
                )
            )
    by_id = {ticket.id: ticket for ticket in tickets}
    # The cache keeps the tickets themselves, because the session references loaded objects weakly.
    latest = {mid: (pk, by_id[ticket_id]) for mid, (pk, ticket_id) in known.items()}
    by_reference: dict[str, Ticket | None] = dict.fromkeys(references)
    by_reference.update({t.reference: t for t in tickets if t.reference in references})
    transaction_cache(session)[_LOOKED_UP] = (wanted, latest, by_reference)
    repeated = {mid for mid, number in own_ids.items() if number > 1}
    transaction_cache(session)[_COPIES] = _BatchCopies(own, repeated, copies)


def conversation_ids(mail: ParsedMail) -> list[str]:
    """Return the Message-IDs a mail's threading headers name, as ``match_thread`` uses them."""
    return [mid for mid in [*mail.in_reply_to, *mail.references] if mid][-50:]


def _looked_up(
    session: Session,
) -> tuple[set[str], dict[str, tuple[int, Ticket]], dict[str, Ticket | None]] | None:
    found = transaction_cache(session).get(_LOOKED_UP)
    return found  # type: ignore[no-any-return]


@event.listens_for(Session, "after_flush")
def _drop_looked_up(session: Session, flush_context: object) -> None:
    """Drop the rows ``look_up_threads`` read, because the flush may have written newer ones."""
    transaction_cache(session).pop(_LOOKED_UP, None)


def stored_copy(session: Session, parsed: ParsedMail) -> Message | None:
    """Return the stored incoming mail of which this mail is a copy, or None.

    A second copy of a mail can come with other bytes: through two addresses that end in one
    mailbox, or from an export that escaped "From " lines or folded headers anew. A copy has the
    same Message-ID and sender and reads the same (``reads_the_same``). A mail that only reuses
    a Message-ID, as some web forms do for every request, reads differently and is no copy.
    Messages added in this session but not flushed yet count too.
    """
    message_id = parsed.message_id
    sender = (parsed.from_addr or "").lower()
    if not message_id or not sender:
        return None
    batch: _BatchCopies | None = transaction_cache(session).get(_COPIES)
    if batch is not None and message_id in batch.message_ids and message_id not in batch.repeated:
        # No other mail of the batch has this Message-ID, so the rows read before it suffice.
        found = [pk for pk, from_addr in batch.stored.get(message_id, []) if from_addr == sender]
        with session.no_autoflush:
            candidates = [session.get(Message, pk) for pk in sorted(found, reverse=True)]
    else:
        pending = [
            obj
            for obj in session.new
            if isinstance(obj, Message) and obj.direction == "in" and obj.message_id == message_id
        ]
        pending.sort(key=lambda message: inspect(message).insert_order, reverse=True)
        with session.no_autoflush:
            stored = session.scalars(
                select(Message)
                .where(Message.message_id == message_id, Message.direction == "in")
                .order_by(Message.id.desc())
            ).all()
        candidates = [*pending, *stored]
    for candidate in candidates:
        if (
            candidate is not None
            and (candidate.from_addr or "").lower() == sender
            and reads_the_same(parsed, candidate)
        ):
            return candidate
    return None


def reads_the_same(parsed: ParsedMail, message: Message) -> bool:
    """Tell whether a parsed mail has a stored message's subject, text and files.

    Files compare by name and size, so a file deleted after identity verification still counts.
    Text compares with mbox escapes of "From " lines undone on both sides.
    """
    files = [(part.filename[:255], part.size) for part in parsed.attachments]
    return (
        parsed.subject == message.subject
        and _unescape_from_lines(parsed.text) == _unescape_from_lines(message.text)
        and files == [(attachment.filename, attachment.size) for attachment in message.attachments]
    )


_ESCAPED_FROM_LINE = re.compile(r"^>(>*From )", re.MULTILINE)
"""A body line that an mbox export escaped because it began with "From "."""


def _unescape_from_lines(text: str) -> str:
    """Remove one ">" before each escaped "From " line, so an mbox copy reads as the original."""
    return _ESCAPED_FROM_LINE.sub(r"\1", text)


def ticket_by_message_ids(session: Session, message_ids: list[str]) -> Ticket | None:
    """Return the ticket of the latest known message among ``message_ids``, or None.

    Messages added in this session but not flushed yet count too, and count as the latest: the
    look-up does not flush, so a batch of mail keeps its rows for one flush at the end.
    """
    wanted = [mid for mid in message_ids if mid][-50:]
    if not wanted:
        return None
    pending = [
        obj
        for obj in session.new
        if isinstance(obj, Message) and obj.message_id and obj.message_id in wanted
    ]
    if pending:
        # Unflushed rows have no id without client ids, so the order they were added is used.
        latest = max(pending, key=lambda message: inspect(message).insert_order)
        return latest.ticket
    looked_up = _looked_up(session)
    if looked_up is not None and looked_up[0].issuperset(wanted):
        candidates = [looked_up[1][mid] for mid in wanted if mid in looked_up[1]]
        if not candidates:
            return None
        return max(candidates, key=lambda candidate: candidate[0])[1]
    with session.no_autoflush:
        known = session.scalars(
            select(Message)
            .where(Message.message_id.in_(wanted))
            .order_by(Message.id.desc())
            .limit(1)
        ).first()
        return known.ticket if known is not None else None


def ticket_by_reference(session: Session, reference: str) -> Ticket | None:
    """Return the ticket with this reference, one added in this session but not flushed included."""
    for obj in session.new:
        if isinstance(obj, Ticket) and obj.reference == reference:
            return obj
    looked_up = _looked_up(session)
    if looked_up is not None and reference in looked_up[2]:
        return looked_up[2][reference]
    with session.no_autoflush:
        return session.scalars(select(Ticket).where(Ticket.reference == reference)).first()


def find_bounced_ticket(session: Session, raw: bytes) -> Ticket | None:
    """Return the ticket of the message that a delivery report (RFC 3464) reports as failed."""
    message_ids = reported_message_ids(raw)
    return ticket_by_message_ids(session, message_ids)


def reported_message_ids(raw: bytes) -> list[str]:
    """Read the Message-ID of the original message from a report's headers or message part."""
    try:
        report = email.message_from_bytes(raw, policy=compat32)
        found = []
        for part in report.walk():
            content_type = part.get_content_type()
            if content_type == "text/rfc822-headers":
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    headers = email.message_from_bytes(payload, policy=compat32)
                    found.append(str(headers.get("Message-ID", "")))
            elif content_type == "message/rfc822" and part.is_multipart():
                inner = part.get_payload(0)
                if isinstance(inner, EmailMessage):
                    found.append(str(inner.get("Message-ID", "")))
    except (LookupError, ValueError, UnicodeError, IndexError, TypeError):
        return []
    return [value.strip().strip("<>") for value in found if value.strip()]


def is_colleague(address: str, colleague_domains: frozenset[str]) -> bool:
    """Tell whether an address belongs to one of the organisation's own mail domains."""
    domain = address.rpartition("@")[2].lower()
    return bool(domain) and domain in colleague_domains


def find_forwarded(
    parsed: ParsedMail, inner: ParsedMail | None, colleague_domains: frozenset[str]
) -> Forwarded | None:
    """Return the original sender of a request a colleague forwarded, or None.

    ``inner`` is the parsed message/rfc822 attachment, if the mail has one. Without it, an
    inline "Forwarded message" block with a From line is used.
    """
    if not is_colleague(parsed.from_addr, colleague_domains):
        return None
    if (
        inner is not None
        and inner.from_addr
        and not is_colleague(inner.from_addr, colleague_domains)
    ):
        return Forwarded(inner.from_name, inner.from_addr.lower(), inner.date, parsed.from_addr)

    fields = inline_forward_headers(parsed.text)
    names = getaddresses([fields.get("from", "")])
    if not names or "@" not in names[0][1]:
        return None
    name, address = names[0]
    if is_colleague(address, colleague_domains):
        return None
    return Forwarded(
        name, address.lower(), parse_loose_date(fields.get("date", "")), parsed.from_addr
    )


def inline_forward_headers(text: str) -> dict[str, str]:
    """Return From, Date and Subject of the first inline forwarded block in a plain-text body."""
    marker = FORWARD_MARKER.search(text)
    if marker is None:
        return {}
    fields: dict[str, str] = {}
    for line in text[marker.end() :].lstrip("\n").splitlines()[:12]:
        match = FORWARD_HEADER.match(line)
        if match is None:
            if line.strip() and fields:
                break
            continue
        name = FORWARD_HEADER_NAMES[match.group(1).lower()]
        fields.setdefault(name, match.group(2).strip())
    return fields


def parse_loose_date(value: str) -> datetime | None:
    """Parse the date of a forwarded block (RFC 5322 or a client's format); None if unreadable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        try:
            parsed = date_parser.parse(value, fuzzy=True, dayfirst=True)
        except (ValueError, OverflowError):
            return None
    if parsed.tzinfo is None:
        # NOTE: a block without an offset is read as UTC; clients show local time there.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
