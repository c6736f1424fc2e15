"""Administration of step workflows: list, edit with preview, compare and revert versions.

Saving stores a new version through ``add_version``. Tickets in flight keep the version they
were planned from, so only tickets opened afterwards follow the new one.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from inbox.enums import RequestType
from inbox.extensions import db
from inbox.models.workflow import WorkflowVersion
from inbox.services.workflows import add_version, latest_version
from inbox.views.admin import admin_required
from inbox.views.labels import TYPE_LABELS
from inbox.workflow import SHIPPED_WORKFLOW_DIR, Issue, Workflow, WorkflowError, parse_workflow_text

logger = logging.getLogger(__name__)

bp = Blueprint("workflow_admin", __name__, url_prefix="/admin/workflows")

MAX_WORKFLOW_CHARS = 200_000
"""Largest workflow text accepted from the editor, in characters, far above any shipped file."""


def _request_type_or_404(value: str) -> RequestType:
    try:
        return RequestType(value)
    except ValueError:
        abort(404, _("Request type %(type)s not found.", type=value))


def shipped_text(request_type: RequestType) -> str:
    """Return the text of the shipped default workflow of a type."""
    return (SHIPPED_WORKFLOW_DIR / f"{request_type.value}.yaml").read_text(encoding="utf-8")


def text_in_force(request_type: RequestType) -> tuple[str, WorkflowVersion | None]:
    """Return the workflow text in force and its stored version, or the shipped text and None."""
    version = latest_version(db.session, request_type.value)
    if version is None:
        return shipped_text(request_type), None
    return version.source_text, version


def diff_against_shipped(request_type: RequestType, text: str) -> str:
    """Return a unified diff from the shipped default to ``text``; empty when they match."""
    lines = difflib.unified_diff(
        shipped_text(request_type).splitlines(keepends=True),
        text.splitlines(keepends=True),
        fromfile=f"shipped/{request_type.value}.yaml",
        tofile=f"in force/{request_type.value}.yaml",
    )
    return "".join(lines)


def preview(request_type: RequestType, text: str) -> tuple[Workflow | None, list[Issue]]:
    """Validate a workflow text for a type without storing it."""
    file = f"{request_type.value}.yaml"
    workflow, issues = parse_workflow_text(text, file)
    if workflow is not None and workflow.request_type is not request_type:
        got = workflow.request_type.value
        return None, [Issue(file, None, "type", f"got {got!r}; allowed: {request_type.value}")]
    return workflow, issues


@bp.route("/")
@admin_required
def index() -> ResponseReturnValue:
    """List the request types with the workflow version in force."""
    rows = []
    for request_type in RequestType:
        text, version = text_in_force(request_type)
        rows.append(
            {
                "type": request_type,
                "label": TYPE_LABELS[request_type],
                "version": version,
                "changed": text != shipped_text(request_type),
            }
        )
    return render_template("admin/workflows.html", rows=rows)


def _render_editor(
    request_type: RequestType, text: str, status: int = 200, **extra: Any
) -> ResponseReturnValue:
    current, version = text_in_force(request_type)
    context = {
        "request_type": request_type,
        "label": TYPE_LABELS[request_type],
        "text": text,
        "version": version,
        "diff": diff_against_shipped(request_type, current),
        "workflow": None,
        "issues": [],
        "previewed": False,
        "language": "nl" if str(get_locale()) == "nl" else "en",
        **extra,
    }
    return render_template("admin/workflows_edit.html", **context), status


@bp.route("/<type_name>", methods=["GET", "POST"])
@admin_required
def edit(type_name: str) -> ResponseReturnValue:
    """Show the editor; POST previews or saves the text as a new version."""
    request_type = _request_type_or_404(type_name)
    if request.method == "GET":
        return _render_editor(request_type, text_in_force(request_type)[0])

    text = request.form.get("text", "").replace("\r\n", "\n")
    if len(text) > MAX_WORKFLOW_CHARS:
        abort(
            400,
            _("The workflow text is longer than %(limit)s characters.", limit=MAX_WORKFLOW_CHARS),
        )
    workflow, issues = preview(request_type, text)
    if request.form.get("action") != "save" or workflow is None:
        status = 200 if workflow is not None else 400
        return _render_editor(
            request_type, text, status, workflow=workflow, issues=issues, previewed=True
        )

    try:
        version = add_version(
            db.session, request_type.value, text, current_user.email, "admin editor"
        )
    except WorkflowError as exc:
        db.session.rollback()
        return _render_editor(request_type, text, 400, issues=exc.issues, previewed=True)
    db.session.commit()
    logger.info(
        "workflow %s version %s saved by %s", request_type.value, version.number, current_user.email
    )
    flash(
        _("Version %(number)s is now in force for new tickets.", number=version.number), "success"
    )
    return redirect(url_for("workflow_admin.edit", type_name=request_type.value))


@bp.route("/<type_name>/revert", methods=["POST"])
@admin_required
def revert(type_name: str) -> ResponseReturnValue:
    """Store the shipped default as a new version of the type."""
    request_type = _request_type_or_404(type_name)
    version = add_version(
        db.session,
        request_type.value,
        shipped_text(request_type),
        current_user.email,
        f"shipped default {request_type.value}.yaml",
    )
    db.session.commit()
    flash(
        _(
            "The shipped default is in force for new tickets as version %(number)s.",
            number=version.number,
        ),
        "success",
    )
    return redirect(url_for("workflow_admin.edit", type_name=request_type.value))
