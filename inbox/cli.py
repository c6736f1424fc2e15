"""The ``privacy-inbox`` command line: set-up, polling, import, demo, and read-outs for scripts."""

from __future__ import annotations

import json
import logging
import secrets
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import flask_migrate
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from inbox.audit import verify_chain
from inbox.config import redact_url
from inbox.enums import RequestType
from inbox.errors import InboxError
from inbox.extensions import db
from inbox.models.ticket import Ticket
from inbox.models.user import Role
from inbox.services.intake import import_path, poll_mailboxes
from inbox.services.tickets import sla_policy
from inbox.services.users import UserExistsError, change_password, create_user, find_user
from inbox.sla import compute_due_at, parse_received

logger = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples" / "mail"
"""The bundled sample mails that ``demo`` ingests."""

DEMO_MAILBOX = "privacy@example.org"
"""The address the sample mails are sent to, used as From of the demo's acknowledgements."""


def register_commands(app: Flask) -> None:
    """Attach the commands to the app, so ``flask`` and ``privacy-inbox`` both offer them."""
    for command in (
        init_command,
        poll_command,
        import_command,
        demo_command,
        create_user_command,
        reset_password_command,
        tickets_command,
        audit_group,
        sla_group,
        serve_command,
        worker_command,
        classify_eval_command,
    ):
        app.cli.add_command(command)

    from inbox.cli_triage import register_triage_commands
    from inbox.cli_workflows import register_workflow_commands

    register_triage_commands(app)
    register_workflow_commands(app)


def prepare_database() -> None:
    """Bring the database schema up to date with the Alembic migrations.

    :raises click.ClickException: the database cannot be opened; the message names DATABASE_URL.
    """
    try:
        flask_migrate.upgrade()
    except OperationalError as exc:
        url = redact_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
        raise click.ClickException(
            f"cannot open the database at DATABASE_URL {url}: {exc.orig}. Check that the "
            "folder exists and is writable, or that the database server runs and accepts the login"
        ) from exc


def ensure_admin(email: str, password: str | None) -> str | None:
    """Create the first admin unless one exists; return the generated password, if any."""
    if find_user(db.session, email) is not None:
        return None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    create_user(db.session, email=email, password=password, role=Role.ADMIN, actor="cli")
    db.session.commit()
    return generated


@click.command("init")
@with_appcontext
def init_command() -> None:
    """Create or upgrade the database schema and create the first admin account."""
    prepare_database()
    config = current_app.config
    generated = ensure_admin(config["ADMIN_EMAIL"], config["ADMIN_PASSWORD"])
    click.echo(f"database ready: {db.engine.url.render_as_string(hide_password=True)}")
    if generated:
        click.echo(
            f"admin account {config['ADMIN_EMAIL']} created, password (shown once): {generated}"
        )


