"""Triage actions: confirm a type, bulk actions on the queue, download the labelled examples."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField, SelectChoice, SelectField, SubmitField

from inbox.errors import TransitionError
from inbox.extensions import db
from inbox.models.user import Role, User
from inbox.services.tickets import sla_policy
from inbox.services.triage import (
    ClosedTicketError,
    MergeError,
    MissingRequesterError,
    RequesterMismatchError,
    TicketsNotFoundError,
    build_corrections_zip,
    bulk_assign,
    bulk_retype,
    confirm_type,
    find_tickets,
    merge_tickets,
)
from inbox.views.labels import TYPE_LABELS, type_label
from inbox.views.tickets import get_ticket_or_404

bp = Blueprint("triage", __name__, url_prefix="/triage")

EXPORT_ROLES = (Role.ADMIN, Role.MANAGER)
"""Roles that may download the labelled examples, which contain requesters' mail."""


class ConfirmForm(FlaskForm):
    """Confirm the classifier's type with one click."""

    next = HiddenField()
    submit_confirm = SubmitField(_l("Confirm type"))


class BulkForm(FlaskForm):
    """Apply one action to the tickets ticked in the queue."""

    next = HiddenField()
    action = SelectField(
        _l("Action"),
        choices=[
            SelectChoice("assign", _l("Assign to")),
            SelectChoice("retype", _l("Change type to")),
            SelectChoice("merge", _l("Merge duplicates")),
        ],
    )
    assignee = SelectField(_l("Assignee"), choices=[])
    type = SelectField(
        _l("Request type"),
        choices=[SelectChoice(t.value, label) for t, label in TYPE_LABELS.items()],
    )
    submit_bulk = SubmitField(_l("Apply to selected"))


def make_bulk_form() -> BulkForm:
    """Build the bulk form with the active users as assignees."""
    form = BulkForm()
    users = db.session.scalars(
        select(User).where(User.active.is_(True)).order_by(User.name, User.email)
    ).all()
    form.assignee.choices = [
        SelectChoice("", _("Nobody")),
        *(SelectChoice(str(u.id), u.name or u.email) for u in users),
    ]
    return form


@bp.app_context_processor
def inject_triage_helpers() -> dict[str, Any]:
    """Offer the bulk form and the confirm form to every template, built only when used."""
    return {"make_bulk_form": make_bulk_form, "make_confirm_form": ConfirmForm}


def safe_next(value: str | None, fallback: str) -> str:
    """Return ``value`` when it is a path on this site, else ``fallback``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return fallback
    return value


def export_role_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Allow only signed-in admins and managers. Others get 403."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user.role not in EXPORT_ROLES:
            abort(403, _("Only administrators and managers can download the labelled examples."))
        return view(*args, **kwargs)

    return wrapped


@bp.route("/tickets/<reference>/confirm", methods=["POST"])
@login_required
def confirm(reference: str) -> ResponseReturnValue:
    """Confirm the ticket's type, which stores it as a labelled example."""
    ticket = get_ticket_or_404(reference)
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, _("The form expired or was incomplete; reload the page and try again."))

    changed = confirm_type(db.session, ticket, current_user.email)
    db.session.commit()

    if changed:
        flash(
            _(
                "Type of %(reference)s confirmed as %(type)s.",
                reference=reference,
                type=type_label(ticket.type),
            ),
            "success",
        )
    else:
        flash(_("The type of %(reference)s was already confirmed.", reference=reference))
    return redirect(safe_next(form.next.data, url_for("tickets.show", reference=reference)))


def run_bulk_action(form: BulkForm, references: list[str]) -> str:
    """Run the chosen action on the tickets and return the message for the user."""
    tickets = find_tickets(db.session, references)
    actor = current_user.email

    if form.action.data == "assign":
        assignee = db.session.get(User, int(form.assignee.data)) if form.assignee.data else None
        changed = bulk_assign(db.session, tickets, assignee, actor)
        return ngettext("%(num)d ticket assigned.", "%(num)d tickets assigned.", changed)

    if form.action.data == "retype":
        policy = sla_policy(current_app.config)
        changed = bulk_retype(db.session, tickets, form.type.data or "", policy, actor)
        return ngettext(
            "%(num)d ticket retyped; its due date was recomputed.",
            "%(num)d tickets retyped; their due dates were recomputed.",
            changed,
        )

    result = merge_tickets(db.session, tickets, actor)
    return ngettext(
        "%(num)d ticket merged into %(reference)s.",
        "%(num)d tickets merged into %(reference)s.",
        len(result.closed),
        reference=result.kept.reference,
    )


def describe_bulk_error(exc: Exception) -> str:
    """Return the translated message for an error of a bulk action."""
    if isinstance(exc, RequesterMismatchError):
        return _(
            "Tickets of different requesters cannot be merged: %(first)s and %(second)s. "
            "Select tickets of one requester.",
            first=exc.first_email,
            second=exc.second_email,
        )
    if isinstance(exc, ClosedTicketError):
        return _("%(reference)s is closed; reopen it before merging.", reference=exc.reference)
    if isinstance(exc, MissingRequesterError):
        return _(
            "%(reference)s has no requester address, so it cannot be merged.",
            reference=exc.reference,
        )
    if isinstance(exc, MergeError):
        return _("Select at least two tickets to merge.")
    if isinstance(exc, TicketsNotFoundError):
        return _(
            "No ticket has the reference %(references)s.", references=", ".join(exc.references)
        )
    return _("Choose one of the listed request types.")


@bp.route("/bulk", methods=["POST"])
@login_required
def bulk() -> ResponseReturnValue:
    """Assign, retype or merge the tickets ticked in the queue."""
    form = make_bulk_form()
    back = safe_next(form.next.data, url_for("queue.index"))
    if not form.validate_on_submit():
        abort(400, _("Choose a listed action, assignee and request type."))
    references = request.form.getlist("ticket")
    if not references:
        flash(_("Tick at least one ticket first."), "error")
        return redirect(back)

    try:
        message = run_bulk_action(form, references)
    except (MergeError, TicketsNotFoundError, TransitionError) as exc:
        db.session.rollback()
        flash(describe_bulk_error(exc), "error")
        return redirect(back)
    db.session.commit()

    flash(message, "success")
    return redirect(back)


@bp.route("/corrections.zip")
@export_role_required
def corrections_zip() -> ResponseReturnValue:
    """Download the labelled examples as a zip in the classifier evaluation's format."""
    data, _count = build_corrections_zip(db.session, current_user.email)
    db.session.commit()

    response = Response(data, mimetype="application/zip")
    response.headers["Content-Disposition"] = 'attachment; filename="type-corrections.zip"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
