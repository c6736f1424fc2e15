"""Blueprints, one per area, and the handlers shared by all of them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import render_template
from flask_babel import format_datetime, get_locale

from inbox.extensions import db

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.exceptions import HTTPException


def local_time(value: datetime | None, fmt: str = "medium") -> str:
    """Format an aware datetime in the organisation's time zone and the reader's language."""
    if value is None:
        return "–"
    return format_datetime(value, fmt)


def register_views(app: Flask) -> None:
    """Register the blueprints, template helpers and error pages."""
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

    @app.context_processor
    def inject_globals() -> dict[str, Any]:
        from inbox import LANGUAGES
        from inbox.views.labels import audit_details, audit_label, status_label, type_label

        return {
            "get_locale": get_locale,
            "languages": LANGUAGES,
            "type_label": type_label,
            "audit_label": audit_label,
            "audit_details": audit_details,
            "status_label": status_label,
            "org_name": app.config["ORG_NAME"],
        }

    @app.errorhandler(404)
    def not_found(error: HTTPException) -> tuple[str, int]:
        return render_template("errors/error.html", code=404, description=error.description), 404

    @app.errorhandler(403)
    def forbidden(error: HTTPException) -> tuple[str, int]:
        return render_template("errors/error.html", code=403, description=error.description), 403

    @app.errorhandler(500)
    def server_error(error: Exception) -> tuple[str, int]:
        db.session.rollback()
        return render_template("errors/error.html", code=500, description=None), 500
