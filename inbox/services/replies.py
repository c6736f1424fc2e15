"""Replies to requesters: render a mail template, store the mail on the ticket, deliver it.

A mail is stored as an outgoing Message with a queued MailDelivery in the caller's transaction,
and delivered only after that commit: inline, or through RQ with retries when REDIS_URL is set.
The exact bytes sent are kept as a RawMessage, so the ticket shows what the requester received.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from flask import current_app
from sqlalchemy import and_, func, inspect, or_, select, update
from sqlalchemy.orm import Session, joinedload, selectinload

from inbox import attention
from inbox.attention import Attention
from inbox.audit import SYSTEM_ACTOR, record_event
from inbox.enums import RequestType
from inbox.errors import ConfigError
from inbox.ids import begin_write_transaction, client_ids, ensure_id
from inbox.mail.attachments import attachment_bytes
from inbox.mail.outgoing import (
    DeliveryError,
    MailFile,
    OutgoingMail,
    SmtpSettings,
    build_message,
    conversation_ids,
    deliver,
    domain_of,
    make_message_id,
    safe_attachment_name,
    safe_content_type,
    subject_with_reference,
)
from inbox.mail.store import blob_for
from inbox.models.audit import AuditTag
from inbox.models.message import Attachment, Message, RawMessage
from inbox.models.ticket import Ticket
from inbox.models.types import utcnow
from inbox.models.workflow import DeliveryStatus, MailDelivery, WorkflowInstance
from inbox.services.tickets import clear_attention, flag_ticket, sla_policy
from inbox.services.workflows import WorkflowStateError, complete_reply_step, instance_of
from inbox.sla import compute_due_at, compute_extended_due_at
from inbox.txcache import transaction_cache
from inbox.workflow import REPLY_TEMPLATES

logger = logging.getLogger(__name__)

OUTGOING_QUEUE = "outgoing"
"""RQ queue of mail deliveries."""

DELIVERY_RETRY_INTERVALS_SECONDS = (60, 300, 1800, 7200)
"""Waits between RQ delivery retries; the mail is marked failed after the last one."""

MAX_INLINE_ATTEMPTS = len(DELIVERY_RETRY_INTERVALS_SECONDS) + 1
"""Delivery attempts before a mail is marked failed, inline or through RQ."""

UNSENT_AFTER = timedelta(minutes=5)
"""Age of a composed mail never tried, after which a poll counts its sender as stopped."""

IN_FLIGHT_LEASE = timedelta(minutes=10)
"""Age of an unfinished attempt after which its process counts as stopped and others may retry.

Longer than a send can take: each SMTP step times out after INBOX_SMTP_TIMEOUT_SECONDS (30 s).
"""

UNENQUEUED_AFTER = timedelta(minutes=15)
"""Age of an uncomposed acknowledgement after which a poll with RQ enqueues it again.

A poll killed between committing a ticket and enqueuing its acknowledgement leaves it so. A
backlog on the RQ queue longer than this enqueues one twice: the job that claims it first sends
it, and the other finds it claimed or sent (``claim_deliveries``).
"""

AUTOMATIC_MAIL_WINDOW = timedelta(hours=24)
"""At most one automatic mail per recipient within this window, so two robots never loop."""

_AUTOMATIC_RECIPIENTS = "replies.automatic_recipients"
"""Key in the transaction cache of the addresses automatic mail was queued for."""

_RECENT_CHECKED = "replies.recent_checked"
"""Key in the transaction cache of addresses whose rate limit was looked up, with the result."""

COMPOSE_BATCH = 100
"""Queued mails that inline delivery composes in one transaction; it bounds a backlog's memory."""

MAIL_LANGUAGES = ("nl", "en")
"""Languages of the mail templates."""

MAX_SUBJECT_CHARS = 250
MAX_BODY_CHARS = 100_000


class AttachmentTooLargeError(WorkflowStateError):
    """Raised when a file to attach or upload is larger than INBOX_MAX_ATTACHMENT_BYTES."""


@dataclass(frozen=True)
class Draft:
    """A rendered mail template, before an agent edits it."""

    template: str
    language: str
    subject: str
    body: str


def mail_language(ticket: Ticket) -> str:
    """Return the requester's mail language: Dutch for a Dutch ticket, English otherwise."""
    return "nl" if ticket.language == "nl" else "en"


