"""Triage: confirm or correct a ticket's type, bulk assign and retype, merge duplicates.

Every confirmed or changed type is also kept as a labelled example (TypeCorrection) that
``export_corrections`` writes in the classifier evaluation's MANIFEST format.
"""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox.audit import record_event
from inbox.enums import RequestType, TicketStatus
from inbox.errors import InputError
from inbox.mail.quoting import split_reply
from inbox.models.audit import AuditTag
from inbox.models.correction import TypeCorrection
from inbox.models.message import Message
from inbox.models.ticket import Ticket
from inbox.models.types import utcnow
from inbox.models.user import User
from inbox.services.tickets import change_status, change_type
from inbox.sla import SlaPolicy

logger = logging.getLogger(__name__)

CONFIRMED_CONFIDENCE = 1.0
"""Confidence of a type that a person confirmed or chose."""

MANIFEST_COLUMNS = ("file", "language", "expected_type")
"""Columns of MANIFEST.csv, as the classifier evaluation reads them."""


class TicketsNotFoundError(InputError):
    """Raised when a bulk action names references that match no ticket."""

    def __init__(self, references: Sequence[str]) -> None:
        self.references = list(references)
        super().__init__(f"no ticket has the reference {', '.join(self.references)}")


class MergeError(InputError):
    """Raised when the selected tickets cannot be merged. The message names the reason."""


class ClosedTicketError(MergeError):
    """Raised when a ticket selected for a merge is closed."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        super().__init__(f"ticket {reference} is closed; reopen it before merging")


class MissingRequesterError(MergeError):
    """Raised when a ticket selected for a merge has no requester address to compare."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        super().__init__(f"ticket {reference} has no requester address, so it cannot be merged")


class RequesterMismatchError(MergeError):
    """Raised when the tickets selected for a merge come from different requesters."""

    def __init__(self, first_email: str, second_email: str) -> None:
        self.first_email = first_email
        self.second_email = second_email
        super().__init__(
            f"tickets of different requesters ({first_email} and {second_email}) "
            "cannot be merged; select tickets of one requester"
        )


def find_tickets(session: Session, references: Sequence[str]) -> list[Ticket]:
    """Load the tickets with these references, in the order given, without duplicates.

    :raises TicketsNotFoundError: a reference matches no ticket.
    """
    requested = list(dict.fromkeys(r.strip() for r in references if r.strip()))
    found = {
        ticket.reference: ticket
        for ticket in session.scalars(select(Ticket).where(Ticket.reference.in_(requested)))
    }
    missing = [r for r in requested if r not in found]
    if missing:
        raise TicketsNotFoundError(missing)
    return [found[r] for r in requested]


def first_incoming_message(ticket: Ticket) -> Message | None:
    """Return the earliest incoming message of a ticket, the one its type was taken from."""
    for message in ticket.messages:
        if message.direction == "in":
            return message
    return None


def record_correction(
    session: Session, ticket: Ticket, predicted_type: str, actor: str
) -> TypeCorrection:
    """Store the ticket's current type as a labelled example of its first message."""
    message = first_incoming_message(ticket)
    text = ""
    if message is not None and not message.parse_failed:
        # The same cut as at intake, so the example contains the text the classifier scored.
        text, _quoted = split_reply(message.text or "")
    correction = TypeCorrection(
        ticket_id=ticket.id,
        message_id=message.id if message is not None else None,
        subject=ticket.subject,
        text=text,
        language=ticket.language,
        predicted_type=predicted_type,
        corrected_type=ticket.type,
        actor=actor,
    )
    session.add(correction)
    session.flush()
    return correction


def latest_correction(session: Session, ticket: Ticket) -> TypeCorrection | None:
    """Return the most recent correction of a ticket, or None."""
    return session.scalars(
        select(TypeCorrection)
        .where(TypeCorrection.ticket_id == ticket.id)
        .order_by(TypeCorrection.id.desc())
        .limit(1)
    ).first()