@click.command("poll")
@click.option(
    "--once", is_flag=True, help="Poll each mailbox once and exit; non-zero on any error."
)
@click.option(
    "--mailbox", "mailbox_name", default=None, help="Poll only the mailbox with this name."
)
@click.option(
    "--idle/--no-idle",
    default=True,
    show_default=True,
    help="Without --once: wake on IMAP IDLE as well as on the INBOX_POLL_INTERVAL_SECONDS timer.",
)
@with_appcontext
def poll_command(once: bool, mailbox_name: str | None, idle: bool) -> None:
    """Fetch new mail from the configured IMAP mailboxes and turn it into tickets."""
    from inbox.jobs import run_idle_pollers, run_poll_loop

    prepare_database()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not once and idle:
        stop = threading.Event()
        try:
            run_idle_pollers(app, stop, only=mailbox_name)
        except KeyboardInterrupt:
            stop.set()
        return
    if not once:
        run_poll_loop(app)
        return
    try:
        results, errors = poll_mailboxes(db.session, current_app.config, only=mailbox_name)
    except InboxError as exc:
        raise click.ClickException(str(exc)) from exc
    if not results and not errors:
        raise click.ClickException(
            "no mailbox is configured: set INBOX_IMAP_HOST, INBOX_IMAP_USER and INBOX_IMAP_PASSWORD"
        )
    for result in results:
        if result.skipped:
            click.echo(f"{result.mailbox}: skipped, another poller holds its lock")
            continue
        click.echo(
            f"{result.mailbox}: {result.fetched} fetched, {result.new_tickets} new tickets, "
            f"{result.replies} replies, {result.quarantined} need attention, "
            f"{result.oversize} oversize, {result.marked} marked"
        )
    for error in errors:
        click.echo(f"error: {error}", err=True)
    if errors:
        sys.exit(1)


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@with_appcontext
def import_command(paths: tuple[Path, ...]) -> None:
    """Import mail from .eml files, folders of them, a Maildir or an mbox."""
    prepare_database()
    for path in paths:
        try:
            result = import_path(db.session, path, current_app.config, datetime.now(UTC))
        except InboxError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(
            f"{path}: {result.files} mails, {result.files - result.stored} already stored, "
            f"{result.new_tickets} new tickets, {result.replies} replies, "
            f"{result.quarantined} need attention"
        )


def print_summary(now: datetime) -> None:
    """Print tickets per type, how many are overdue, and the nearest open deadline."""
    tickets = db.session.scalars(select(Ticket)).all()
    counts = Counter(ticket.type for ticket in tickets)
    click.echo(f"{len(tickets)} tickets")
    for request_type in RequestType:
        if counts[request_type]:
            click.echo(f"  {request_type.value:<20} {counts[request_type]}")

    open_due = [(t, t.due_at) for t in tickets if t.due_at is not None and not t.is_closed]
    if not open_due:
        return
    overdue = sum(1 for _, due in open_due if due < now)
    nearest, due = min(open_due, key=lambda pair: pair[1])
    due_local = due.astimezone(ZoneInfo(current_app.config["ORG_TIMEZONE"]))
    state = "overdue" if due < now else "due"
    click.echo(f"{overdue} open tickets are past their deadline")
    click.echo(
        f"nearest deadline: {nearest.reference} ({nearest.type}) {state} {due_local.isoformat()}"
    )


@click.command("demo")
@click.option("--serve/--no-serve", default=True, help="Serve the web interface after the import.")
@click.option(
    "--port", default=5000, show_default=True, help="Port of the web interface on 127.0.0.1."
)
@with_appcontext
def demo_command(serve: bool, port: int) -> None:
    """Set up the database, import the bundled sample mails, summarise, and serve the web UI."""
    prepare_database()
    config = current_app.config
    generated = ensure_admin(config["ADMIN_EMAIL"], config["ADMIN_PASSWORD"])
    if generated:
        click.echo(
            f"admin account {config['ADMIN_EMAIL']} created, password (shown once): {generated}"
        )
    if not config["MAIL_FROM"] and "@" not in config["IMAP_USER"]:
        # The samples are addressed to this mailbox; acknowledgements go to instance/outbox/
        # unless INBOX_SMTP_HOST is set.
        config["MAIL_FROM"] = DEMO_MAILBOX
    result = import_path(db.session, SAMPLES_DIR, config, datetime.now(UTC))
    click.echo(
        f"imported {result.files} sample mails: {result.new_tickets} new tickets, "
        f"{result.replies} replies, {result.quarantined} need attention"
    )
    print_summary(datetime.now(UTC))
    if serve:
        from inbox.serve import serve_app

        serve_app(current_app._get_current_object(), "127.0.0.1", port)  # type: ignore[attr-defined]


@click.command("create-user")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default=Role.AGENT.value,
    show_default=True,
)
@click.password_option(help="Password; asked for when not given.")
@with_appcontext
def create_user_command(email: str, name: str, role: str, password: str) -> None:
    """Create a user who can sign in to the web interface."""
    prepare_database()
    try:
        create_user(
            db.session, email=email, password=password, role=Role(role), name=name, actor="cli"
        )
    except (UserExistsError, InboxError) as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"user {email} created with role {role}")