def sender_address(config: Any) -> str:
    """Return the From address of outgoing mail.

    :raises ConfigError: neither INBOX_MAIL_FROM nor an address-shaped INBOX_IMAP_USER is set.
    """
    sender = str(config.get("MAIL_FROM") or "")
    if not sender and "@" in str(config.get("IMAP_USER") or ""):
        sender = str(config["IMAP_USER"])
    if not sender:
        raise ConfigError("INBOX_MAIL_FROM is not set: set it to the mailbox's address")
    return sender


def _format_day(value: datetime | None, language: str, timezone: str) -> str:
    if value is None:
        return ""
    # British English writes "2 December 2026"; the en default would give "December 2, 2026".
    locale = "en_GB" if language == "en" else language
    return format_date(value.astimezone(ZoneInfo(timezone)).date(), "long", locale=locale)


def _outcome(session: Session, ticket: Ticket) -> str | None:
    instance = instance_of(session, ticket)
    if instance is None:
        return None
    if instance.outcome:
        return instance.outcome
    decided = [s.decision for s in instance.steps if s.step_id == "decide_outcome" and s.decision]
    return decided[0] if decided else None


def template_context(
    session: Session, ticket: Ticket, language: str, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """Collect what a mail template may use: ticket facts, dates, settings, extra fields."""
    config = current_app.config
    timezone = config["ORG_TIMEZONE"]
    extended = None
    if RequestType(ticket.type).is_data_subject_request:
        extended = compute_extended_due_at(ticket.received_at, sla_policy(config))
    return {
        "reference": ticket.reference,
        "type": ticket.type,
        "requester_name": ticket.requester_name,
        "received_date": _format_day(ticket.received_at, language, timezone),
        "due_date": _format_day(ticket.due_at, language, timezone),
        "extended_due_date": _format_day(extended, language, timezone),
        "outcome": _outcome(session, ticket),
        "org_name": config["ORG_NAME"],
        "dpo_contact": config.get("DPO_CONTACT", ""),
        "signature": config.get("ORG_SIGNATURE", ""),
        **(extra or {}),
    }


def render_draft(
    session: Session, ticket: Ticket, template: str, extra: dict[str, str] | None = None
) -> Draft:
    """Render a mail template in the requester's language; the first line is the subject.

    :raises WorkflowStateError: the template name is unknown.
    """
    if template not in REPLY_TEMPLATES:
        allowed = ", ".join(sorted(REPLY_TEMPLATES))
        raise WorkflowStateError(f"unknown mail template {template!r}; allowed: {allowed}")
    language = mail_language(ticket)
    jinja = current_app.jinja_env.get_template(f"mail/{template}.{language}.txt")
    text = jinja.render(**template_context(session, ticket, language, extra)).strip()
    subject, _newline, body = text.partition("\n")
    # Conditional blocks leave runs of empty lines behind; a letter needs at most one.
    body = re.sub(r"\n{3,}", "\n\n", body.strip()) + "\n"
    return Draft(template, language, subject.strip(), body)


def check_extension_allowed(ticket: Ticket, now: datetime) -> None:
    """Allow an extension notice only before the original one-month deadline (Art. 12(3)).

    :raises WorkflowStateError: the type has no extendable deadline, or it has passed.
    """
    original = compute_due_at(ticket.type, ticket.received_at, sla_policy(current_app.config))
    if original is None or not RequestType(ticket.type).is_data_subject_request:
        raise WorkflowStateError(f"ticket {ticket.reference} has no deadline to extend")
    if now >= original:
        raise WorkflowStateError(
            f"the original deadline of {ticket.reference} passed on {original.isoformat()}; "
            "an extension must be announced before it"
        )


@dataclass(frozen=True)
class Reply:
    """A mail to queue on a ticket."""

    subject: str
    body: str
    template: str = ""
    is_automatic: bool = False
    files: tuple[MailFile, ...] = ()
    """New files uploaded with the reply."""
    ticket_attachment_ids: tuple[int, ...] = ()
    """Files already on the ticket to send along, by Attachment id."""


def check_file_size(upload: MailFile, max_bytes: int) -> None:
    """Reject a file over the attachment limit, naming the file and the limit.

    :raises AttachmentTooLargeError: the file is larger than ``max_bytes``.
    """
    if len(upload.data) > max_bytes:
        raise AttachmentTooLargeError(
            f"file {upload.filename!r} has {len(upload.data)} bytes; the limit is {max_bytes} "
            "bytes (INBOX_MAX_ATTACHMENT_BYTES): send a smaller file"
        )


def store_file(session: Session, message: Message, upload: MailFile, max_bytes: int) -> Attachment:
    """Store a file as an attachment of ``message``, its bytes once per SHA-256.

    NOTE: two transactions that store the same new file at the same moment collide on the
    blob's primary key, so the second one fails. A retry then finds the blob.

    :raises AttachmentTooLargeError: the file is larger than ``max_bytes``.
    """
    check_file_size(upload, max_bytes)
    sha256 = hashlib.sha256(upload.data).hexdigest()
    blob = blob_for(session, sha256, len(upload.data), upload.data)
    filename = safe_attachment_name(upload.filename)
    attachment = Attachment(
        message=message,
        filename=filename,
        content_type=safe_content_type(upload.content_type, filename)[:255],
        size=len(upload.data),
        sha256=sha256,
    )
    attachment.blob = blob
    session.add(attachment)
    ensure_id(session, attachment)
    return attachment


def _ticket_files(
    session: Session, ticket: Ticket, attachment_ids: tuple[int, ...]
) -> list[MailFile]:
    """Load files already on the ticket to send along with a reply.

    :raises WorkflowStateError: an id is not an attachment of this ticket, or its file is gone.
    """
    files = []
    for attachment_id in dict.fromkeys(attachment_ids):
        attachment = session.get(Attachment, attachment_id)
        if attachment is None or attachment.message.ticket_id != ticket.id:
            raise WorkflowStateError(
                f"attachment {attachment_id} is not part of ticket {ticket.reference}"
            )
        if attachment.blob is None:
            raise WorkflowStateError(
                f"the file of attachment {attachment_id} is not stored (over the size limit or "
                "deleted after identity verification), so it cannot be sent"
            )
        data = attachment_bytes(attachment)
        if data is None:
            raise WorkflowStateError(
                f"the file of attachment {attachment_id} could not be read from its original "
                "mail, so it cannot be sent; download the original mail and attach the file"
            )
        files.append(MailFile(attachment.filename, attachment.content_type, data))
    return files


def _mail_files(session: Session, ticket: Ticket, reply: Reply) -> list[MailFile]:
    """Collect the files of a reply with safe names, checking each against the size limits.

    :raises AttachmentTooLargeError: a file, or all files together, are over the limits.
    """
    config = current_app.config
    max_bytes = int(config["MAX_ATTACHMENT_BYTES"])
    files = []
    for upload in reply.files:
        check_file_size(upload, max_bytes)
        name = safe_attachment_name(upload.filename)
        files.append(MailFile(name, safe_content_type(upload.content_type, name), upload.data))
    files.extend(_ticket_files(session, ticket, reply.ticket_attachment_ids))
    total = sum(len(item.data) for item in files)
    max_total = int(config["MAX_MESSAGE_BYTES"])
    if total > max_total:
        raise AttachmentTooLargeError(
            f"the files of this reply have {total} bytes together; the limit is {max_total} "
            "bytes (INBOX_MAX_MESSAGE_BYTES): send fewer or smaller files"
        )
    return files


def queue_reply(session: Session, ticket: Ticket, reply: Reply, actor: str) -> Message:
    """Store a reply as an outgoing message with a queued delivery; the caller commits.

    :raises WorkflowStateError: empty or too long text, no requester address, an extension
        notice after the original deadline, or a file that is too large or not the ticket's.
    :raises ConfigError: no sender address is configured.
    """
    return queue_delivery(session, ticket, reply, actor).message


def queue_delivery(session: Session, ticket: Ticket, reply: Reply, actor: str) -> MailDelivery:
    """Store a reply like ``queue_reply`` and return its queued delivery; the caller commits.

    :raises WorkflowStateError: empty or too long text, no requester address, an extension
        notice after the original deadline, or a file that is too large or not the ticket's.
    :raises ConfigError: no sender address is configured.
    """
    delivery = MailDelivery(
        ticket_id=ticket.id,
        recipient=ticket.requester_email.lower(),
        template=reply.template,
        is_automatic=reply.is_automatic,
        status=DeliveryStatus.QUEUED,
        created_at=utcnow(),
    )
    compose_into(session, delivery, ticket, reply, actor)
    if delivery.is_automatic:
        automatic_recipients(session).add(delivery.recipient)
    return delivery


def compose_into(
    session: Session, delivery: MailDelivery, ticket: Ticket, reply: Reply, actor: str
) -> Message:
    """Build the mail of ``delivery``, store it as the ticket's outgoing message, and audit it.

    A reply step that names the mail's template is marked done.

    :raises WorkflowStateError: see ``queue_delivery``.
    :raises ConfigError: no sender address is configured.
    """
    subject, body = reply.subject.strip(), reply.body.strip()
    if not subject or len(subject) > MAX_SUBJECT_CHARS or not body or len(body) > MAX_BODY_CHARS:
        raise WorkflowStateError("a reply needs a subject and a text within the length limits")
    if not ticket.requester_email:
        raise WorkflowStateError(f"ticket {ticket.reference} has no requester address")
    now = utcnow()
    if reply.template == "extension":
        check_extension_allowed(ticket, now)
        from inbox.services.deadlines import require_extension  # local: it imports this module

        require_extension(session, ticket)
    config = current_app.config
    sender = sender_address(config)
    files = _mail_files(session, ticket, reply)

    earlier = sorted(ticket.messages, key=lambda m: (m.received_at, m.id))
    incoming = [m for m in earlier if m.direction == "in" and m.message_id]
    mail = OutgoingMail(
        reference=ticket.reference,
        sender_name=str(config["ORG_NAME"]),
        sender=sender,
        recipient_name=ticket.requester_name,
        recipient=ticket.requester_email,
        subject=subject,
        text=body + "\n",
        language=mail_language(ticket),
        in_reply_to=incoming[-1].message_id if incoming else None,
        references=conversation_ids([m.message_id for m in earlier]),
        is_automatic=reply.is_automatic,
        attachments=tuple(files),
    )
    message_id = make_message_id(ticket.reference, config["SECRET_KEY"], domain_of(sender))
    mime = build_message(mail, message_id, now)
    raw = bytes(mime)

    message = _store_outgoing(session, ticket, mail, message_id, raw, now)
    stored = [store_file(session, message, item, len(item.data)) for item in files]
    # Added only now, so a mail that fails a check above leaves nothing for the caller's commit.
    session.add(delivery)
    delivery.message = message
    delivery.recipient = mail.recipient.lower()
    ensure_id(session, message)

    record_event(
        session,
        AuditTag.MAIL_QUEUE,
        actor,
        ticket,
        {
            "message": message.id,
            "delivery": ensure_id(session, delivery),
            "template": reply.template,
            "automatic": reply.is_automatic,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "attachments": [
                {"attachment": item.id, "sha256": item.sha256, "size": item.size} for item in stored
            ],
        },
    )
    if reply.template:
        complete_reply_step(session, ticket, reply.template, actor)
    logger.info(
        "mail %s composed for ticket %s by %s with %s attachments",
        delivery.id,
        ticket.reference,
        actor,
        len(stored),
    )
    return message


def _store_outgoing(
    session: Session, ticket: Ticket, mail: OutgoingMail, message_id: str, raw: bytes, now: datetime
) -> Message:
    raw_message = RawMessage(
        sha256=hashlib.sha256(raw).hexdigest(),
        message_id=message_id,
        size=len(raw),
        raw=raw,
        internaldate=now,
        source="outgoing",
        # Marked processed, so the ingest pipeline never reads our own mail as a request.
        processed_at=now,
    )
    message = Message(
        ticket=ticket,
        raw_message=raw_message,
        direction="out",
        message_id=message_id,
        in_reply_to=[mail.in_reply_to] if mail.in_reply_to else [],
        references=list(mail.references),
        subject=subject_with_reference(mail.subject, mail.reference),
        from_name=mail.sender_name[:255],
        from_addr=mail.sender,
        to_addrs=[mail.recipient],
        date_header=now,
        received_at=now,
        text=mail.text,
        is_automatic=mail.is_automatic,
    )
    # The caller's flush writes both rows.
    session.add(message)
    return message


def claim_deliveries(session: Session, delivery_ids: list[int], now: datetime) -> list[int]:
    """Mark queued mail as being sent by this process and commit; return the ids it claimed.

    The UPDATE decides between processes that try the same mail at once: only one changes a
    row, and the claim time ``now`` identifies this process's rows. A claim older than
    IN_FLIGHT_LEASE belongs to a process that stopped, and is taken over.
    """
    # A new transaction, because SQLite refuses a write in one whose snapshot is out of date.
    session.commit()
    begin_write_transaction(session)
    session.execute(
        update(MailDelivery)
        .where(
            MailDelivery.id.in_(delivery_ids),
            or_(
                MailDelivery.status == DeliveryStatus.QUEUED,
                and_(
                    MailDelivery.status == DeliveryStatus.SENDING,
                    MailDelivery.attempted_at < now - IN_FLIGHT_LEASE,
                ),
            ),
        )
        .values(status=DeliveryStatus.SENDING, attempted_at=now)
        .execution_options(synchronize_session=False)
    )
    claimed = set(
        session.scalars(
            select(MailDelivery.id).where(
                MailDelivery.id.in_(delivery_ids),
                MailDelivery.status == DeliveryStatus.SENDING,
                MailDelivery.attempted_at == now,
            )
        )
    )
    session.commit()
    return [delivery_id for delivery_id in delivery_ids if delivery_id in claimed]


def deliver_queued(session: Session, delivery_id: int, *, claimed: bool = False) -> bool:
    """Deliver one queued mail and commit its new state; return whether it was delivered.

    Safe to run twice, at once too: a mail that is no longer queued, or that another process is
    sending, is left alone.

    :param claimed: this process has claimed the mail already (``claim_deliveries``).
    :raises DeliveryError: delivery failed; the attempt is counted and committed first.
    """
    # One query for the delivery, its message, raw bytes and ticket.
    delivery = session.get(
        MailDelivery,
        delivery_id,
        options=[
            joinedload(MailDelivery.message)
            .joinedload(Message.raw_message)
            .joinedload(RawMessage.content),
            joinedload(MailDelivery.message).joinedload(Message.ticket),
        ],
    )
    if delivery is None or delivery.status not in (DeliveryStatus.QUEUED, DeliveryStatus.SENDING):
        return False
    if delivery.message is None and not compose_queued(session, delivery):
        return False
    message = delivery.message
    assert message is not None
    raw_message = message.raw_message
    assert raw_message is not None
    # Read before the claim's commit expires the loaded rows.
    raw, message_id, reference = raw_message.raw, message.message_id, message.ticket.reference
    if not claimed and not claim_deliveries(session, [delivery_id], utcnow()):
        return False
    ticket = message.ticket
    config = current_app.config
    outbox = Path(current_app.instance_path) / "outbox"

    try:
        target = deliver(raw, SmtpSettings.from_config(config), outbox, message_id, reference)
    except DeliveryError as exc:
        delivery.attempts += 1
        delivery.status = DeliveryStatus.QUEUED
        delivery.last_error = str(exc)[:2000]
        record_event(
            session,
            AuditTag.MAIL_FAIL,
            SYSTEM_ACTOR,
            ticket,
            {"delivery": delivery.id, "attempt": delivery.attempts, "error": delivery.last_error},
        )
        if delivery.attempts >= MAX_INLINE_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
            # No poll or job tries it again, so the ticket shows it where the team looks.
            given_up = {
                "recipient": delivery.recipient,
                "attempts": delivery.attempts,
                "error": delivery.last_error[:300],
            }
            flag_ticket(session, ticket, Attention(attention.DELIVERY_GIVEN_UP, given_up))
        session.commit()
        raise

    delivery.attempts += 1
    delivery.status = DeliveryStatus.SENT
    delivery.sent_at = utcnow()
    record_event(
        session,
        AuditTag.MAIL_SEND,
        SYSTEM_ACTOR,
        ticket,
        {"delivery": delivery.id, "message": message.id, "to": target.rpartition("/")[2]},
    )
    session.commit()
    return True


def compose_queued(session: Session, delivery: MailDelivery) -> bool:
    """Compose a queued mail that has no message yet and commit it; return whether it worked.

    The mail is committed before it is sent, so a crash in between sends the same bytes later.
    A mail that cannot be composed (a broken template, a ticket without an address) is marked
    failed and audited; it is not retried.
    """
    ticket = session.get(Ticket, delivery.ticket_id)
    assert ticket is not None
    begin_write_transaction(session)
    try:
        with session.begin_nested():
            compose_acknowledgement(session, delivery, ticket)
    except Exception as exc:  # noqa: BLE001 - the ticket stays; only this mail is given up
        logger.error("mail %s could not be composed", delivery.id, exc_info=True)
        reason = f"acknowledgement failed: {type(exc).__name__}: {exc}"[:2000]
        delivery.status = DeliveryStatus.FAILED
        delivery.last_error = reason
        record_event(
            session,
            AuditTag.MAIL_SUPPRESS,
            SYSTEM_ACTOR,
            ticket,
            {"reason": reason, "delivery": delivery.id},
        )
        session.commit()
        return False
    session.commit()
    return True


def uncomposed_acknowledgements(
    session: Session, queued_before: datetime | None = None
) -> list[int]:
    """Return the ids of queued acknowledgements that were never composed, oldest first.

    A poll that was killed after committing tickets leaves them so; a later poll delivers them.

    :param queued_before: only those queued before this moment.
    """
    query = select(MailDelivery.id).where(
        MailDelivery.status == DeliveryStatus.QUEUED,
        MailDelivery.message_pk.is_(None),
    )
    if queued_before is not None:
        query = query.where(MailDelivery.created_at < queued_before)
    return list(session.scalars(query.order_by(MailDelivery.id)))


def retry_wait(attempts: int) -> timedelta:
    """Return the wait for the next attempt at a composed mail that failed ``attempts`` times.

    The wait after a failed attempt follows DELIVERY_RETRY_INTERVALS_SECONDS, the intervals RQ
    uses, counted from the attempt's start. A mail never tried waits UNSENT_AFTER from its
    queueing, which covers a process that stopped between composing and sending.
    """
    if attempts == 0:
        return UNSENT_AFTER
    last = min(attempts, len(DELIVERY_RETRY_INTERVALS_SECONDS)) - 1
    return timedelta(seconds=DELIVERY_RETRY_INTERVALS_SECONDS[last])


def composed_mail_due(session: Session, now: datetime) -> list[int]:
    """Return the ids of composed mail whose next attempt is due, oldest first.

    Mail sent without RQ gets one attempt when it is queued. A failed attempt, or a process that
    stopped before or while sending, leaves it unsent, and a later poll tries it again when due.
    """
    rows = session.execute(
        select(
            MailDelivery.id,
            MailDelivery.status,
            MailDelivery.attempts,
            MailDelivery.created_at,
            MailDelivery.attempted_at,
        )
        .where(
            MailDelivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
            MailDelivery.message_pk.is_not(None),
        )
        .order_by(MailDelivery.id)
    ).all()
    due = []
    for delivery_id, status, attempts, created_at, attempted_at in rows:
        wait = IN_FLIGHT_LEASE if status == DeliveryStatus.SENDING else retry_wait(attempts)
        if (attempted_at or created_at) + wait <= now:
            due.append(delivery_id)
    return due


def compose_together(session: Session, delivery_ids: list[int]) -> None:
    """Compose the queued mails among ``delivery_ids`` that have no message, in one commit.

    Tickets, their mail and their checklists are read for all of them at once. After any fault
    nothing of the batch is kept, and ``deliver_queued`` composes each mail on its own, which
    marks the one at fault failed.
    """
    begin_write_transaction(session)
    deliveries = session.scalars(
        select(MailDelivery).where(
            MailDelivery.id.in_(delivery_ids),
            MailDelivery.message_pk.is_(None),
            MailDelivery.status == DeliveryStatus.QUEUED,
        )
    ).all()
    if len(deliveries) < 2:
        return
    ticket_ids = [delivery.ticket_id for delivery in deliveries]
    tickets = {
        ticket.id: ticket
        for ticket in session.scalars(
            select(Ticket).where(Ticket.id.in_(ticket_ids)).options(selectinload(Ticket.messages))
        )
    }
    try:
        with session.begin_nested(), client_ids(session):
            cache = transaction_cache(session)
            for instance in session.scalars(
                select(WorkflowInstance)
                .where(WorkflowInstance.ticket_id.in_(ticket_ids))
                .options(selectinload(WorkflowInstance.steps))
            ):
                cache[("workflow_instance", instance.ticket_id)] = instance
            for delivery in deliveries:
                compose_acknowledgement(session, delivery, tickets[delivery.ticket_id])
            session.flush()
    except Exception as exc:  # noqa: BLE001 - each mail is then composed on its own
        logger.info(
            "composing %s mails together failed (%s: %s), composing them one by one",
            len(deliveries),
            type(exc).__name__,
            exc,
        )
        session.rollback()
        return
    session.commit()


def dispatch(session: Session, delivery_ids: list[int]) -> None:
    """Deliver committed mail: enqueue it on RQ when REDIS_URL is set, else deliver it now.

    Inline delivery logs a failure and leaves the mail queued for ``send_queued_mail``.
    """
    url = current_app.config.get("REDIS_URL")
    if url:
        from redis import Redis
        from rq import Queue, Retry

        queue = Queue(OUTGOING_QUEUE, connection=Redis.from_url(url))
        retry = Retry(
            max=len(DELIVERY_RETRY_INTERVALS_SECONDS),
            interval=list(DELIVERY_RETRY_INTERVALS_SECONDS),
        )
        for delivery_id in delivery_ids:
            job = queue.enqueue(deliver_job, delivery_id, retry=retry)
            logger.info("mail %s enqueued as job %s", delivery_id, job.id)
        return
    for start in range(0, len(delivery_ids), COMPOSE_BATCH):
        batch = delivery_ids[start : start + COMPOSE_BATCH]
        compose_together(session, batch)
        for delivery_id in claim_deliveries(session, batch, utcnow()):
            try:
                deliver_queued(session, delivery_id, claimed=True)
            except DeliveryError as exc:
                # An expected failure with its reason in the message: no traceback.
                logger.error("delivery of mail %s failed: %s", delivery_id, exc)


def deliver_job(delivery_id: int) -> bool:
    """Deliver one mail as an RQ job; a raised DeliveryError makes RQ retry it."""
    from inbox.extensions import db
    from inbox.jobs import has_app, make_app

    if has_app():
        return deliver_queued(db.session, delivery_id)
    app = make_app()
    with app.app_context():
        try:
            return deliver_queued(db.session, delivery_id)
        finally:
            db.session.remove()


def send_queued_mail(session: Session) -> tuple[int, int]:
    """Try every queued mail once, oldest first; return the numbers delivered and failed."""
    # A mail another process is sending is skipped by deliver_queued unless that claim is stale.
    ids = session.scalars(
        select(MailDelivery.id)
        .where(MailDelivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]))
        .order_by(MailDelivery.id)
    ).all()
    sent = failed = 0
    for delivery_id in ids:
        try:
            sent += int(deliver_queued(session, delivery_id))
        except DeliveryError as exc:
            logger.error("delivery of mail %s failed: %s", delivery_id, exc)
            failed += 1
    return sent, failed


