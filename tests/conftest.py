"""Fixtures: the app on SQLite or PostgreSQL, a private Dovecot, Redis and an SMTP sink.

The database comes from INBOX_TEST_DB: ``sqlite`` (default) or ``postgresql``. The test command
in the README runs the whole suite once for each.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text

from inbox import create_app
from inbox.extensions import db
from inbox.models.user import Role
from inbox.services.users import create_user
from tests.servers import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    Dovecot,
    SmtpSink,
    postgres_url,
    redis_url,
    require_postgres,
    require_redis,
    start_dovecot,
)

ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "correct-horse-battery"


def database_kind() -> str:
    """Return the database the suite runs on, from INBOX_TEST_DB."""
    kind = os.environ.get("INBOX_TEST_DB", "sqlite")
    if kind not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"INBOX_TEST_DB must be sqlite or postgresql, got {kind!r}")
    return kind


def reset_postgres_schema(url: str) -> None:
    """Drop every table of the test database, so tables from an older model version go too."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return the URL of an empty test database, checking that its server responds."""
    if database_kind() == "postgresql":
        url = postgres_url()
        require_postgres(url)
        reset_postgres_schema(url)
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """Run one private Dovecot for the whole test session."""
    workdir = Path(tempfile.mkdtemp(prefix="pi-dc-", dir="/tmp"))
    server = start_dovecot(workdir)
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Iterator[Dovecot]:
    """Give a test an empty INBOX and no Processed folder."""
    with dovecot.client() as client:
        for folder in ("Processed",):
            if client.folder_exists(folder):
                client.delete_folder(folder)
        client.select_folder("INBOX")
        uids = client.search("ALL")
        if uids:
            client.delete_messages(uids)
            client.expunge()
    yield dovecot


def base_config(database_url: str, tmp_path: Path) -> dict[str, Any]:
    """Return the settings every test app starts from."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "WTF_CSRF_ENABLED": False,
        "REDIS_URL": "",
        "IMAP_HOST": "",
        "POLL_INLINE": False,
        "ADMIN_EMAIL": ADMIN_EMAIL,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
    }


def empty_database() -> None:
    """Delete every row, so each test starts from empty tables."""
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{table.name}"' for table in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def make_app(database_url: str, tmp_path: Path) -> Iterator[Any]:
    """Return a factory for apps with extra settings; tables are emptied after the test."""
    apps: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        config = base_config(database_url, tmp_path)
        config.update(overrides)
        app = create_app(config, instance_path=str(tmp_path / "instance"))
        with app.app_context():
            # The schema comes from the migrations, as in production; after the first test
            # this only reads the current revision.
            flask_migrate.upgrade()
        apps.append(app)
        return app

    yield factory

    if apps:
        with apps[0].app_context():
            db.session.remove()
            empty_database()
            db.session.remove()
            db.engine.dispose()
    for app in apps[1:]:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    """The app with its default test settings and an app context pushed."""
    application = make_app()
    with application.app_context():
        yield application
        db.session.remove()


@pytest.fixture
def imap_app(make_app: Any, mailbox: Dovecot) -> Iterator[Flask]:
    """The app polling the private Dovecot's INBOX, with an app context pushed."""
    application = make_app(**imap_settings(mailbox))
    with application.app_context():
        yield application
        db.session.remove()


def imap_settings(mailbox: Dovecot) -> dict[str, Any]:
    """Return the app settings that poll the private Dovecot's INBOX."""
    return {
        "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": mailbox.port,
        "IMAP_SECURITY": "none",
        "IMAP_USER": DEFAULT_USER,
        "IMAP_PASSWORD": DEFAULT_PASSWORD,
        "IMAP_TIMEOUT_SECONDS": 10.0,
    }


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of ``app``."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """A CLI runner of ``app``."""
    return app.test_cli_runner()


@pytest.fixture
def admin(app: Flask) -> Any:
    """An admin account."""
    user = create_user(
        db.session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role=Role.ADMIN, actor="test"
    )
    db.session.commit()
    return user


class AuthActions:
    """Sign in and out through the real login form."""

    def __init__(self, client: FlaskClient) -> None:
        self._client = client

    def login(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> Any:
        return self._client.post("/login", data={"email": email, "password": password})


@pytest.fixture
def auth(client: FlaskClient, admin: Any) -> AuthActions:
    """Login helper bound to ``client``, with the admin account in place."""
    return AuthActions(client)


@pytest.fixture(scope="session")
def redis_test_url() -> str:
    """Return the test Redis URL after checking that Redis responds."""
    url = redis_url()
    require_redis(url)
    return url


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An in-process SMTP server that keeps what it receives."""
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()