def settle_type(session: Session, ticket: Ticket, actor: str, via: str) -> None:
    """Mark the ticket's type as decided by a person and audit it. The caller commits."""
    old_confidence = ticket.confidence
    ticket.confidence = CONFIRMED_CONFIDENCE
    ticket.updated_at = utcnow()
    record_event(
        session,
        AuditTag.TICKET_TYPE_CONFIRM,
        actor,
        ticket,
        {"type": ticket.type, "confidence_from": round(old_confidence, 3), "via": via},
    )


def confirm_type(session: Session, ticket: Ticket, actor: str) -> bool:
    """Confirm the ticket's current type, or return False when it was already confirmed.

    Sets the confidence to 1.0, audits the confirmation and stores a labelled example.
    """
    latest = latest_correction(session, ticket)
    if latest is not None and latest.corrected_type == ticket.type:
        return False

    settle_type(session, ticket, actor, via="confirm")
    record_correction(session, ticket, ticket.type, actor)
    logger.info("ticket %s type %s confirmed by %s", ticket.reference, ticket.type, actor)
    return True


def retype_with_correction(
    session: Session, ticket: Ticket, new_type: str, policy: SlaPolicy, actor: str
) -> bool:
    """Retype a ticket as ``change_type`` does, and keep the new type as a labelled example.

    :raises TransitionError: ``new_type`` is not a request type.
    """
    old_type = ticket.type
    if not change_type(session, ticket, new_type, policy, actor):
        return False

    settle_type(session, ticket, actor, via="retype")
    record_correction(session, ticket, old_type, actor)
    return True


def assign_ticket(session: Session, ticket: Ticket, assignee: User | None, actor: str) -> bool:
    """Assign a ticket to a user, or unassign it with None. Return False when nothing changed."""
    new_id = assignee.id if assignee is not None else None
    if ticket.assignee_id == new_id:
        return False

    old = ticket.assignee
    ticket.assignee = assignee
    ticket.updated_at = utcnow()
    record_event(
        session,
        AuditTag.TICKET_ASSIGNEE_CHANGE,
        actor,
        ticket,
        {
            "from": old.email if old is not None else None,
            "to": assignee.email if assignee is not None else None,
            "from_user": old.id if old is not None else None,
            "to_user": new_id,
        },
    )
    logger.info("ticket %s assigned to user %s by %s", ticket.reference, new_id, actor)
    return True


def bulk_assign(
    session: Session, tickets: Sequence[Ticket], assignee: User | None, actor: str
) -> int:
    """Assign every ticket to ``assignee`` and return how many changed."""
    return sum(assign_ticket(session, ticket, assignee, actor) for ticket in tickets)


def bulk_retype(
    session: Session, tickets: Sequence[Ticket], new_type: str, policy: SlaPolicy, actor: str
) -> int:
    """Retype every ticket, storing a correction for each, and return how many changed.

    :raises TransitionError: ``new_type`` is not a request type.
    """
    return sum(
        retype_with_correction(session, ticket, new_type, policy, actor) for ticket in tickets
    )


@dataclass
class MergeResult:
    """Outcome of a merge: the ticket kept and the tickets closed into it."""

    kept: Ticket
    closed: list[Ticket] = field(default_factory=list)
    messages_moved: int = 0


def check_mergeable(tickets: Sequence[Ticket]) -> None:
    """Check that the tickets are at least two, all open, and from one requester.

    :raises MergeError: or one of its subclasses, naming the ticket or addresses at fault.
    """
    if len({ticket.id for ticket in tickets}) < 2:
        raise MergeError("select at least two tickets to merge")
    for ticket in tickets:
        if ticket.is_closed:
            raise ClosedTicketError(ticket.reference)
        if not ticket.requester_email.strip():
            raise MissingRequesterError(ticket.reference)

    first = tickets[0].requester_email.strip()
    for ticket in tickets[1:]:
        if ticket.requester_email.strip().lower() != first.lower():
            raise RequesterMismatchError(first, ticket.requester_email.strip())