def resend_delivery(session: Session, ticket: Ticket, delivery_id: int, actor: str) -> MailDelivery:
    """Queue a given-up mail for a new round of attempts; the caller commits and dispatches it.

    The mail goes out as composed, with its Message-ID, so a reply to it still threads. The
    ticket's flag for failed mail is cleared unless another of its mails is still given up, and
    the audit event keeps the attempts and error of the round that failed.

    :raises WorkflowStateError: the mail is not this ticket's, or it was not given up.
    """
    delivery = session.get(MailDelivery, delivery_id)
    if delivery is None or delivery.ticket_id != ticket.id:
        raise WorkflowStateError(f"mail {delivery_id} is not part of ticket {ticket.reference}")
    if delivery.status != DeliveryStatus.FAILED:
        raise WorkflowStateError(
            f"mail {delivery_id} is {delivery.status}: only mail that was given up can be sent "
            "again"
        )
    event = {"delivery": delivery.id, "attempts": delivery.attempts, "error": delivery.last_error}
    delivery.status = DeliveryStatus.QUEUED
    delivery.attempts = 0
    delivery.attempted_at = None
    still_failed = session.scalar(
        select(func.count())
        .select_from(MailDelivery)
        .where(
            MailDelivery.ticket_id == ticket.id,
            MailDelivery.id != delivery.id,
            MailDelivery.status == DeliveryStatus.FAILED,
        )
    )
    if ticket.attention_code == attention.DELIVERY_GIVEN_UP and not still_failed:
        clear_attention(ticket)
        event["attention_cleared"] = True
    record_event(session, AuditTag.MAIL_RESEND, actor, ticket, event)
    logger.info("mail %s of ticket %s queued again by %s", delivery.id, ticket.reference, actor)
    return delivery


