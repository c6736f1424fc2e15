"""The checklist and reply forms of the ticket page: step actions, closing, and replies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_babel import format_decimal, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import select

from inbox.errors import ConfigError, TransitionError
from inbox.extensions import db
from inbox.mail.outgoing import MailFile
from inbox.mail.quoting import split_reply
from inbox.models.ticket import Ticket
from inbox.models.types import utcnow
from inbox.models.user import Role, User
from inbox.models.workflow import (
    IdentityStatus,
    MailDelivery,
    Outcome,
    SearchResult,
    StepStatus,
    WorkflowStep,
)
from inbox.services.deadlines import (
    check_extendable,
    extend_and_notify,
    extension_of,
    open_pause,
)
from inbox.services.replies import Draft, Reply, dispatch, render_draft, send_reply
from inbox.services.tickets import sla_policy
from inbox.services.verification import (
    EVIDENCE_DIRECTION,
    IDENTITY_STEP_ID,
    SEARCH_STEP_ID,
    IdentityChange,
    SearchRecordInput,
    add_evidence_note,
    add_search_record,
    attach_identity_evidence,
    delete_evidence_file,
    identity_check_of,
    search_records_of,
    update_identity,
)
from inbox.services.workflows import (
    assign_step,
    can_close,
    check_step,
    close_ticket,
    instance_of,
    open_required_steps,
    skip_step,
    step_definition,
    uncheck_step,
)
from inbox.views import parse_id
from inbox.views.tickets import get_ticket_or_404
from inbox.workflow import REPLY_TEMPLATES, Step, StepKind

bp = Blueprint("checklist", __name__, url_prefix="/tickets")

UPLOAD_MARGIN_BYTES = 1024 * 1024
"""Room for form fields and multipart headers above the attachment limit in a request."""


@bp.record_once
def limit_request_size(state: BlueprintSetupState) -> None:
    """Cap request bodies just above the largest allowed upload unless MAX_CONTENT_LENGTH is set.

    The largest upload is one reply's files, at most INBOX_MAX_MESSAGE_BYTES together, or one
    file of INBOX_MAX_ATTACHMENT_BYTES. Werkzeug stops reading a larger request, and the app
    then renders its 413 page. A smaller one gets the form's own error naming file and limit.
    """
    config = state.app.config
    if config.get("MAX_CONTENT_LENGTH") is None:
        largest = max(int(config["MAX_ATTACHMENT_BYTES"]), int(config["MAX_MESSAGE_BYTES"]))
        config["MAX_CONTENT_LENGTH"] = largest + UPLOAD_MARGIN_BYTES


STEP_STATUS_LABELS = {
    StepStatus.OPEN: _l("Open"),
    StepStatus.DONE: _l("Done"),
    StepStatus.SKIPPED: _l("Skipped"),
    StepStatus.PENDING: _l("Waits for a decision"),
    StepStatus.NOT_APPLICABLE: _l("Not applicable"),
    StepStatus.DROPPED: _l("Dropped after a type change"),
}

OUTCOME_LABELS = {
    Outcome.GRANTED: _l("Granted"),
    Outcome.PARTLY_GRANTED: _l("Partly granted"),
    Outcome.REFUSED: _l("Refused"),
    Outcome.WITHDRAWN: _l("Withdrawn"),
    Outcome.NO_DATA_FOUND: _l("No data found"),
}

IDENTITY_LABELS = {
    IdentityStatus.NOT_NEEDED: _l("Not needed"),
    IdentityStatus.REQUESTED: _l("Requested"),
    IdentityStatus.VERIFIED: _l("Verified"),
    IdentityStatus.FAILED: _l("Failed"),
}

SEARCH_RESULT_LABELS = {
    SearchResult.DATA_FOUND: _l("Data found"),
    SearchResult.NOTHING_FOUND: _l("Checked, nothing found"),
    SearchResult.NOT_APPLICABLE: _l("Not applicable"),
}

TEMPLATE_LABELS = {
    "acknowledgement": _l("Acknowledgement"),
    "identity_verification": _l("Identity verification request"),
    "clarification": _l("Clarification"),
    "extension": _l("Extension notice"),
    "completion": _l("Completion"),
    "refusal": _l("Refusal with reasons"),
    "breach_notification": _l("Breach notification to a data subject"),
}


@dataclass(frozen=True)
class StepRow:
    """Display data of one checklist step."""

    step: WorkflowStep
    definition: Step
    title: str
    description: str
    status_label: str
    is_overdue: bool


def _language() -> str:
    return "nl" if str(get_locale()) == "nl" else "en"


def checklist_for(ticket: Ticket) -> dict[str, Any] | None:
    """Collect the checklist of a ticket for ``_checklist.html``, or None without a workflow."""
    instance = instance_of(db.session, ticket)
    if instance is None:
        return None
    language = _language()
    now = datetime.now().astimezone()
    rows = []
    for step in instance.steps:
        definition = step_definition(step)
        rows.append(
            StepRow(
                step=step,
                definition=definition,
                title=definition.text("title", language),
                description=definition.text("description", language),
                status_label=str(STEP_STATUS_LABELS[StepStatus(step.status)]),
                is_overdue=step.status == StepStatus.OPEN
                and step.due_at is not None
                and step.due_at < now,
            )
        )
    users = db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.email))
    return {
        "instance": instance,
        "rows": rows,
        "users": list(users),
        "outcomes": OUTCOME_LABELS,
        "can_close": can_close(db.session, ticket),
        "blocking": [
            row.title for row in rows if row.step in open_required_steps(db.session, ticket)
        ],
        "language": language,
        **_records_for(ticket, rows),
    }


def _records_for(ticket: Ticket, rows: list[StepRow]) -> dict[str, Any]:
    """Collect identity, search and deadline records shown with the checklist."""
    identity = {
        row.step.id: identity_check_of(db.session, row.step)
        for row in rows
        if row.step.step_id == IDENTITY_STEP_ID
    }
    searches = {
        row.step.id: search_records_of(db.session, row.step)
        for row in rows
        if row.step.step_id == SEARCH_STEP_ID
    }
    try:
        check_extendable(db.session, ticket, utcnow())
        can_extend = True
    except TransitionError:
        can_extend = False
    return {
        "identity": identity,
        "identity_labels": IDENTITY_LABELS,
        "searches": searches,
        "search_labels": SEARCH_RESULT_LABELS,
        "attachments": [item for m in ticket.messages for item in m.attachments],
        "extension": extension_of(db.session, ticket),
        "pause": open_pause(db.session, ticket),
        "can_extend": can_extend,
        "identity_step_id": IDENTITY_STEP_ID,
        "search_step_id": SEARCH_STEP_ID,
    }


def reply_form_for(ticket: Ticket) -> dict[str, Any]:
    """Collect the reply form for ``_reply.html``, prefilled from ``?template=`` when given."""
    chosen = request.args.get("template", "")
    draft: Draft | None = None
    if chosen in REPLY_TEMPLATES:
        draft = render_draft(db.session, ticket, chosen)
    stored = [item for m in ticket.messages for item in m.attachments if item.sha256]
    return {
        "templates": TEMPLATE_LABELS,
        "chosen": chosen,
        "draft": draft,
        "attachments": stored,
        "max_attachment_bytes": current_app.config["MAX_ATTACHMENT_BYTES"],
    }


@bp.app_context_processor
def inject_checklist_helpers() -> dict[str, Any]:
    """Offer the checklist and reply helpers to the ticket page's partials."""
    return {
        "checklist_for": checklist_for,
        "reply_form_for": reply_form_for,
        "outcome_labels": OUTCOME_LABELS,
        "split_reply": split_reply,
        "evidence_direction": EVIDENCE_DIRECTION,
    }


