"""Settings: invalid values stop start-up with a message that names the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox import create_app
from inbox.config import load_settings, redact_url
from inbox.errors import ConfigError


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("INBOX_SMTP_PORT", "99999", "INBOX_SMTP_PORT must be between 0 and 65535"),
        ("INBOX_MAX_ATTACHMENT_BYTES", "-1", "INBOX_MAX_ATTACHMENT_BYTES must be between"),
        ("INBOX_IMAP_SECURITY", "tls", "INBOX_IMAP_SECURITY is invalid"),
        ("INBOX_SLA_MONTH_RULE", "maybe", "INBOX_SLA_MONTH_RULE is invalid"),
        ("INBOX_TIMEZONE", "Mars/Olympus", "Mars/Olympus"),
        ("INBOX_POLL_INTERVAL_SECONDS", "1", "INBOX_POLL_INTERVAL_SECONDS must be at least 5"),
    ],
)
def test_invalid_setting_names_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")

    with pytest.raises(ConfigError, match=expected):
        create_app(instance_path=str(tmp_path / "instance"))


def test_plain_imap_to_remote_host_rejected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INBOX_IMAP_HOST", "imap.example.org")
    monkeypatch.setenv("INBOX_IMAP_SECURITY", "none")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")

    with pytest.raises(ConfigError, match="only allowed for a loopback host"):
        create_app(instance_path=str(tmp_path / "instance"))


def test_unknown_database_scheme_names_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "bogus://example")

    with pytest.raises(ConfigError, match="DATABASE_URL bogus://example cannot be used"):
        create_app(instance_path=str(tmp_path / "instance"))


def test_postgres_url_spelling_normalised(tmp_path: Path) -> None:
    settings = load_settings({"DATABASE_URL": "postgres://u@h/db"}, tmp_path)

    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


def test_redact_url_hides_password() -> None:
    assert redact_url("postgresql://user:secret@db:5432/x") == "postgresql://user:***@db:5432/x"


def test_secret_key_kept_across_starts(tmp_path: Path) -> None:
    first = load_settings({}, tmp_path)["SECRET_KEY"]
    second = load_settings({}, tmp_path)["SECRET_KEY"]

    assert first == second
    assert len(first) == 64