def send_reply(session: Session, ticket: Ticket, reply: Reply, actor: str) -> Message:
    """Queue a reply, commit, then deliver it; the ticket page calls this."""
    delivery = queue_delivery(session, ticket, reply, actor)
    session.commit()
    dispatch(session, [delivery.id])
    return delivery.message


def automatic_recipients(session: Session) -> set[str]:
    """Return the addresses that automatic mail was queued for in the current transaction.

    The rate limit checks them as well as the stored deliveries, so it finds mail queued earlier
    in the same batch without a flush.
    """
    recipients: set[str] = transaction_cache(session).setdefault(_AUTOMATIC_RECIPIENTS, set())
    return recipients


def recent_automatic_mail(session: Session, address: str, now: datetime) -> bool:
    """Return whether a stored delivery sent automatic mail to ``address`` within the window.

    Mail queued in the current transaction is in ``automatic_recipients``, so the query need
    not flush.
    """
    checked: dict[str, bool] = transaction_cache(session).get(_RECENT_CHECKED, {})
    if address in checked:
        return checked[address]
    return bool(recently_mailed(session, [address], now))


def recently_mailed(session: Session, addresses: list[str], now: datetime) -> set[str]:
    """Return those of ``addresses`` that stored automatic mail went to within the window."""
    with session.no_autoflush:
        return set(
            session.scalars(
                select(MailDelivery.recipient).where(
                    MailDelivery.recipient.in_(addresses),
                    MailDelivery.is_automatic.is_(True),
                    MailDelivery.created_at >= now - AUTOMATIC_MAIL_WINDOW,
                )
            )
        )