def _get_step_or_404(ticket: Ticket, step_pk: int) -> WorkflowStep:
    step = db.session.get(WorkflowStep, step_pk)
    if step is None or step.instance.ticket_id != ticket.id:
        abort(404, _("Step %(id)s is not part of this ticket.", id=step_pk))
    return step


def _back(ticket: Ticket) -> ResponseReturnValue:
    return redirect(url_for("tickets.show", reference=ticket.reference) + "#checklist")


def _flash_rejection(exc: Exception) -> None:
    db.session.rollback()
    flash(_("The change was rejected: %(reason)s", reason=str(exc)), "error")


@bp.route("/<reference>/steps/<int:step_pk>/<action>", methods=["POST"])
@login_required
def step_action(reference: str, step_pk: int, action: str) -> ResponseReturnValue:
    """Check, uncheck, skip, annotate or assign one checklist step."""
    ticket = get_ticket_or_404(reference)
    step = _get_step_or_404(ticket, step_pk)
    actor = current_user.email
    try:
        if action == "check":
            check_step(db.session, step, actor, request.form.get("option") or None)
        elif action == "uncheck":
            uncheck_step(db.session, step, actor)
        elif action == "skip":
            if _is_approval_for_agent(step):
                flash(_("Only a manager or admin may skip an approval step."), "error")
                return _back(ticket)
            skip_step(db.session, step, actor, request.form.get("reason", ""))
        elif action == "note":
            add_evidence_note(db.session, step, actor, request.form.get("text", ""), _evidence())
        elif action == "assign":
            assign_step(db.session, step, _assignee(request.form.get("assignee", "")), actor)
        elif action == "identity":
            change = IdentityChange(request.form.get("status", ""), request.form.get("note", ""))
            update_identity(db.session, step, change, actor)
        elif action == "evidence":
            attach_identity_evidence(db.session, step, _form_id("attachment"), actor)
        elif action == "delete-evidence":
            delete_evidence_file(db.session, step, actor)
        elif action == "search":
            add_search_record(db.session, step, _search_input(), actor)
        else:
            abort(404, _("Unknown step action %(action)s.", action=action))
    except UploadTooLargeError as exc:
        flash(str(exc), "error")
        return _back(ticket)
    except TransitionError as exc:
        _flash_rejection(exc)
        return _back(ticket)
    db.session.commit()
    flash(_("Checklist updated."), "success")
    return _back(ticket)


