"""Administration: mailboxes to poll, with their last successful poll and last error."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, NumberRange, Optional

from inbox.errors import InputError
from inbox.extensions import db
from inbox.models.mailbox import Mailbox
from inbox.models.user import Role
from inbox.services.mailboxes import MailboxInput, create_mailbox, delete_mailbox, update_mailbox

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


class MailboxForm(FlaskForm):
    """Connection and handling settings of one IMAP mailbox."""

    name = StringField(_l("Name"), validators=[DataRequired()])
    host = StringField(_l("IMAP server"), validators=[DataRequired()])
    port = IntegerField(_l("Port"), default=993, validators=[DataRequired(), NumberRange(1, 65535)])
    security = SelectField(
        _l("Security"),
        choices=[
            SelectChoice("ssl", "SSL/TLS"),
            SelectChoice("starttls", "STARTTLS"),
            SelectChoice("none", _l("None (loopback only)")),
        ],
    )
    username = StringField(_l("User name"), validators=[DataRequired()])
    # new-password keeps browsers from filling in the signed-in admin's own password.
    password = PasswordField(
        _l("Password"), validators=[Optional()], render_kw={"autocomplete": "new-password"}
    )
    folder = StringField(_l("Folder"), default="INBOX")
    processed_action = SelectField(
        _l("After processing"),
        choices=[
            SelectChoice("seen", _l("Mark as read")),
            SelectChoice("move", _l("Move to folder")),
        ],
    )
    processed_folder = StringField(_l("Folder for processed mail"), default="Processed")
    enabled = BooleanField(_l("Poll this mailbox"), default=True)
    submit = SubmitField(_l("Save"))

    def to_input(self) -> MailboxInput:
        """Return the form's values for the mailbox service."""
        return MailboxInput(
            name=self.name.data or "",
            host=self.host.data or "",
            port=self.port.data or 0,
            security=self.security.data or "",
            username=self.username.data or "",
            password=self.password.data or "",
            folder=self.folder.data or "INBOX",
            processed_action=self.processed_action.data or "seen",
            processed_folder=self.processed_folder.data or "Processed",
            enabled=bool(self.enabled.data),
        )


class DeleteForm(FlaskForm):
    """Confirm a deletion."""

    submit = SubmitField(_l("Delete"))


def get_mailbox_or_404(mailbox_id: int) -> Mailbox:
    """Load a mailbox by id, or abort with 404 naming it."""
    mailbox = db.session.get(Mailbox, mailbox_id)
    if mailbox is None:
        abort(404, _("Mailbox %(id)s does not exist.", id=mailbox_id))
    return mailbox


@bp.route("/mailboxes", methods=["GET", "POST"])
@admin_required
def mailboxes() -> ResponseReturnValue:
    """List mailboxes with their poll state, and add one."""
    form = MailboxForm()
    if form.validate_on_submit():
        try:
            create_mailbox(
                db.session, form.to_input(), current_app.config["SECRET_KEY"], current_user.email
            )
        except InputError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash(_("Mailbox added. It is polled from the next round on."), "success")
            return redirect(url_for("admin.mailboxes"))
    rows = db.session.scalars(select(Mailbox).order_by(Mailbox.name)).all()
    return render_template(
        "admin/mailboxes.html", mailboxes=rows, form=form, delete_form=DeleteForm()
    )


@bp.route("/mailboxes/<int:mailbox_id>", methods=["GET", "POST"])
@admin_required
def edit_mailbox(mailbox_id: int) -> ResponseReturnValue:
    """Change a mailbox; leaving the password empty keeps the stored one."""
    mailbox = get_mailbox_or_404(mailbox_id)
    if mailbox.name == "default":
        abort(403, _("The default mailbox is set with INBOX_IMAP_* environment variables."))
    form = MailboxForm(obj=mailbox)
    if form.validate_on_submit():
        try:
            update_mailbox(
                db.session,
                mailbox,
                form.to_input(),
                current_app.config["SECRET_KEY"],
                current_user.email,
            )
        except InputError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash(_("Mailbox saved."), "success")
            return redirect(url_for("admin.mailboxes"))
    form.password.data = ""
    return render_template("admin/mailbox_edit.html", mailbox=mailbox, form=form)


@bp.route("/mailboxes/<int:mailbox_id>/delete", methods=["POST"])
@admin_required
def remove_mailbox(mailbox_id: int) -> ResponseReturnValue:
    """Stop polling a mailbox; its stored mail and tickets stay."""
    mailbox = get_mailbox_or_404(mailbox_id)
    if mailbox.name == "default" or not DeleteForm().validate_on_submit():
        abort(400, _("This mailbox cannot be deleted here."))
    delete_mailbox(db.session, mailbox, current_user.email)
    db.session.commit()
    flash(_("Mailbox deleted; its tickets are kept."), "success")
    return redirect(url_for("admin.mailboxes"))
