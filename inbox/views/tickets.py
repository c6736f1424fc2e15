"""The ticket page: conversation, attachments, type and status changes, audit trail."""

from __future__ import annotations

import re

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectChoice, SelectField, SubmitField

from inbox.enums import TicketStatus
from inbox.errors import TransitionError
from inbox.extensions import db
from inbox.mail.attachments import attachment_bytes
from inbox.mail.sanitize import sanitize_html
from inbox.models.audit import AuditEvent
from inbox.models.message import Attachment, Message, RawMessage
from inbox.models.ticket import Ticket
from inbox.models.workflow import MailDelivery
from inbox.services.replies import dispatch, resend_delivery
from inbox.services.tickets import change_status, sla_policy
from inbox.services.triage import retype_with_correction
from inbox.services.workflows import WorkflowStateError
from inbox.views.labels import STATUS_LABELS, TYPE_LABELS

bp = Blueprint("tickets", __name__, url_prefix="/tickets")

UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._ -]+")
"""Characters replaced in a download's file name, so no header or path tricks survive."""


class TypeForm(FlaskForm):
    """Change the request type."""

    type = SelectField(
        _l("Request type"), choices=[SelectChoice(t.value, label) for t, label in TYPE_LABELS.items()]
    )
    submit_type = SubmitField(_l("Change type"))


class StatusForm(FlaskForm):
    """Change the status."""

    # Closing needs an outcome and passes the checklist gate, so it has its own form.
    status = SelectField(
        _l("Status"),
        choices=[
            SelectChoice(s.value, label)
            for s, label in STATUS_LABELS.items()
            if s != TicketStatus.CLOSED
        ],
    )
    submit_status = SubmitField(_l("Change status"))


def get_ticket_or_404(reference: str) -> Ticket:
    """Load a ticket by reference, or abort with 404 naming it."""
    ticket = db.session.scalars(select(Ticket).where(Ticket.reference == reference)).first()
    if ticket is None:
        abort(404, _("Ticket %(reference)s does not exist.", reference=reference))
    return ticket


def safe_download_name(name: str, fallback: str) -> str:
    """Reduce a file name to safe characters for Content-Disposition."""
    cleaned = UNSAFE_FILENAME_CHARS.sub("_", name.replace("/", "_").replace("\\", "_")).strip(" .")
    return cleaned[:120] or fallback


def download(data: bytes, filename: str) -> Response:
    """Send bytes as a download that a browser never renders or sniffs."""
    response = Response(data, mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@bp.route("/<reference>")
@login_required
def show(reference: str) -> ResponseReturnValue:
    """Show a ticket with its conversation and audit trail."""
    ticket = get_ticket_or_404(reference)
    type_form = TypeForm(type=ticket.type)
    status_form = StatusForm(status=ticket.status)
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.ticket_id == ticket.id).order_by(AuditEvent.id)
    ).all()

    bodies = {}
    for message in ticket.messages:
        if message.html:
            bodies[message.id] = sanitize_html(
                message.html,
                cid_url=lambda cid, m=message: url_for(
                    "tickets.inline_image",
                    reference=ticket.reference,
                    message_id=m.id,
                    content_id=cid,
                ),
            )
    deliveries = {
        delivery.message_pk: delivery
        for delivery in db.session.scalars(
            select(MailDelivery).where(MailDelivery.ticket_id == ticket.id)
        )
    }
    return render_template(
        "tickets/show.html",
        ticket=ticket,
        type_form=type_form,
        status_form=status_form,
        events=events,
        html_bodies=bodies,
        deliveries=deliveries,
    )


@bp.route("/<reference>/deliveries/<int:delivery_id>/resend", methods=["POST"])
@login_required
def resend(reference: str, delivery_id: int) -> ResponseReturnValue:
    """Send a mail that was given up once more, as it was composed."""
    ticket = get_ticket_or_404(reference)
    try:
        resend_delivery(db.session, ticket, delivery_id, current_user.email)
    except WorkflowStateError as exc:
        abort(400, str(exc))
    db.session.commit()
    dispatch(db.session, [delivery_id])
    flash(_("Mail queued to be sent again."), "success")
    return redirect(url_for("tickets.show", reference=reference))