def _is_approval_for_agent(step: WorkflowStep) -> bool:
    """Tell whether the step is a manager approval and the signed-in user may not skip it."""
    is_approval = step_definition(step).kind is StepKind.APPROVAL
    return is_approval and current_user.role not in (Role.MANAGER, Role.ADMIN)


def _form_id(name: str) -> int:
    number = parse_id(request.form.get(name, ""))
    if number is None:
        abort(400, _("Choose one of the listed files."))
    return number


def _search_input() -> SearchRecordInput:
    attachment = request.form.get("attachment", "")
    return SearchRecordInput(
        system=request.form.get("system", ""),
        result=request.form.get("result", ""),
        note=request.form.get("note", ""),
        attachment_id=_form_id("attachment") if attachment else None,
        upload=_evidence(),
    )


class UploadTooLargeError(Exception):
    """Raised by ``_uploaded_files`` with the translated message of a file over the limit."""


def _uploaded_files(field: str) -> list[MailFile]:
    """Read the files posted in ``field``, skipping the empty part of an unused file input.

    :raises UploadTooLargeError: a file is over INBOX_MAX_ATTACHMENT_BYTES.
    """
    max_bytes = int(current_app.config["MAX_ATTACHMENT_BYTES"])
    files = []
    for upload in request.files.getlist(field):
        if not upload.filename:
            continue
        # One byte past the limit is enough to know the file is too large.
        data = upload.stream.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise UploadTooLargeError(
                _(
                    "The file %(name)s is larger than %(limit)s bytes, the limit for "
                    "attachments. Send a smaller file.",
                    name=upload.filename,
                    limit=format_decimal(max_bytes),
                )
            )
        files.append(MailFile(upload.filename, upload.mimetype or "", data))
    return files


