"""Outgoing mail: acknowledgement and replies through a real SMTP server, threaded and localised."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from inbox import attention
from inbox.attention import Attention
from inbox.audit import verify_chain
from inbox.errors import ConfigError
from inbox.extensions import db
from inbox.mail.filters import LOOP_HEADER
from inbox.mail.ingest import process_batch
from inbox.mail.outgoing import (
    DeliveryError,
    MailFile,
    SmtpSettings,
    make_message_id,
    safe_attachment_name,
    verify_message_id,
)
from inbox.mail.store import store_raw
from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.message import Attachment, Blob, Message
from inbox.models.ticket import Ticket
from inbox.models.user import Role
from inbox.models.workflow import DeliveryStatus, MailDelivery, StepStatus, WorkflowStep
from inbox.services.intake import ingest_settings, poll_mailboxes
from inbox.services.replies import (
    MAX_INLINE_ATTEMPTS,
    AttachmentTooLargeError,
    Reply,
    deliver_queued,
    dispatch,
    queue_delivery,
    render_draft,
    retry_wait,
    send_reply,
)
from inbox.services.tickets import flag_ticket
from inbox.services.users import create_user
from inbox.services.workflows import WorkflowStateError, check_step, instance_of
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, AuthActions, imap_settings
from tests.factories import block_outbox, incoming, make_mail
from tests.servers import Dovecot, SmtpSink

MAILBOX = "privacy@example.org"
DUTCH_BODY = "Ik wil graag weten welke persoonsgegevens u van mij verwerkt (art. 15 AVG)."
ENGLISH_BODY = "Under Article 15 GDPR I request access to all personal data you hold about me."


@pytest.fixture
def mail_app(make_app: Any, smtp_sink: SmtpSink) -> Iterator[Flask]:
    """The app sending through the SMTP sink, with an app context pushed."""
    application = make_app(
        SMTP_HOST=smtp_sink.host,
        SMTP_PORT=smtp_sink.port,
        SMTP_SECURITY="none",
        SMTP_TIMEOUT_SECONDS=5.0,
        MAIL_FROM=MAILBOX,
        ORG_NAME="Voorbeeld BV",
        DPO_CONTACT="fg@example.org",
    )
    with application.app_context():
        yield application
        db.session.remove()


def ingest(app: Flask, raw: bytes, received_at: datetime | None = None) -> Ticket:
    """Store and process one mail as the poller does, which delivers its acknowledgement."""
    when = received_at or datetime.now(UTC)
    stored = store_raw(db.session, raw, when, None, "test")
    db.session.commit()
    [result] = process_batch(db.session, [stored.raw_message.id], ingest_settings(app.config))
    return result.ticket


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_acknowledgement_reaches_smtp_threaded(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    ticket = ingest(mail_app, make_mail(message_id="req-1@example.net", body=DUTCH_BODY))

    assert len(smtp_sink.messages) == 1
    sent = smtp_sink.messages[0]
    mail = parsed(sent.raw)
    assert sent.rcpt_tos == ("jan@example.net",)
    assert f"[{ticket.reference}]" in mail["Subject"]
    assert mail["In-Reply-To"] == "<req-1@example.net>"
    assert mail["References"] == "<req-1@example.net>"
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["X-Auto-Response-Suppress"] == "All"
    assert mail[LOOP_HEADER] == ticket.reference
    message_id = mail["Message-ID"].strip("<>")
    assert message_id.endswith("@example.org")
    assert verify_message_id(message_id, "test-secret") == ticket.reference


def test_acknowledgement_in_dutch_with_due_date(
    mail_app: Flask, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
    monkeypatch.setattr("inbox.services.replies.utcnow", lambda: received + timedelta(minutes=1))
    ingest(mail_app, make_mail(body=DUTCH_BODY), received)

    mail = parsed(smtp_sink.messages[0].raw)
    body = mail.get_content()
    assert mail["Content-Language"] == "nl"
    assert "inzageverzoek" in mail["Subject"]
    assert "2 maart 2026" in body
    assert "fg@example.org" in body


def test_acknowledgement_in_english(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    ingest(mail_app, make_mail(subject="Subject access request", body=ENGLISH_BODY))

    mail = parsed(smtp_sink.messages[0].raw)
    assert mail["Content-Language"] == "en"
    assert "We received your access request" in mail.get_content()


def test_acknowledgement_stored_and_audited(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    ticket = ingest(mail_app, make_mail(body=DUTCH_BODY))

    out = db.session.scalars(select(Message).where(Message.direction == "out")).one()
    tags = db.session.scalars(select(AuditEvent.tag).where(AuditEvent.ticket_id == ticket.id)).all()
    assert out.ticket_id == ticket.id
    assert out.is_automatic is True
    assert AuditTag.MAIL_QUEUE in tags
    assert AuditTag.MAIL_SEND in tags


def test_acknowledgement_checks_its_step(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    ticket = ingest(mail_app, make_mail(body=DUTCH_BODY))

    instance = instance_of(db.session, ticket)
    assert instance is not None
    step = next(s for s in instance.steps if s.step_id == "acknowledge")
    assert step.status == StepStatus.DONE


def test_acknowledgement_never_to_automatic_mail(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    raw = make_mail(body=DUTCH_BODY, headers={"Auto-Submitted": "auto-replied"})

    ingest(mail_app, raw)

    assert smtp_sink.messages == []


def test_acknowledgement_never_to_own_mailbox(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    ingest(mail_app, make_mail(sender=f"Privacy <{MAILBOX}>", body=DUTCH_BODY))

    assert smtp_sink.messages == []


def test_acknowledgement_once_per_sender_per_day(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    ingest(mail_app, make_mail(body=DUTCH_BODY))
    second = ingest(mail_app, make_mail(subject="Nog een inzageverzoek", body=DUTCH_BODY))

    assert len(smtp_sink.messages) == 1
    suppressed = db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.ticket_id == second.id, AuditEvent.tag == AuditTag.MAIL_SUPPRESS
        )
    ).one()
    assert "24 hours" in suppressed.data["reason"]


def test_acknowledgement_after_a_day_again(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    ingest(mail_app, make_mail(body=DUTCH_BODY))
    for delivery in db.session.scalars(select(MailDelivery)):
        delivery.created_at = datetime.now(UTC) - timedelta(hours=25)
    db.session.commit()

    ingest(mail_app, make_mail(subject="Nog een inzageverzoek", body=DUTCH_BODY))

    assert len(smtp_sink.messages) == 2


def test_acknowledgement_off_by_setting(make_app: Any, smtp_sink: SmtpSink) -> None:
    application = make_app(
        SMTP_HOST=smtp_sink.host,
        SMTP_PORT=smtp_sink.port,
        SMTP_SECURITY="none",
        MAIL_FROM=MAILBOX,
        AUTO_ACKNOWLEDGE=False,
    )
    with application.app_context():
        ingest(application, make_mail(body=DUTCH_BODY))
        db.session.remove()

    assert smtp_sink.messages == []


def test_completion_reaches_smtp_threaded(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    ticket = ingest(
        mail_app,
        make_mail(subject="Access request", body=ENGLISH_BODY, message_id="req-2@example.net"),
    )
    ack_id = parsed(smtp_sink.messages[0].raw)["Message-ID"].strip("<>")
    instance = instance_of(db.session, ticket)
    assert instance is not None
    decide = next(s for s in instance.steps if s.step_id == "decide_outcome")
    check_step(db.session, decide, "agent@example.org", "granted")
    db.session.commit()

    draft = render_draft(db.session, ticket, "completion")
    send_reply(
        db.session, ticket, Reply(draft.subject, draft.body, "completion"), "agent@example.org"
    )

    assert len(smtp_sink.messages) == 2
    mail = parsed(smtp_sink.messages[1].raw)
    assert mail["Auto-Submitted"] is None
    assert mail["In-Reply-To"] == "<req-2@example.net>"
    assert mail["References"] == f"<req-2@example.net> <{ack_id}>"
    assert f"[{ticket.reference}]" in mail["Subject"]
    assert "Attached you find a copy of the personal data" in mail.get_content()
    completion = next(s for s in instance.steps if s.step_id == "send_completion")
    assert completion.status == StepStatus.DONE


def test_reply_to_our_mail_threads_back(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    ticket = ingest(mail_app, make_mail(body=DUTCH_BODY))
    ack_id = parsed(smtp_sink.messages[0].raw)["Message-ID"]

    answer = make_mail(subject="Re: ontvangen", body="Dank u.", headers={"In-Reply-To": ack_id})
    joined = ingest(mail_app, answer)

    assert joined.id == ticket.id


def test_file_outbox_without_smtp_host(make_app: Any, tmp_path: Path) -> None:
    application = make_app(MAIL_FROM=MAILBOX)
    with application.app_context():
        reference = ingest(application, make_mail(body=DUTCH_BODY)).reference
        outbox = Path(application.instance_path) / "outbox"
        files = list(outbox.glob("*.eml"))
        db.session.remove()

    assert len(files) == 1
    assert reference in parsed(files[0].read_bytes())["Subject"]


def test_unwritable_outbox_keeps_mail_queued(make_app: Any) -> None:
    application = make_app(MAIL_FROM=MAILBOX)
    with application.app_context():
        block_outbox(application.instance_path)

        for index in range(2):
            ingest(application, make_mail(sender=f"p{index}@example.net", body=DUTCH_BODY))

        deliveries = db.session.scalars(select(MailDelivery).order_by(MailDelivery.id)).all()
        statuses = [(d.status, d.attempts) for d in deliveries]
        failures = db.session.scalars(
            select(AuditEvent).where(AuditEvent.tag == str(AuditTag.MAIL_FAIL))
        ).all()
        db.session.remove()

    assert statuses == [(DeliveryStatus.QUEUED, 1), (DeliveryStatus.QUEUED, 1)]
    assert len(failures) == 2
    assert "could not be written to the outbox" in failures[0].data["error"]


@pytest.mark.parametrize(("claimed_minutes_ago", "delivered"), [(1, False), (11, True)])
def test_mail_claimed_elsewhere_sent_once(
    make_app: Any, claimed_minutes_ago: int, delivered: bool
) -> None:
    application = make_app(MAIL_FROM=MAILBOX)
    with application.app_context():
        outbox = block_outbox(application.instance_path)
        ingest(application, make_mail(body=DUTCH_BODY))
        outbox.unlink()
        delivery = db.session.scalars(select(MailDelivery)).one()
        delivery_id = delivery.id
        # Another process claimed the mail; after IN_FLIGHT_LEASE it counts as stopped.
        delivery.status = DeliveryStatus.SENDING
        delivery.attempted_at = datetime.now(UTC) - timedelta(minutes=claimed_minutes_ago)
        db.session.commit()

        result = deliver_queued(db.session, delivery_id)
        status = db.session.get(MailDelivery, delivery_id).status
        db.session.remove()

    assert result is delivered
    assert status == (DeliveryStatus.SENT if delivered else DeliveryStatus.SENDING)


def test_mail_given_up_flags_its_ticket(make_app: Any) -> None:
    application = make_app(MAIL_FROM=MAILBOX)
    with application.app_context():
        block_outbox(application.instance_path)
        ingest(application, make_mail(body=DUTCH_BODY))
        delivery = db.session.scalars(select(MailDelivery)).one()

        for _attempt in range(MAX_INLINE_ATTEMPTS - 1):
            with pytest.raises(DeliveryError):
                deliver_queued(db.session, delivery.id)
        ticket = db.session.scalars(select(Ticket)).one()
        status, attempts = delivery.status, delivery.attempts
        flagged, reason = ticket.needs_attention, ticket.attention_reason
        db.session.remove()

    assert status == DeliveryStatus.FAILED
    assert attempts == MAX_INLINE_ATTEMPTS
    assert flagged
    assert "jan@example.net failed 5 times" in reason
    assert "could not be written to the outbox" in reason


def test_smtp_none_refused_off_loopback() -> None:
    config = {"SMTP_HOST": "mail.example.org", "SMTP_SECURITY": "none"}

    with pytest.raises(ConfigError, match="INBOX_SMTP_SECURITY=none"):
        SmtpSettings.from_config(config)


def test_message_id_rejects_forged_token() -> None:
    message_id = make_message_id("PRQ-2026-00001", "test-secret", "example.org")
    forged = message_id.replace("PRQ-2026-00001", "PRQ-2026-00002")

    assert verify_message_id(forged, "test-secret") is None


def test_extension_only_before_deadline(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    old = datetime.now(UTC) - timedelta(days=60)
    ticket = ingest(mail_app, make_mail(body=DUTCH_BODY), old)
    draft = render_draft(db.session, ticket, "extension")

    with pytest.raises(WorkflowStateError, match="must be announced before it"):
        send_reply(db.session, ticket, Reply(draft.subject, draft.body, "extension"), "agent")


def test_reply_page_sends_from_template(make_app: Any, smtp_sink: SmtpSink) -> None:
    application = make_app(
        SMTP_HOST=smtp_sink.host, SMTP_PORT=smtp_sink.port, SMTP_SECURITY="none", MAIL_FROM=MAILBOX
    )
    client = application.test_client()
    with application.app_context():
        create_user(
            db.session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role=Role.ADMIN, actor="t"
        )
        db.session.commit()
        reference = ingest(application, make_mail(body=DUTCH_BODY)).reference
        AuthActions(client).login()

        page = client.get(f"/tickets/{reference}?template=clarification")
        posted = client.post(
            f"/tickets/{reference}/reply",
            data={"template": "clarification", "subject": "Vraag", "body": "Welke gegevens?"},
        )
        db.session.remove()

    assert page.status_code == 200
    assert "Om het goed af te handelen" in page.get_data(as_text=True)
    assert posted.status_code == 302
    assert len(smtp_sink.messages) == 2
    assert "Welke gegevens?" in parsed(smtp_sink.messages[1].raw).get_content()


def suppress_reason(ticket: Ticket) -> str:
    event = db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.ticket_id == ticket.id, AuditEvent.tag == AuditTag.MAIL_SUPPRESS
        )
    ).one()
    return str(event.data["reason"])


def test_acknowledgement_not_sent_past_due_date(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=90)

    ticket = ingest(mail_app, make_mail(body=DUTCH_BODY), received_at=long_ago)

    assert smtp_sink.messages == []
    assert suppress_reason(ticket) == "the due date has passed"


def test_acknowledgement_without_sender_is_audited(make_app: Any) -> None:
    application = make_app(MAIL_FROM="", IMAP_USER="")
    with application.app_context():
        ticket = ingest(application, make_mail(body=DUTCH_BODY))

        assert "INBOX_MAIL_FROM" in suppress_reason(ticket)
        db.session.remove()


def test_acknowledgement_reason_names_attention(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    first = ingest(mail_app, make_mail(body=DUTCH_BODY))
    stranger = make_mail(
        sender="Iemand <iemand@example.net>",
        subject=f"Re: [{first.reference}] inzageverzoek",
        body=DUTCH_BODY,
    )

    followup = ingest(mail_app, stranger)

    assert followup.id != first.id
    assert suppress_reason(followup).startswith("the ticket needs attention first: possible")


def ingest_without_delivery(app: Flask, raw: bytes) -> Ticket:
    """Store and process one mail, leaving its acknowledgement queued."""
    stored = store_raw(db.session, raw, datetime.now(UTC), None, "test")
    db.session.commit()
    settings = replace(ingest_settings(app.config), deliver=None)
    [result] = process_batch(db.session, [stored.raw_message.id], settings)
    return result.ticket


def test_acknowledgement_queued_before_composed(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    ticket = ingest_without_delivery(mail_app, make_mail(body=DUTCH_BODY))

    delivery = db.session.scalars(select(MailDelivery)).one()
    assert delivery.status == DeliveryStatus.QUEUED
    assert delivery.message_pk is None
    assert delivery.recipient == "jan@example.net"
    assert smtp_sink.messages == []

    assert deliver_queued(db.session, delivery.id) is True

    out = db.session.scalars(select(Message).where(Message.direction == "out")).one()
    assert out.ticket_id == ticket.id
    assert delivery.message_pk == out.id
    assert len(smtp_sink.messages) == 1


def test_acknowledgement_compose_fault_keeps_ticket(
    mail_app: Flask, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket = ingest_without_delivery(mail_app, make_mail(body=DUTCH_BODY))
    delivery = db.session.scalars(select(MailDelivery)).one()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("template broke")

    monkeypatch.setattr("inbox.services.replies.render_draft", broken)

    assert deliver_queued(db.session, delivery.id) is False
    assert delivery.status == DeliveryStatus.FAILED
    assert "template broke" in suppress_reason(ticket)
    assert db.session.get(Ticket, ticket.id) is not None
    assert smtp_sink.messages == []


def queue_two(app: Flask) -> list[int]:
    """Ingest requests from two senders without delivery; return their queued delivery ids."""
    ingest_without_delivery(app, make_mail(body=DUTCH_BODY))
    ingest_without_delivery(app, make_mail(sender="Piet <piet@example.net>", body=DUTCH_BODY))
    return list(db.session.scalars(select(MailDelivery.id).order_by(MailDelivery.id)))


def test_dispatch_composes_batch_in_one_commit(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    ids = queue_two(mail_app)

    dispatch(db.session, ids)

    assert len(smtp_sink.messages) == 2
    statuses = db.session.scalars(select(MailDelivery.status)).all()
    assert statuses == [DeliveryStatus.SENT, DeliveryStatus.SENT]
    steps = db.session.scalars(
        select(WorkflowStep).where(WorkflowStep.step_id == "acknowledge")
    ).all()
    assert [step.status for step in steps] == [StepStatus.DONE, StepStatus.DONE]
    assert verify_chain(db.session).is_intact


def test_dispatch_batch_fault_isolates_one_mail(
    mail_app: Flask, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = queue_two(mail_app)
    real = render_draft

    def broken_for_piet(session: Any, ticket: Ticket, template: str, *args: Any) -> Any:
        if ticket.requester_email == "piet@example.net":
            raise RuntimeError("template broke")
        return real(session, ticket, template, *args)

    monkeypatch.setattr("inbox.services.replies.render_draft", broken_for_piet)

    dispatch(db.session, ids)

    assert [sent.rcpt_tos for sent in smtp_sink.messages] == [("jan@example.net",)]
    statuses = db.session.scalars(select(MailDelivery.status).order_by(MailDelivery.id)).all()
    assert statuses == [DeliveryStatus.SENT, DeliveryStatus.FAILED]
    assert verify_chain(db.session).is_intact


@pytest.fixture
def web_mail_app(make_app: Any, smtp_sink: SmtpSink) -> Iterator[Flask]:
    """The app sending through the SMTP sink with a 1,000-byte attachment limit, signed in."""
    application = make_app(
        SMTP_HOST=smtp_sink.host,
        SMTP_PORT=smtp_sink.port,
        SMTP_SECURITY="none",
        MAIL_FROM=MAILBOX,
        MAX_ATTACHMENT_BYTES=1000,
    )
    with application.app_context():
        create_user(
            db.session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role=Role.ADMIN, actor="t"
        )
        db.session.commit()
        yield application
        db.session.remove()


def mail_with_attachment() -> bytes:
    """Build an access request that carries a small PDF."""
    message = parsed(make_mail(body=ENGLISH_BODY))
    message.add_attachment(
        b"%PDF-1.4 signed request form", maintype="application", subtype="pdf", filename="form.pdf"
    )
    return message.as_bytes()


def attachment_parts(raw: bytes) -> list[EmailMessage]:
    """Return the attachment parts of a sent mail."""
    return list(parsed(raw).iter_attachments())  # type: ignore[arg-type]


def post_reply(client: Any, reference: str, **extra: Any) -> Any:
    """Post the reply form with a subject and a text, plus the given fields."""
    data = {"subject": "Your data", "body": "Please find the files attached.", **extra}
    return client.post(f"/tickets/{reference}/reply", data=data, content_type="multipart/form-data")


def test_reply_upload_reaches_smtp(web_mail_app: Flask, smtp_sink: SmtpSink) -> None:
    client = web_mail_app.test_client()
    reference = ingest(web_mail_app, make_mail(body=ENGLISH_BODY)).reference
    AuthActions(client).login()

    response = post_reply(
        client, reference, files=[(io.BytesIO(b"name,email\nJan,jan@example.net\n"), "data.csv")]
    )
    parts = attachment_parts(smtp_sink.messages[-1].raw)

    assert response.status_code == 302
    assert len(parts) == 1
    assert parts[0].get_filename() == "data.csv"
    assert parts[0].get_content_type() == "text/csv"
    assert parts[0].get_content() == "name,email\nJan,jan@example.net\n"


def test_reply_text_part_kept_with_files(web_mail_app: Flask, smtp_sink: SmtpSink) -> None:
    client = web_mail_app.test_client()
    reference = ingest(web_mail_app, make_mail(body=ENGLISH_BODY)).reference
    AuthActions(client).login()

    post_reply(client, reference, files=[(io.BytesIO(b"x"), "a.txt")])
    mail = parsed(smtp_sink.messages[-1].raw)
    body = mail.get_body(preferencelist=("plain",))

    assert mail.get_content_type() == "multipart/mixed"
    assert body is not None
    assert "Please find the files attached." in body.get_content()
    assert mail["Content-Language"] == "en"


def test_reply_sends_ticket_attachment(web_mail_app: Flask, smtp_sink: SmtpSink) -> None:
    client = web_mail_app.test_client()
    ticket = ingest(web_mail_app, mail_with_attachment())
    attachment = incoming(ticket)[0].attachments[0]
    AuthActions(client).login()

    post_reply(client, ticket.reference, attach=[str(attachment.id)])
    parts = attachment_parts(smtp_sink.messages[-1].raw)

    assert [part.get_filename() for part in parts] == ["form.pdf"]
    assert parts[0].get_content() == b"%PDF-1.4 signed request form"


def test_reply_upload_stored_once_by_hash(web_mail_app: Flask, smtp_sink: SmtpSink) -> None:
    client = web_mail_app.test_client()
    reference = ingest(web_mail_app, make_mail(body=ENGLISH_BODY)).reference
    AuthActions(client).login()
    data = b"the same export twice"

    post_reply(client, reference, files=[(io.BytesIO(data), "one.txt")])
    post_reply(client, reference, files=[(io.BytesIO(data), "two.txt")])
    sha256 = hashlib.sha256(data).hexdigest()
    attachments = db.session.scalars(select(Attachment).where(Attachment.sha256 == sha256)).all()

    assert sorted(a.filename for a in attachments) == ["one.txt", "two.txt"]
    assert all(a.message.direction == "out" for a in attachments)
    assert db.session.scalar(select(func.count()).select_from(Blob)) == 1


def test_reply_upload_name_made_safe(web_mail_app: Flask, smtp_sink: SmtpSink) -> None:
    client = web_mail_app.test_client()
    reference = ingest(web_mail_app, make_mail(body=ENGLISH_BODY)).reference
    AuthActions(client).login()

    post_reply(client, reference, files=[(io.BytesIO(b"x"), "../secret/evil:name?.txt")])
    parts = attachment_parts(smtp_sink.messages[-1].raw)

    assert parts[0].get_filename() == "evil_name_.txt"


def test_reply_upload_over_limit_rejected(web_mail_app: Flask, smtp_sink: SmtpSink) -> None:
    client = web_mail_app.test_client()
    reference = ingest(web_mail_app, make_mail(body=ENGLISH_BODY)).reference
    AuthActions(client).login()

    response = post_reply(client, reference, files=[(io.BytesIO(b"x" * 1001), "big.bin")])
    page = client.get(response.headers["Location"]).text

    assert "The file big.bin is larger than 1,000 bytes" in page
    assert len(smtp_sink.messages) == 1


def test_reply_service_rejects_large_file(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    mail_app.config["MAX_ATTACHMENT_BYTES"] = 10
    ticket = ingest(mail_app, make_mail(body=ENGLISH_BODY))
    reply = Reply("Data", "Attached.", files=(MailFile("big.txt", "text/plain", b"x" * 11),))

    with pytest.raises(AttachmentTooLargeError, match="'big.txt' has 11 bytes; the limit is 10"):
        send_reply(db.session, ticket, reply, "agent")


def test_reply_rejects_foreign_attachment(mail_app: Flask, smtp_sink: SmtpSink) -> None:
    first = ingest(mail_app, mail_with_attachment())
    other = ingest(mail_app, make_mail(body=DUTCH_BODY, sender="eva@example.net"))
    attachment_id = incoming(first)[0].attachments[0].id
    reply = Reply("Data", "Attached.", ticket_attachment_ids=(attachment_id,))

    with pytest.raises(WorkflowStateError, match="is not part of ticket"):
        send_reply(db.session, other, reply, "agent")


def test_reply_request_over_limit_gets_413(make_app: Any) -> None:
    application = make_app(MAX_ATTACHMENT_BYTES=1000, MAX_MESSAGE_BYTES=2048)
    client = application.test_client()
    too_large = application.config["MAX_CONTENT_LENGTH"] + 1
    with application.app_context():
        create_user(
            db.session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role=Role.ADMIN, actor="t"
        )
        db.session.commit()
        AuthActions(client).login()
        # Raw bytes, so the test client needs no temporary file for the body.
        response = client.post(
            "/tickets/PRQ-2026-00001/reply",
            data=b"x" * too_large,
            content_type="multipart/form-data; boundary=limit",
        )
        db.session.remove()

    assert response.status_code == 413
    assert "Request too large" in response.text


def test_max_content_length_above_upload_limits(web_mail_app: Flask) -> None:
    limit = web_mail_app.config["MAX_CONTENT_LENGTH"]

    assert limit > web_mail_app.config["MAX_ATTACHMENT_BYTES"]
    assert limit > web_mail_app.config["MAX_MESSAGE_BYTES"]


def test_reply_form_is_multipart(web_mail_app: Flask, smtp_sink: SmtpSink) -> None:
    client = web_mail_app.test_client()
    ticket = ingest(web_mail_app, mail_with_attachment())
    AuthActions(client).login()

    page = client.get(f"/tickets/{ticket.reference}").text
    form = page[page.index('action="/tickets/' + ticket.reference + '/reply"') :]

    assert 'enctype="multipart/form-data"' in form[: form.index(">")]
    assert 'name="csrf_token"' in form
    assert 'type="file" name="files" multiple' in form
    assert 'name="attach" value="' in form


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("C:\\Users\\jan\\scan.jpg", "scan.jpg"),
        ("../../etc/passwd", "passwd"),
        ("überzicht.pdf", "überzicht.pdf"),
        ('a"b<c>d.txt', "a_b_c_d.txt"),
        ("...", "attachment"),
        ("", "attachment"),
        ("x" * 300 + ".pdf", "x" * 251 + ".pdf"),
    ],
)
def test_safe_attachment_name_table(name: str, expected: str) -> None:
    assert safe_attachment_name(name) == expected


@pytest.mark.parametrize(
    ("attempts", "minutes"),
    [(0, 5), (1, 1), (2, 5), (3, 30), (4, 120), (5, 120)],
)
def test_retry_wait_follows_rq_intervals(attempts: int, minutes: int) -> None:
    assert retry_wait(attempts) == timedelta(minutes=minutes)


def test_poll_retries_failed_mail_when_due(make_app: Any, mailbox: Dovecot) -> None:
    application = make_app(MAIL_FROM=MAILBOX, **imap_settings(mailbox))
    with application.app_context():
        outbox = block_outbox(application.instance_path)
        for index in range(2):
            ingest(application, make_mail(sender=f"p{index}@example.net", body=DUTCH_BODY))
        outbox.unlink()
        due, waiting = db.session.scalars(select(MailDelivery).order_by(MailDelivery.id)).all()
        # One failed attempt: the next is due a minute after it began.
        due.attempted_at = datetime.now(UTC) - timedelta(minutes=2)
        db.session.commit()

        results, errors = poll_mailboxes(db.session, application.config)
        statuses = [
            db.session.get(MailDelivery, delivery_id).status for delivery_id in (due.id, waiting.id)
        ]
        db.session.remove()

    assert errors == []
    assert statuses == [DeliveryStatus.SENT, DeliveryStatus.QUEUED]


def give_up(ticket: Ticket) -> MailDelivery:
    """Mark a ticket's acknowledgement as given up, as the last failed attempt does."""
    delivery = db.session.scalars(select(MailDelivery)).one()
    delivery.status = DeliveryStatus.FAILED
    delivery.attempts = MAX_INLINE_ATTEMPTS
    delivery.last_error = "SMTP connection timed out"
    given_up = {"recipient": delivery.recipient, "attempts": 5, "error": delivery.last_error}
    flag_ticket(db.session, ticket, Attention(attention.DELIVERY_GIVEN_UP, given_up))
    db.session.commit()
    return delivery