def merge_tickets(session: Session, tickets: Sequence[Ticket], actor: str) -> MergeResult:
    """Merge duplicate tickets of one requester into the one received first.

    The kept ticket keeps its reference, type and clock, and receives the others' messages.
    The others are closed. Both sides get a ``ticket:ticket:merge`` event naming the other.

    Replies that cite a merged ticket's message ids follow the moved messages, and a reply that
    carries only its reference in the subject follows ``merged_into_id``.

    :raises MergeError: the tickets are fewer than two, one is closed, or the requesters differ.
    """
    check_mergeable(tickets)
    ordered = sorted({t.id: t for t in tickets}.values(), key=lambda t: (t.received_at, t.id))
    kept, others = ordered[0], ordered[1:]
    result = MergeResult(kept)

    for other in others:
        moved = list(other.messages)
        for message in moved:
            message.ticket = kept
        added = merge_secondary_types(kept, other)
        data = {
            "kept": kept.reference,
            "merged": other.reference,
            "messages_moved": len(moved),
        }
        record_event(session, AuditTag.TICKET_MERGE, actor, kept, {**data, "types_added": added})
        record_event(session, AuditTag.TICKET_MERGE, actor, other, data)
        other.merged_into_id = kept.id
        change_status(session, other, TicketStatus.CLOSED, actor)
        result.closed.append(other)
        result.messages_moved += len(moved)
        logger.info(
            "ticket %s merged into %s by %s, %s messages moved",
            other.reference,
            kept.reference,
            actor,
            len(moved),
        )

    kept.updated_at = utcnow()
    session.flush()
    # The in-memory list got the moved messages appended; reload it in receipt order.
    session.expire(kept, ["messages"])
    return result


def merge_secondary_types(kept: Ticket, other: Ticket) -> list[str]:
    """Add the other ticket's type and secondary types to the kept ticket's; return the new ones."""
    current = list(kept.secondary_types or [])
    added: list[str] = []
    for request_type in (other.type, *(other.secondary_types or [])):
        if request_type in (kept.type, RequestType.OTHER) or request_type in current + added:
            continue
        added.append(request_type)
    if added:
        kept.secondary_types = current + added
    return added


def latest_corrections(session: Session) -> list[TypeCorrection]:
    """Return the latest correction of each ticket, oldest ticket correction first."""
    latest: dict[int, TypeCorrection] = {}
    for correction in session.scalars(select(TypeCorrection).order_by(TypeCorrection.id)):
        latest[correction.ticket_id] = correction
    return sorted(latest.values(), key=lambda c: c.id)


def correction_files(session: Session) -> list[tuple[str, str]]:
    """Build MANIFEST.csv and one ``<n>.txt`` per ticket's latest correction, as (name, text).

    Each text file starts with a ``Subject:`` line and a blank line, then the body.
    """
    manifest = io.StringIO()
    writer = csv.writer(manifest, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    files = []
    for number, correction in enumerate(latest_corrections(session), start=1):
        name = f"{number}.txt"
        # A folded or hostile subject must stay on the first line.
        subject = " ".join(correction.subject.split())
        files.append((name, f"Subject: {subject}\n\n{correction.text}\n"))
        writer.writerow((name, correction.language or "und", correction.corrected_type))
    return [("MANIFEST.csv", manifest.getvalue()), *files]


def export_corrections(session: Session, directory: Path) -> int:
    """Write the labelled examples to ``directory`` and return how many were written.

    Files of the same names already in ``directory`` are replaced.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = correction_files(session)
    for name, content in files:
        (directory / name).write_text(content, encoding="utf-8")
    return len(files) - 1


def build_corrections_zip(session: Session, actor: str) -> tuple[bytes, int]:
    """Pack the same files as ``export_corrections`` into a zip and audit the export.

    Returns the zip's bytes and the number of examples. The caller commits.
    """
    files = correction_files(session)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files:
            archive.writestr(name, content.encode("utf-8"))
    record_corrections_export(session, actor, len(files) - 1, "download")
    return buffer.getvalue(), len(files) - 1


def record_corrections_export(session: Session, actor: str, count: int, target: str) -> None:
    """Audit an export of labelled examples, which copies requesters' mail. The caller commits."""
    record_event(
        session, AuditTag.CORRECTIONS_EXPORT, actor, None, {"examples": count, "target": target}
    )
    logger.info("%s exported %s type corrections to %s", actor, count, target)