def check_recent_automatic_mail(session: Session, addresses: list[str]) -> None:
    """Look up the rate limit of many addresses in one query, for the rest of the transaction.

    The ingest calls this before a batch, so each new ticket's acknowledgement does not query
    the deliveries on its own. Mail queued later in the transaction is in
    ``automatic_recipients``.
    """
    wanted = sorted({address.lower() for address in addresses if address})
    if not wanted:
        return
    checked: dict[str, bool] = transaction_cache(session).setdefault(_RECENT_CHECKED, {})
    found = recently_mailed(session, wanted, utcnow())
    for address in wanted:
        checked[address] = address in found


def acknowledgement_block(session: Session, ticket: Ticket, now: datetime) -> str | None:
    """Return why a ticket gets no automatic acknowledgement, or None when it gets one."""
    from inbox.services.intake import ingest_settings

    config = current_app.config
    if not config.get("AUTO_ACKNOWLEDGE", True):
        return "automatic acknowledgement is off"
    if not RequestType(ticket.type).is_data_subject_request:
        return f"type {ticket.type} gets no acknowledgement"
    if ticket.needs_attention:
        return f"the ticket needs attention first: {ticket.attention_reason}"[:2000]
    first = next((m for m in ticket.messages if m.direction == "in"), None)
    if first is None or first.is_automatic:
        return "the request is automatic mail"
    address = ticket.requester_email.lower()
    if not address:
        return "the requester has no address"
    if address in ingest_settings(config).own_addresses:
        return "the requester is our own mailbox"
    if address in automatic_recipients(session) or recent_automatic_mail(session, address, now):
        return "an automatic mail went to this address within 24 hours"
    if ticket.due_at is not None and ticket.due_at <= now:
        # A backlog import would otherwise promise a reply by a date that has passed.
        return "the due date has passed"
    return None