def _evidence() -> MailFile | None:
    """Return the one file posted as evidence, or None when the file input was left empty.

    :raises UploadTooLargeError: the file is over INBOX_MAX_ATTACHMENT_BYTES.
    """
    files = _uploaded_files("evidence")
    return files[0] if files else None


def _form_ids(name: str) -> tuple[int, ...]:
    """Return the ids checked in a group of checkboxes, rejecting anything that is no id."""
    numbers = []
    for value in request.form.getlist(name):
        number = parse_id(value)
        if number is None:
            abort(400, _("Choose one of the listed files."))
        numbers.append(number)
    return tuple(numbers)


def _assignee(value: str) -> User | None:
    if not value:
        return None
    number = parse_id(value)
    user = db.session.get(User, number) if number is not None else None
    if user is None:
        abort(400, _("User %(id)s does not exist.", id=value))
    return user


@bp.route("/<reference>/close", methods=["POST"])
@login_required
def close(reference: str) -> ResponseReturnValue:
    """Close the ticket with an outcome; a manager may override open required steps."""
    ticket = get_ticket_or_404(reference)
    try:
        close_ticket(
            db.session,
            ticket,
            request.form.get("outcome", ""),
            current_user.email,
            request.form.get("override_reason") or None,
        )
    except TransitionError as exc:
        _flash_rejection(exc)
        return _back(ticket)
    db.session.commit()
    flash(_("Ticket closed."), "success")
    return _back(ticket)


@bp.route("/<reference>/extend", methods=["POST"])
@login_required
def extend(reference: str) -> ResponseReturnValue:
    """Extend the deadline by the Art. 12(3) period and send the notice with the reason."""
    ticket = get_ticket_or_404(reference)
    try:
        message = extend_and_notify(
            db.session,
            ticket,
            request.form.get("reason", ""),
            current_user.email,
            sla_policy(current_app.config),
            utcnow(),
        )
    except (TransitionError, ConfigError) as exc:
        _flash_rejection(exc)
        return _back(ticket)
    delivery_ids = list(
        db.session.scalars(select(MailDelivery.id).where(MailDelivery.message_pk == message.id))
    )
    db.session.commit()
    dispatch(db.session, delivery_ids)
    flash(_("Deadline extended; the notice to the requester is queued."), "success")
    return _back(ticket)


@bp.route("/<reference>/reply", methods=["POST"])
@login_required
def reply(reference: str) -> ResponseReturnValue:
    """Send a reply to the requester, written from a template or from scratch."""
    ticket = get_ticket_or_404(reference)
    template = request.form.get("template", "")
    if template and template not in REPLY_TEMPLATES:
        abort(400, _("Unknown mail template %(name)s.", name=template))
    if template == "extension" and extension_of(db.session, ticket) is None:
        flash(
            _(
                "Use Extend deadline in the checklist: it records the reason, moves the due "
                "date and sends this notice."
            ),
            "error",
        )
        return redirect(url_for("tickets.show", reference=reference) + "#checklist")
    back = redirect(url_for("tickets.show", reference=reference, template=template) + "#reply")
    try:
        files = _uploaded_files("files")
    except UploadTooLargeError as exc:
        flash(str(exc), "error")
        return back
    message = Reply(
        subject=request.form.get("subject", ""),
        body=request.form.get("body", ""),
        template=template,
        files=tuple(files),
        ticket_attachment_ids=_form_ids("attach"),
    )
    try:
        send_reply(db.session, ticket, message, current_user.email)
    except (TransitionError, ConfigError) as exc:
        _flash_rejection(exc)
        return back
    flash(_("Reply queued for delivery."), "success")
    return redirect(url_for("tickets.show", reference=reference) + "#reply")


def is_decision(row: StepRow) -> bool:
    """Tell whether a row is a decision step, for the template."""
    return row.definition.kind is StepKind.DECISION
