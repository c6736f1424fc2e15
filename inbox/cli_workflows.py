"""``privacy-inbox workflows`` and ``privacy-inbox outbox`` commands."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext

from inbox.enums import RequestType
from inbox.extensions import db
from inbox.workflow import SHIPPED_WORKFLOW_DIR, check_file, load_directory

logger = logging.getLogger(__name__)


def register_workflow_commands(app: Flask) -> None:
    """Attach the ``workflows`` and ``outbox`` command groups to the app."""
    app.cli.add_command(workflows_group)
    app.cli.add_command(outbox_group)


@click.group("workflows")
def workflows_group() -> None:
    """Check, list and publish step workflows."""


@workflows_group.command("check")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def check_command(files: tuple[Path, ...]) -> None:
    """Validate workflow FILES (default: the shipped workflows); exit 1 on any error."""
    if files:
        issues = [issue for path in files for issue in check_file(path)[1]]
        checked = len(files)
    else:
        workflows, issues = load_directory(SHIPPED_WORKFLOW_DIR)
        checked = len(workflows) + len({issue.file for issue in issues})
    for issue in issues:
        click.echo(f"error: {issue}", err=True)
    if issues:
        click.echo(f"{len(issues)} errors in {checked} files", err=True)
        sys.exit(1)
    click.echo(f"{checked} workflow files are valid")


@workflows_group.command("list")
@with_appcontext
def list_command() -> None:
    """Show the workflow version in force per request type."""
    from inbox.services.workflows import latest_version

    for request_type in RequestType:
        version = latest_version(db.session, request_type.value)
        if version is None:
            click.echo(f"{request_type.value}: shipped file (not stored yet)")
        else:
            click.echo(
                f"{request_type.value}: version {version.number} from {version.origin}, "
                f"{version.created_at.isoformat()} by {version.created_by}"
            )


@workflows_group.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--actor", default="cli", show_default=True, help="Name recorded in the audit log.")
@with_appcontext
def publish_command(file: Path, actor: str) -> None:
    """Store FILE as the newest version of its type; tickets in flight keep their version."""
    from inbox.services.workflows import add_version
    from inbox.workflow import WorkflowError

    workflow, issues = check_file(file)
    if workflow is None:
        for issue in issues:
            click.echo(f"error: {issue}", err=True)
        sys.exit(1)
    try:
        version = add_version(
            db.session,
            workflow.request_type.value,
            file.read_text(encoding="utf-8"),
            actor,
            file.name,
        )
    except WorkflowError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    db.session.commit()
    click.echo(f"{workflow.request_type.value}: version {version.number} is now in force")


@click.group("outbox")
def outbox_group() -> None:
    """Deliver outgoing mail."""


@outbox_group.command("send")
@with_appcontext
def send_command() -> None:
    """Try every queued outgoing mail once; exit 1 when any delivery failed."""
    from inbox.services.replies import send_queued_mail

    sent, failed = send_queued_mail(db.session)
    click.echo(f"{sent} mails delivered, {failed} failed")
    if failed:
        sys.exit(1)
