"""Identity verification and per-system search records on a ticket's checklist, each audited.

Both are found by step id in the shipped workflows. The ``confirm_identity`` step carries the
identity verification state, and the ``search_systems`` step one record per system searched.
A workflow without those step ids has neither, and its steps check like any other.

NOTE: an admin who renames either step in a workflow edit turns its gate off for new tickets.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inbox.audit import record_event
from inbox.enums import parse_choice
from inbox.mail.outgoing import MailFile
from inbox.models.audit import AuditTag
from inbox.models.message import Attachment, Blob, Message
from inbox.models.ticket import Ticket
from inbox.models.types import utcnow
from inbox.models.workflow import (
    IdentityCheck,
    IdentityStatus,
    SearchResult,
    StepNote,
    StepStatus,
    SystemSearch,
    WorkflowStep,
)
from inbox.services.deadlines import PAUSE_IDENTITY, open_pause, pause_clock, resume_clock
from inbox.services.replies import store_file
from inbox.services.workflows import WorkflowStateError, add_note

logger = logging.getLogger(__name__)

IDENTITY_STEP_ID = "confirm_identity"
"""Step id that carries the identity verification state."""

IDENTITY_TEMPLATE = "identity_verification"
"""Mail template of the request for additional information. Checking its step counts a request."""

SEARCH_STEP_ID = "search_systems"
"""Step id that carries the per-system search records."""

MAX_CHECKED_NOTE_CHARS = 500
"""Maximum length of the note of what was checked; it describes the check, never the document."""

MAX_SYSTEM_CHARS = 200
"""Maximum length of a system name, in characters."""

MAX_SEARCH_NOTE_CHARS = 2_000
"""Maximum length of the note on a search record, in characters."""

EVIDENCE_DIRECTION = "evidence"
"""Message.direction of the internal message that carries uploaded evidence; it is never sent."""


@dataclass(frozen=True)
class IdentityChange:
    """A new identity verification status with a short note of what was checked."""

    status: str
    note: str = ""


@dataclass(frozen=True)
class SearchRecordInput:
    """One system searched: its name, the result, a note and an optional evidence attachment."""

    system: str
    result: str
    note: str = ""
    attachment_id: int | None = None
    upload: MailFile | None = None
    """A new evidence file, in place of a file already on the ticket."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _open_ticket_of(step: WorkflowStep) -> Ticket:
    ticket = step.instance.ticket
    if ticket.is_closed:
        raise WorkflowStateError(f"ticket {ticket.reference} is closed; reopen it to change steps")
    return ticket


def _attachment_of(session: Session, ticket: Ticket, attachment_id: int) -> Attachment:
    attachment = session.get(Attachment, attachment_id)
    if attachment is None or attachment.message.ticket_id != ticket.id:
        raise WorkflowStateError(
            f"attachment {attachment_id} is not part of ticket {ticket.reference}"
        )
    return attachment


def store_evidence_file(
    session: Session, ticket: Ticket, upload: MailFile, actor: str
) -> Attachment:
    """Store an uploaded evidence file on the ticket, on an internal message that is never sent.

    An Attachment needs a message, so each upload gets one with direction ``evidence``; the
    conversation leaves such messages out. The caller audits the upload with its record.

    :raises AttachmentTooLargeError: the file is over INBOX_MAX_ATTACHMENT_BYTES.
    """
    now = utcnow()
    message = Message(
        ticket=ticket,
        direction=EVIDENCE_DIRECTION,
        from_addr=actor[:320],
        received_at=now,
        date_header=now,
    )
    session.add(message)
    attachment = store_file(
        session, message, upload, int(current_app.config["MAX_ATTACHMENT_BYTES"])
    )
    logger.info(
        "ticket %s evidence file stored as attachment %s by %s",
        ticket.reference,
        attachment.id,
        actor,
    )
    return attachment


def add_evidence_note(
    session: Session, step: WorkflowStep, actor: str, text: str, upload: MailFile | None
) -> StepNote:
    """Add a note to a step, storing an uploaded file as its evidence; the note's event audits both.

    :raises WorkflowStateError: the note is too long or empty without a file, or the file is
        over INBOX_MAX_ATTACHMENT_BYTES.
    """
    evidence = None
    if upload is not None:
        evidence = store_evidence_file(session, step.instance.ticket, upload, actor)
    return add_note(session, step, actor, text, evidence)


def identity_check_of(session: Session, step: WorkflowStep) -> IdentityCheck | None:
    """Return the identity verification state stored on a step, or None."""
    return session.scalars(select(IdentityCheck).where(IdentityCheck.step_pk == step.id)).first()


