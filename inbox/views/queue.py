"""The queue: tickets sorted by due date, filterable by type and status, paginated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import format_timedelta, get_locale
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import select

from inbox.enums import RequestType, TicketStatus
from inbox.extensions import db
from inbox.models.ticket import Ticket
from inbox.models.types import utcnow
from inbox.services.workflows import next_steps_due, step_definition
from inbox.views import MAX_DATABASE_INT, parse_id

bp = Blueprint("queue", __name__)

OPEN_STATUSES = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.WAITING)
"""Statuses shown when the filter is "active" ("All open")."""

ACTIVE_FILTER = "active"
"""Status filter value of "All open", the default. The value ``open`` selects status Open."""


@dataclass(frozen=True)
class NextStep:
    """The earliest-due unfinished checklist step of a ticket, as the queue shows it."""

    title: str
    due_at: datetime
    is_overdue: bool


def next_steps_for(tickets: list[Ticket], now: datetime) -> dict[int, NextStep]:
    """Collect the next step due of every ticket on the page, by ticket id, in one query."""
    language = "nl" if str(get_locale()) == "nl" else "en"
    steps = next_steps_due(db.session, [ticket.id for ticket in tickets])
    result = {}
    for ticket_id, step in steps.items():
        assert step.due_at is not None
        title = step_definition(step).text("title", language)
        result[ticket_id] = NextStep(title, step.due_at, step.due_at < now)
    return result


def time_left_label(ticket: Ticket) -> tuple[str, str]:
    """Return the time left as words and a CSS class: overdue, soon (under 3 days) or ok."""
    if ticket.due_at is None or ticket.is_closed:
        return "–", "none"
    left = ticket.due_at - utcnow()
    if left < timedelta(0):
        return _("%(time)s overdue", time=format_timedelta(-left, threshold=1.1)), "overdue"
    css = "soon" if left < timedelta(days=3) else "ok"
    return format_timedelta(left, threshold=1.1), css


@bp.route("/")
@login_required
def index() -> ResponseReturnValue:
    """List tickets, nearest deadline first."""
    type_filter = request.args.get("type", "")
    status_filter = request.args.get("status", ACTIVE_FILTER)
    per_page = current_app.config["PAGE_SIZE"]
    # The row offset (page - 1) * per_page must fit in a 64-bit integer, as the database needs.
    page_number = min(parse_id(request.args.get("page", "1")) or 1, MAX_DATABASE_INT // per_page)
    attention_only = request.args.get("attention") == "1"

    query = select(Ticket)
    if type_filter in {t.value for t in RequestType}:
        query = query.where(Ticket.type == type_filter)
    if status_filter == ACTIVE_FILTER:
        query = query.where(Ticket.status.in_([str(s) for s in OPEN_STATUSES]))
    elif status_filter in {s.value for s in TicketStatus}:
        query = query.where(Ticket.status == status_filter)
    if attention_only:
        query = query.where(Ticket.needs_attention.is_(True))
    query = query.order_by(Ticket.due_at.is_(None), Ticket.due_at, Ticket.received_at, Ticket.id)

    page = db.paginate(query, page=page_number, per_page=per_page, error_out=False)
    return render_template(
        "queue.html",
        page=page,
        next_steps=next_steps_for(list(page.items), utcnow()),
        type_filter=type_filter,
        status_filter=status_filter,
        attention_only=attention_only,
        request_types=list(RequestType),
        statuses=list(TicketStatus),
        time_left_label=time_left_label,
    )
