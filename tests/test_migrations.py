"""The Alembic migrations build exactly the schema that the models declare."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import flask_migrate
import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from inbox import create_app
from inbox.extensions import db
from inbox.mail.store import content_digest
from tests.conftest import database_kind
from tests.servers import postgres_url

BEFORE_CONTENT_TABLE = "8b3e6f1d4a27"
"""The last revision that kept raw mail bytes in raw_message.raw."""

BEFORE_WIRE_FORM_KEY = "e4a9c7b21f60"
"""The last revision that keyed raw mail by the SHA-256 of its exact bytes."""

BEFORE_FILES_IN_RAW_MAIL = "a3c5e8f0b1d2"
"""The last revision that kept every attachment's bytes in its blob row."""


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """Return the URL of a database with no tables, on the suite's database kind."""
    if database_kind() == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    server = make_url(postgres_url())
    name = f"inbox_migrations_{os.getpid()}"
    admin = psycopg.connect(
        host=server.host,
        port=server.port,
        user=server.username,
        dbname=server.database,
        autocommit=True,
    )
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_migrations_match_models(empty_database_url: str, tmp_path: Path) -> None:
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": empty_database_url, "SECRET_KEY": "test"},
        instance_path=str(tmp_path / "instance"),
    )
    with app.app_context():
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, db.metadata)
        db.engine.dispose()

    assert differences == []


def test_init_command_runs_migrations(empty_database_url: str, tmp_path: Path) -> None:
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": empty_database_url,
            "SECRET_KEY": "test",
            "ADMIN_PASSWORD": "correct-horse-battery",
        },
        instance_path=str(tmp_path / "instance"),
    )

    result = app.test_cli_runner().invoke(args=["init"])
    second = app.test_cli_runner().invoke(args=["init"])

    with app.app_context():
        db.engine.dispose()
    assert result.exit_code == 0, result.output
    assert second.exit_code == 0, second.output
    assert "database ready" in second.output


def test_raw_bytes_move_to_content_table(empty_database_url: str, tmp_path: Path) -> None:
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": empty_database_url, "SECRET_KEY": "test"},
        instance_path=str(tmp_path / "instance"),
    )
    insert_raw = text(
        "INSERT INTO raw_message (id, sha256, message_id, size, raw, internaldate, stored_at, "
        "error, attempts, source) VALUES (7, 'abc', 'm@example.org', 5, :raw, "
        "'2026-12-01 10:00:00', '2026-12-01 10:00:00', '', 0, 'test')"
    )
    with app.app_context():
        flask_migrate.upgrade(revision=BEFORE_CONTENT_TABLE)
        with db.engine.begin() as connection:
            connection.execute(insert_raw, {"raw": b"Subject: x\r\n\r\nbody"})

        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            moved = connection.execute(text("SELECT raw_message_id, raw FROM raw_message_content"))
            moved_rows = [(row[0], bytes(row[1])) for row in moved]
            columns = {column["name"] for column in inspect(connection).get_columns("raw_message")}

        flask_migrate.downgrade(revision=BEFORE_CONTENT_TABLE)
        with db.engine.connect() as connection:
            restored = connection.execute(text("SELECT raw FROM raw_message WHERE id = 7")).scalar()
        db.engine.dispose()

    assert moved_rows == [(7, b"Subject: x\r\n\r\nbody")]
    assert "raw" not in columns
    assert bytes(restored) == b"Subject: x\r\n\r\nbody"


def test_upgrade_rekeys_lf_mail(empty_database_url: str, tmp_path: Path) -> None:
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": empty_database_url, "SECRET_KEY": "test"},
        instance_path=str(tmp_path / "instance"),
    )
    saved = b"Subject: x\n\nbody\n"
    insert_raw = text(
        "INSERT INTO raw_message (id, sha256, message_id, size, internaldate, stored_at, "
        "error, attempts, source) VALUES (7, :key, 'm@example.org', 16, "
        "'2026-12-01 10:00:00', '2026-12-01 10:00:00', '', 0, 'test')"
    )
    insert_content = text("INSERT INTO raw_message_content (raw_message_id, raw) VALUES (7, :raw)")
    select_key = text("SELECT sha256 FROM raw_message WHERE id = 7")
    with app.app_context():
        flask_migrate.upgrade(revision=BEFORE_WIRE_FORM_KEY)
        with db.engine.begin() as connection:
            connection.execute(insert_raw, {"key": hashlib.sha256(saved).hexdigest()})
            connection.execute(insert_content, {"raw": saved})

        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            upgraded = connection.execute(select_key).scalar()
        flask_migrate.downgrade(revision=BEFORE_WIRE_FORM_KEY)
        with db.engine.connect() as connection:
            downgraded = connection.execute(select_key).scalar()
        db.engine.dispose()

    assert upgraded == content_digest(b"Subject: x\r\n\r\nbody\r\n")
    assert downgraded == hashlib.sha256(saved).hexdigest()


def test_downgrade_copies_files_back_from_raw_mail(empty_database_url: str, tmp_path: Path) -> None:
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": empty_database_url, "SECRET_KEY": "test"},
        instance_path=str(tmp_path / "instance"),
    )
    mail = EmailMessage()
    mail["From"] = "Anna de Vries <anna@example.net>"
    mail["To"] = "privacy@example.org"
    mail["Subject"] = "Inzageverzoek"
    mail["Message-ID"] = "<migration-file@example.net>"
    mail.set_content("Ik wil inzage in mijn gegevens.")
    mail.add_attachment(b"%PDF-1.4 scan", "application", "pdf", filename="scan.pdf")
    saved = tmp_path / "request.eml"
    saved.write_bytes(mail.as_bytes())
    with app.app_context():
        flask_migrate.upgrade()
        result = app.test_cli_runner().invoke(args=["import", str(saved)])
        with db.engine.connect() as connection:
            upgraded = connection.execute(text("SELECT data FROM blob")).scalar()
        flask_migrate.downgrade(revision=BEFORE_FILES_IN_RAW_MAIL)
        with db.engine.connect() as connection:
            downgraded = connection.execute(text("SELECT data FROM blob")).scalar()
        db.engine.dispose()

    assert result.exit_code == 0, result.output
    assert upgraded is None
    assert bytes(downgraded) == b"%PDF-1.4 scan"
