"""Administration: the state of each polled mailbox."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, abort, render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from inbox.extensions import db
from inbox.models.mailbox import Mailbox
from inbox.models.user import Role

bp = Blueprint("admin", __name__, url_prefix="/admin")


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Allow only signed-in admins; others get 403."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user.role != Role.ADMIN:
            abort(403, _("Only administrators can open this page."))
        return view(*args, **kwargs)

    return wrapped


@bp.route("/mailboxes")
@admin_required
def mailboxes() -> ResponseReturnValue:
    """Show each mailbox with its last successful poll and last error."""
    rows = db.session.scalars(select(Mailbox).order_by(Mailbox.name)).all()
    return render_template("admin/mailboxes.html", mailboxes=rows)