def _require_identity_check(session: Session, step: WorkflowStep) -> IdentityCheck:
    if step.step_id != IDENTITY_STEP_ID:
        raise WorkflowStateError(
            f"step {step.step_id} has no identity verification; use step {IDENTITY_STEP_ID}"
        )
    check = identity_check_of(session, step)
    if check is None:
        check = IdentityCheck(step_pk=step.id, status=IdentityStatus.NOT_NEEDED, attempts=0)
        session.add(check)
    return check


def update_identity(
    session: Session, step: WorkflowStep, change: IdentityChange, actor: str
) -> IdentityCheck:
    """Set the identity verification status; "requested" counts an attempt and may pause the clock.

    With INBOX_SLA_PAUSE_FOR_IDENTITY on, the clock stops while the status is "requested" and
    restarts, moving the due moment, when it changes to anything else.

    :raises WorkflowStateError: unknown status, note too long, closed ticket or wrong step.
    """
    ticket = _open_ticket_of(step)
    status = parse_choice(IdentityStatus, change.status, "identity status", WorkflowStateError)
    note = change.note.strip()
    if len(note) > MAX_CHECKED_NOTE_CHARS:
        raise WorkflowStateError(
            f"the note of what was checked has {len(note)} characters; at most "
            f"{MAX_CHECKED_NOTE_CHARS}, and it never holds a copy of a document"
        )
    check = _require_identity_check(session, step)
    previous = check.status
    now = utcnow()
    check.status = status.value
    if status is IdentityStatus.REQUESTED:
        check.attempts = (check.attempts or 0) + 1
    if note:
        check.checked_note = note
    check.updated_at = now
    check.updated_by = actor
    session.flush()

    record_event(
        session,
        AuditTag.IDENTITY_UPDATE,
        actor,
        ticket,
        {
            "step": step.step_id,
            "from": previous,
            "to": check.status,
            "attempts": check.attempts,
            "note_sha256": _sha256(note) if note else None,
        },
    )
    _pause_or_resume(session, ticket, status, actor, now)
    logger.info("ticket %s identity %s by %s", ticket.reference, check.status, actor)
    return check


def _pause_or_resume(
    session: Session, ticket: Ticket, status: IdentityStatus, actor: str, now: datetime
) -> None:
    """Stop the clock while identity verification waits, when INBOX_SLA_PAUSE_FOR_IDENTITY is on."""
    if status is IdentityStatus.REQUESTED:
        if current_app.config.get("SLA_PAUSE_FOR_IDENTITY", False):
            pause_clock(session, ticket, actor, PAUSE_IDENTITY, now)
        return
    pause = open_pause(session, ticket)
    # A pause is ended whatever the setting is now, so switching it off never strands a clock.
    if pause is not None and pause.reason == PAUSE_IDENTITY:
        resume_clock(session, ticket, actor, now)


def record_identity_request(session: Session, reply_step: WorkflowStep, actor: str) -> None:
    """Mark identity verification requested once the request for information is done."""
    identity_step = next(
        (s for s in reply_step.instance.steps if s.step_id == IDENTITY_STEP_ID), None
    )
    if identity_step is None or identity_step.status != StepStatus.OPEN:
        return
    update_identity(session, identity_step, IdentityChange(IdentityStatus.REQUESTED), actor)


def attach_identity_evidence(
    session: Session, step: WorkflowStep, attachment_id: int, actor: str
) -> IdentityCheck:
    """Name a ticket attachment as the evidence checked; delete its file after verification.

    :raises WorkflowStateError: the attachment is not the ticket's, or the step is wrong.
    """
    ticket = _open_ticket_of(step)
    attachment = _attachment_of(session, ticket, attachment_id)
    check = _require_identity_check(session, step)
    check.evidence = attachment
    check.evidence_deleted_at = None
    check.updated_at = utcnow()
    check.updated_by = actor
    session.flush()

    record_event(
        session,
        AuditTag.IDENTITY_EVIDENCE_ADD,
        actor,
        ticket,
        {"step": step.step_id, "attachment": attachment.id},
    )
    return check