@bp.route("/<reference>/type", methods=["POST"])
@login_required
def set_type(reference: str) -> ResponseReturnValue:
    """Change the request type, which recomputes the due date."""
    ticket = get_ticket_or_404(reference)
    form = TypeForm()
    if not form.validate_on_submit():
        abort(400, _("Choose one of the listed request types."))
    try:
        changed = retype_with_correction(
            db.session,
            ticket,
            form.type.data or "",
            sla_policy(current_app.config),
            current_user.email,
        )
    except TransitionError as exc:
        abort(400, str(exc))
    db.session.commit()
    if changed:
        flash(_("Type changed; the due date was recomputed."), "success")
    return redirect(url_for("tickets.show", reference=reference))


@bp.route("/<reference>/status", methods=["POST"])
@login_required
def set_status(reference: str) -> ResponseReturnValue:
    """Change the ticket's status."""
    ticket = get_ticket_or_404(reference)
    if request.form.get("status") == TicketStatus.CLOSED:
        abort(400, _("Close a ticket with the Close ticket form, which records the outcome."))
    form = StatusForm()
    if not form.validate_on_submit():
        abort(400, _("Choose one of the listed statuses."))
    try:
        changed = change_status(db.session, ticket, form.status.data or "", current_user.email)
    except TransitionError as exc:
        abort(400, str(exc))
    db.session.commit()
    if changed:
        flash(_("Status changed."), "success")
    return redirect(url_for("tickets.show", reference=reference))


def get_message_or_404(ticket: Ticket, message_id: int) -> Message:
    """Load a message of this ticket, or abort with 404."""
    message = db.session.get(Message, message_id)
    if message is None or message.ticket_id != ticket.id:
        abort(404, _("Message %(id)s is not part of this ticket.", id=message_id))
    return message


@bp.route("/<reference>/messages/<int:message_id>/raw")
@login_required
def raw_message(reference: str, message_id: int) -> ResponseReturnValue:
    """Download the message exactly as it was received."""
    ticket = get_ticket_or_404(reference)
    message = get_message_or_404(ticket, message_id)
    if message.raw_message_id is None:
        abort(404, _("This message has no stored original."))
    raw = db.session.get(RawMessage, message.raw_message_id)
    assert raw is not None
    return download(raw.raw, f"{ticket.reference}-{message.id}.eml")


FILE_NOT_READ = _l(
    "This file could not be read from the original mail. Download the original mail instead."
)
"""Shown when an attachment's raw mail no longer yields the file with its stored hash."""


@bp.route("/<reference>/attachments/<int:attachment_id>")
@login_required
def attachment(reference: str, attachment_id: int) -> ResponseReturnValue:
    """Download an attachment, never rendered inline."""
    ticket = get_ticket_or_404(reference)
    item = db.session.get(Attachment, attachment_id)
    if item is None or item.message.ticket_id != ticket.id:
        abort(404, _("Attachment %(id)s is not part of this ticket.", id=attachment_id))
    if item.blob is None:
        abort(404, _("This attachment was over the size limit and was not stored."))
    data = attachment_bytes(item)
    if data is None:
        abort(404, str(FILE_NOT_READ))
    return download(data, safe_download_name(item.filename, f"attachment-{item.id}"))


INLINE_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
"""Image types served inline for cid: references; anything else is refused."""


@bp.route("/<reference>/messages/<int:message_id>/cid/<path:content_id>")
@login_required
def inline_image(reference: str, message_id: int, content_id: str) -> ResponseReturnValue:
    """Serve an inline image that the message itself carries (a cid: reference)."""
    ticket = get_ticket_or_404(reference)
    message = get_message_or_404(ticket, message_id)
    for item in message.attachments:
        if item.content_id == content_id and item.blob is not None:
            if item.content_type.lower() not in INLINE_IMAGE_TYPES:
                break
            data = attachment_bytes(item)
            if data is None:
                abort(404, str(FILE_NOT_READ))
            response = Response(data, mimetype=item.content_type.lower())
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
            return response
    abort(404, _("No inline image %(cid)s in this message.", cid=content_id))
