"""Sign-in, sign-out and the language switch."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_time
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SubmitField
from wtforms.validators import DataRequired

from inbox.extensions import db, login_manager
from inbox.models.types import utcnow
from inbox.models.user import User
from inbox.services.users import SignInThrottledError, authenticate, record_logout

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    """E-mail address and password."""

    email = EmailField(_l("E-mail address"), validators=[DataRequired()])
    password = PasswordField(_l("Password"), validators=[DataRequired()])
    submit = SubmitField(_l("Sign in"))


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """Load the signed-in user for Flask-Login."""
    return db.session.get(User, int(user_id))


def is_safe_next(target: str | None) -> bool:
    """Allow only same-site relative paths as the place to go after sign-in."""
    if not target:
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc and target.startswith("/")


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Show the sign-in form and sign the user in."""
    if current_user.is_authenticated:
        return redirect(url_for("queue.index"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = authenticate(
                db.session, form.email.data or "", form.password.data or "", utcnow()
            )
        except SignInThrottledError as exc:
            db.session.commit()
            flash(
                _(
                    "Too many failed sign-ins for this address. Sign-in is blocked until "
                    "%(time)s; try again then, or ask an administrator to check the account.",
                    time=format_time(exc.until, "short"),
                ),
                "error",
            )
            return render_template("auth/login.html", form=form), 429
        db.session.commit()
        if user is not None:
            login_user(user)
            target = request.args.get("next")
            return redirect(target if is_safe_next(target) else url_for("queue.index"))
        flash(_("Unknown e-mail address or wrong password."), "error")
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> ResponseReturnValue:
    """Sign the user out."""
    record_logout(db.session, current_user)
    db.session.commit()
    logout_user()
    return redirect(url_for("auth.login"))


@bp.route("/language/<code>", methods=["POST"])
def set_language(code: str) -> ResponseReturnValue:
    """Switch the interface language for this browser session."""
    from inbox import LANGUAGES

    if code in LANGUAGES:
        session["lang"] = code
    target = request.form.get("next")
    return redirect(target if is_safe_next(target) else url_for("queue.index"))