@click.command("reset-password")
@click.argument("email")
@click.password_option(help="New password; asked for when not given.")
@with_appcontext
def reset_password_command(email: str, password: str) -> None:
    """Set a new password for a user, such as a lost first admin password."""
    prepare_database()
    try:
        change_password(db.session, email, password, actor="cli")
    except InboxError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"password of {email} changed")


@click.command("tickets")
@click.option(
    "--json", "as_json", is_flag=True, help="Print every ticket as one JSON object per line."
)
@with_appcontext
def tickets_command(as_json: bool) -> None:
    """List tickets, nearest deadline first."""
    prepare_database()
    tickets = db.session.scalars(
        select(Ticket).order_by(Ticket.due_at.is_(None), Ticket.due_at, Ticket.id)
    ).all()
    zone = ZoneInfo(current_app.config["ORG_TIMEZONE"])
    for ticket in tickets:
        if as_json:
            click.echo(json.dumps(ticket.to_json(zone), ensure_ascii=False))
        else:
            due = ticket.due_at.astimezone(zone).isoformat() if ticket.due_at else "-"
            click.echo(f"{ticket.reference}  {ticket.type:<18} {ticket.status:<8} due {due}")


@click.group("audit")
def audit_group() -> None:
    """Inspect the audit trail."""


@audit_group.command("verify")
@with_appcontext
def audit_verify_command() -> None:
    """Recompute the hash chain of the audit trail; exit 1 at the first broken link."""
    prepare_database()
    report = verify_chain(db.session)
    if not report.is_intact:
        click.echo(f"audit chain broken at event {report.first_bad_id}: {report.reason}", err=True)
        sys.exit(1)
    click.echo(f"audit chain intact: {report.checked} events")


@click.group("sla")
def sla_group() -> None:
    """Deadline arithmetic, for checking the rule by hand."""


@sla_group.command("due")
@click.option("--type", "type_name", required=True, help="Request type, such as access or breach.")
@click.option("--received", required=True, help="Receipt time in ISO 8601 with offset.")
@with_appcontext
def sla_due_command(type_name: str, received: str) -> None:
    """Print the due moment of a request received at a given time."""
    try:
        received_at = parse_received(received)
        due = compute_due_at(type_name, received_at, sla_policy(current_app.config))
    except InboxError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(due.isoformat() if due else "none: this type has no legal deadline")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, help="Port to listen on.")
@with_appcontext
def serve_command(host: str, port: int) -> None:
    """Serve the web interface; without REDIS_URL it also polls the mailbox on a timer."""
    from inbox.serve import serve_app

    prepare_database()
    serve_app(current_app._get_current_object(), host, port)  # type: ignore[attr-defined]


@click.command("worker")
@with_appcontext
def worker_command() -> None:
    """Run an RQ worker with the periodic mailbox poll (needs REDIS_URL)."""
    from inbox.jobs import run_worker

    try:
        run_worker(current_app._get_current_object())  # type: ignore[attr-defined]
    except InboxError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("classify-eval")
@click.argument("directory", type=click.Path(path_type=Path))
def classify_eval_command(directory: Path) -> None:
    """Score the classifier on DIR/MANIFEST.csv: per type, per language and a confusion matrix."""
    from inbox.classify_eval import evaluate, format_report

    try:
        report = evaluate(directory)
    except (InboxError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_report(report))


def make_app() -> Flask:
    """Build the app for the command line."""
    from inbox import create_app

    return create_app()


def main() -> None:
    """Run the ``privacy-inbox`` command."""
    cli = FlaskGroup(
        create_app=make_app,
        add_default_commands=True,
        add_version_option=False,
        help="privacy-inbox: GDPR requests and breach reports from a shared mailbox.",
    )
    try:
        cli.main(prog_name="privacy-inbox")
    except InboxError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