def test_given_up_mail_sent_again(web_mail_app: Flask, smtp_sink: SmtpSink) -> None:
    client = web_mail_app.test_client()
    ticket = ingest(web_mail_app, make_mail(body=ENGLISH_BODY))
    delivery = give_up(ticket)
    AuthActions(client).login()

    page = client.get(f"/tickets/{ticket.reference}").text
    response = client.post(f"/tickets/{ticket.reference}/deliveries/{delivery.id}/resend")
    db.session.expire_all()
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.tag == str(AuditTag.MAIL_RESEND))
    ).one()

    assert "Not delivered" in page
    assert "Send again" in page
    assert response.status_code == 302
    assert len(smtp_sink.messages) == 2
    first, second = (parsed(sent.raw)["Message-ID"] for sent in smtp_sink.messages)
    assert second == first
    assert delivery.status == DeliveryStatus.SENT
    assert not ticket.needs_attention
    assert event.data["attempts"] == MAX_INLINE_ATTEMPTS
    assert event.data["attention_cleared"] is True


def test_sent_mail_not_sent_again(web_mail_app: Flask, smtp_sink: SmtpSink) -> None:
    client = web_mail_app.test_client()
    ticket = ingest(web_mail_app, make_mail(body=ENGLISH_BODY))
    delivery = db.session.scalars(select(MailDelivery)).one()
    AuthActions(client).login()

    response = client.post(f"/tickets/{ticket.reference}/deliveries/{delivery.id}/resend")

    assert response.status_code == 400
    assert "only mail that was given up can be sent again" in response.text
    assert len(smtp_sink.messages) == 1


def test_resend_keeps_flag_of_other_failure(web_mail_app: Flask, smtp_sink: SmtpSink) -> None:
    client = web_mail_app.test_client()
    ticket = ingest(web_mail_app, make_mail(body=ENGLISH_BODY))
    first = give_up(ticket)
    second = queue_delivery(
        db.session, ticket, Reply(subject="Vraag", body="Nog een vraag."), "test"
    )
    second.status = DeliveryStatus.FAILED
    db.session.commit()
    AuthActions(client).login()

    response = client.post(f"/tickets/{ticket.reference}/deliveries/{first.id}/resend")
    db.session.expire_all()

    assert response.status_code == 302
    assert first.status == DeliveryStatus.SENT
    assert second.status == DeliveryStatus.FAILED
    assert ticket.needs_attention