def queue_acknowledgement(session: Session, ticket: Ticket) -> MailDelivery | None:
    """Queue the acknowledgement of a new request ticket in the caller's transaction.

    The ingest calls this in the transaction that opens the ticket, so the ticket and the
    promise of its acknowledgement are committed together (a transactional outbox). The mail
    itself is rendered and stored when it is delivered (``deliver_queued``), which keeps the
    ingest of a large backlog fast. Returns None when no mail is due, and audits why: automatic
    mail, our own address, a recent automatic mail to the same address, or no sender address
    configured. Safe to run twice. The caller commits.
    """
    # A ticket that is not written yet has no stored mail, and the query would make the session
    # write it. Mail queued for it in this transaction is caught by the rate limit below.
    if not inspect(ticket).pending:
        done = session.scalars(
            select(MailDelivery).where(
                MailDelivery.ticket_id == ticket.id, MailDelivery.template == "acknowledgement"
            )
        ).first()
        if done is not None:
            return None

    reason = acknowledgement_block(session, ticket, utcnow())
    if reason is None:
        try:
            sender_address(current_app.config)
        except ConfigError as exc:
            reason = str(exc)
            logger.warning("no acknowledgement for ticket %s: %s", ticket.reference, reason)
    else:
        logger.info("no acknowledgement for ticket %s: %s", ticket.reference, reason)
    if reason is not None:
        record_event(session, AuditTag.MAIL_SUPPRESS, SYSTEM_ACTOR, ticket, {"reason": reason})
        return None

    delivery = MailDelivery(
        ticket_id=ensure_id(session, ticket),
        recipient=ticket.requester_email.lower(),
        template="acknowledgement",
        is_automatic=True,
        status=DeliveryStatus.QUEUED,
        created_at=utcnow(),
    )
    session.add(delivery)
    automatic_recipients(session).add(delivery.recipient)
    record_event(
        session,
        AuditTag.MAIL_QUEUE,
        SYSTEM_ACTOR,
        ticket,
        {
            "delivery": ensure_id(session, delivery),
            "template": "acknowledgement",
            "automatic": True,
        },
    )
    return delivery


def compose_acknowledgement(session: Session, delivery: MailDelivery, ticket: Ticket) -> None:
    """Render and store a queued acknowledgement that has no mail yet; the caller commits.

    :raises WorkflowStateError: the ticket can no longer be acknowledged (no address left).
    :raises ConfigError: the sender address was removed since the mail was queued.
    """
    draft = render_draft(session, ticket, delivery.template)
    reply = Reply(draft.subject, draft.body, delivery.template, is_automatic=True)
    compose_into(session, delivery, ticket, reply, SYSTEM_ACTOR)