def delete_evidence_file(session: Session, step: WorkflowStep, actor: str) -> IdentityCheck:
    """Remove the stored file of the identity evidence, keeping only the audit record of it.

    The attachment row stays with its name and size, but its reference to the file goes, and
    the file itself is deleted when no other attachment shares it (files are stored by hash).

    NOTE: the raw message the file arrived in is kept byte for byte, so the document stays in
    the stored original mail until that is purged by the retention policy.

    :raises WorkflowStateError: no evidence is named, or its file is gone already.
    """
    ticket = step.instance.ticket
    check = identity_check_of(session, step)
    attachment = check.evidence if check is not None else None
    if check is None or attachment is None:
        raise WorkflowStateError(f"step {step.step_id} has no evidence file to delete")
    sha256 = attachment.sha256
    if sha256 is None:
        raise WorkflowStateError(f"the evidence file of step {step.step_id} is deleted already")

    attachment.blob = None
    attachment.sha256 = None
    session.flush()
    shared = session.scalar(
        select(func.count()).select_from(Attachment).where(Attachment.sha256 == sha256)
    )
    blob = session.get(Blob, sha256)
    blob_deleted = not shared and blob is not None
    if blob_deleted:
        session.delete(blob)
    check.evidence_deleted_at = utcnow()
    session.flush()

    record_event(
        session,
        AuditTag.EVIDENCE_DELETE,
        actor,
        ticket,
        {
            "step": step.step_id,
            "attachment": attachment.id,
            "sha256": sha256,
            "file_deleted": blob_deleted,
        },
    )
    logger.info(
        "ticket %s evidence file of attachment %s removed by %s",
        ticket.reference,
        attachment.id,
        actor,
    )
    return check


def search_records_of(session: Session, step: WorkflowStep) -> list[SystemSearch]:
    """List the systems recorded as searched on a step, oldest first."""
    return list(
        session.scalars(
            select(SystemSearch).where(SystemSearch.step_pk == step.id).order_by(SystemSearch.id)
        )
    )


def add_search_record(
    session: Session, step: WorkflowStep, record: SearchRecordInput, actor: str
) -> SystemSearch:
    """Record one system searched on the search step, with its result, and audit it.

    :raises WorkflowStateError: wrong step, closed ticket, missing system name, unknown result,
        note too long, or an attachment of another ticket.
    """
    ticket = _open_ticket_of(step)
    if step.step_id != SEARCH_STEP_ID:
        raise WorkflowStateError(
            f"step {step.step_id} has no search records; use step {SEARCH_STEP_ID}"
        )
    system = record.system.strip()
    if not system or len(system) > MAX_SYSTEM_CHARS:
        raise WorkflowStateError(f"a system name needs 1 to {MAX_SYSTEM_CHARS} characters")
    result = parse_choice(SearchResult, record.result, "search result", WorkflowStateError)
    note = record.note.strip()
    if len(note) > MAX_SEARCH_NOTE_CHARS:
        raise WorkflowStateError(f"a search note has at most {MAX_SEARCH_NOTE_CHARS} characters")
    attachment = None
    if record.attachment_id is not None and record.upload is not None:
        raise WorkflowStateError("choose a file of the ticket or upload one, not both")
    if record.attachment_id is not None:
        attachment = _attachment_of(session, ticket, record.attachment_id)
    if record.upload is not None:
        attachment = store_evidence_file(session, ticket, record.upload, actor)

    row = SystemSearch(
        step_pk=step.id,
        system=system,
        result=result.value,
        note=note,
        evidence=attachment,
        recorded_by=actor,
        recorded_at=utcnow(),
    )
    session.add(row)
    session.flush()

    record_event(
        session,
        AuditTag.SEARCH_RECORD_ADD,
        actor,
        ticket,
        {
            "step": step.step_id,
            "record": row.id,
            "system": system,
            "result": result.value,
            "attachment": attachment.id if attachment is not None else None,
            "attachment_sha256": attachment.sha256 if attachment is not None else None,
            "uploaded": record.upload is not None,
            "note_sha256": _sha256(note) if note else None,
        },
    )
    logger.info("ticket %s search record %s added by %s", ticket.reference, row.id, actor)
    return row


def check_step_records(session: Session, step: WorkflowStep) -> None:
    """Refuse to check the search step without records, or the identity step unverified.

    :raises WorkflowStateError: naming what is missing.
    """
    if step.step_id == SEARCH_STEP_ID and not search_records_of(session, step):
        raise WorkflowStateError(
            f"step {step.step_id} needs at least one system recorded as searched; record each "
            "system with its result first"
        )
    if step.step_id == IDENTITY_STEP_ID:
        check = identity_check_of(session, step)
        status = check.status if check is not None else None
        if status not in (IdentityStatus.VERIFIED, IdentityStatus.NOT_NEEDED):
            raise WorkflowStateError(
                f"step {step.step_id} needs the identity status verified or not needed, "
                f"not {status or 'unset'}; skip it with a reason if verification failed"
            )
