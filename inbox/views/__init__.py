"""Blueprints, one per area, and the handlers shared by all of them."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import abort, render_template, request
from flask_babel import format_datetime, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from inbox.extensions import db

if TYPE_CHECKING:
    from flask import Flask, Response
    from flask_babel import LazyString

logger = logging.getLogger(__name__)

MAX_DATABASE_INT = 2**63 - 1
"""Largest id that SQLite INTEGER and PostgreSQL BIGINT store; larger numbers cannot be ids."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
"""Policy for every page: no inline style or script, no framing, forms post only to this site."""

ERROR_TITLES: dict[int, LazyString] = {
    400: _l("Bad request"),
    403: _l("Not allowed"),
    404: _l("Not found"),
    405: _l("Method not allowed"),
    413: _l("Request too large"),
    500: _l("Something went wrong"),
}
"""Headings of the error pages by HTTP status."""

ERROR_DESCRIPTIONS: dict[int, LazyString] = {
    400: _l("The request was incomplete or invalid. Go back and try again."),
    403: _l("You do not have the right to open this page."),
    404: _l("This page does not exist. Check the address, or start again from the queue."),
    405: _l("This address does not accept this kind of request. Start again from the queue."),
    413: _l("The data sent is larger than this site accepts. Send a smaller file or text."),
    500: _l("The error was logged. Try again, or tell your administrator."),
}
"""Our texts for errors raised without a description of their own, in place of Werkzeug's."""


def local_time(value: datetime | None, fmt: str = "medium") -> str:
    """Format an aware datetime in the organisation's time zone and the reader's language."""
    if value is None:
        return "–"
    return format_datetime(value, fmt)


def interface_language() -> str:
    """Return the interface language code for `<html lang>` and the switch: ``en`` or ``nl``."""
    return str(get_locale().language) if get_locale() is not None else "en"


def parse_id(value: str) -> int | None:
    """Return a form value as a database id, or None when it is not a storable positive number."""
    if not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    if number > MAX_DATABASE_INT:
        return None
    return number


def reject_huge_ids(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Abort with 404 when an integer in the URL is too large for the database to hold."""
    for value in (values or {}).values():
        if isinstance(value, int) and value > MAX_DATABASE_INT:
            abort(404, _("No record has the number %(value)s.", value=value))


def reject_nul_characters() -> None:
    """Abort with 400 when a form or query value contains NUL, which PostgreSQL cannot store."""
    fields = [*request.args.items(multi=True), *request.form.items(multi=True)]
    for name, value in fields:
        if "\x00" in name or "\x00" in value:
            printable_name = name.replace("\x00", "\\0")
            abort(
                400,
                _(
                    "The field %(name)s contains a NUL character, which is not allowed.",
                    name=printable_name,
                ),
            )
    for value in (request.view_args or {}).values():
        if isinstance(value, str) and "\x00" in value:
            abort(400, _("The address contains a NUL character, which is not allowed."))


def add_security_headers(response: Response) -> Response:
    """Set framing, referrer, content and caching rules, keeping any stricter one a view set."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Downloads set "default-src 'none'; sandbox", which is stricter, so only fill a gap.
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    # Pages of a signed-in user show requesters' personal data, so no cache may keep them.
    if request.endpoint != "static" and current_user and current_user.is_authenticated:
        response.headers["Cache-Control"] = "no-store"
    return response


def render_error(error: HTTPException) -> tuple[str, int, dict[str, str]]:
    """Render the error page of an HTTP error, with our text when Werkzeug's default is all."""
    code = error.code or 500
    description = error.description
    if description == type(error).description or not description:
        description = ERROR_DESCRIPTIONS.get(code)
    title = ERROR_TITLES.get(code, ERROR_TITLES[400 if code < 500 else 500])
    headers = {}
    # RFC 9110 requires a 405 response to list the methods the address accepts.
    valid_methods = getattr(error, "valid_methods", None)
    if valid_methods:
        headers["Allow"] = ", ".join(valid_methods)
    page = render_template("errors/error.html", code=code, title=title, description=description)
    return page, code, headers


def register_error_handlers(app: Flask) -> None:
    """Register the translated error pages."""

    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> tuple[str, int]:
        logger.info("CSRF check failed on %s: %s", request.path, error.description)
        description = _(
            "This form has expired or its security token is missing. Reload the page and try again."
        )
        return (
            render_template(
                "errors/error.html", code=400, title=ERROR_TITLES[400], description=description
            ),
            400,
        )

    for code in (400, 403, 404, 405, 413):
        app.register_error_handler(code, render_error)

    @app.errorhandler(500)
    def server_error(error: Exception) -> tuple[str, int]:
        db.session.rollback()
        return (
            render_template(
                "errors/error.html",
                code=500,
                title=ERROR_TITLES[500],
                description=ERROR_DESCRIPTIONS[500],
            ),
            500,
        )


def register_views(app: Flask) -> None:
    """Register the blueprints, template helpers, request checks and error pages."""
    from inbox.views.admin import bp as admin_bp
    from inbox.views.auth import bp as auth_bp
    from inbox.views.queue import bp as queue_bp
    from inbox.views.tickets import bp as tickets_bp
    from inbox.views.triage import bp as triage_bp

    for blueprint in (auth_bp, queue_bp, tickets_bp, admin_bp, triage_bp):
        app.register_blueprint(blueprint)
    from inbox.views.checklist import bp as checklist_bp

    app.register_blueprint(checklist_bp)
    from inbox.views.workflow_admin import bp as workflow_admin_bp

    app.register_blueprint(workflow_admin_bp)

    app.jinja_env.filters["local_time"] = local_time
    app.url_value_preprocessor(reject_huge_ids)
    app.before_request(reject_nul_characters)
    app.after_request(add_security_headers)

    @app.context_processor
    def inject_globals() -> dict[str, Any]:
        from inbox import LANGUAGES
        from inbox.views.labels import (
            attention_label,
            audit_details,
            audit_label,
            delivery_label,
            status_label,
            type_label,
        )

        return {
            "get_locale": get_locale,
            "interface_language": interface_language,
            "languages": LANGUAGES,
            "type_label": type_label,
            "audit_label": audit_label,
            "audit_details": audit_details,
            "status_label": status_label,
            "attention_label": attention_label,
            "delivery_label": delivery_label,
            "org_name": app.config["ORG_NAME"],
        }

    register_error_handlers(app)
