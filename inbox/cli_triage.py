"""The ``privacy-inbox corrections`` commands: export the labelled examples of type corrections."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext

from inbox.extensions import db
from inbox.services.triage import export_corrections, record_corrections_export

logger = logging.getLogger(__name__)

CLI_ACTOR = "cli"
"""Actor recorded in the audit trail for exports run from the command line."""


def register_triage_commands(app: Flask) -> None:
    """Attach the ``corrections`` command group to the app."""
    app.cli.add_command(corrections_group)


@click.group("corrections")
def corrections_group() -> None:
    """Work with the type corrections that staff made in triage."""


@corrections_group.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@with_appcontext
def corrections_export_command(directory: Path) -> None:
    """Write DIRECTORY/MANIFEST.csv and one text file per corrected ticket.

    The output is the classifier evaluation's format, so `privacy-inbox classify-eval DIRECTORY`
    scores the classifier on it. Files of the same names in DIRECTORY are replaced.
    """
    from inbox.cli import prepare_database

    prepare_database()
    try:
        count = export_corrections(db.session, directory)
    except OSError as exc:
        raise click.ClickException(f"cannot write to {directory}: {exc.strerror}") from exc
    record_corrections_export(db.session, CLI_ACTOR, count, str(directory))
    db.session.commit()
    click.echo(f"{count} labelled examples written to {directory}")
