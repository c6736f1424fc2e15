"""Every setting: its default, its environment variable, coercion and validation.

This is the only module that reads ``os.environ``. ``load_settings`` returns a plain mapping
that ``create_app`` puts into ``app.config``; tests pass their own mapping on top.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from inbox.errors import ConfigError, SlaError
from inbox.sla import SlaPolicy

IMAP_SECURITY_CHOICES = ("ssl", "starttls", "none")
"""Accepted values of INBOX_IMAP_SECURITY."""

PROCESSED_ACTION_CHOICES = ("seen", "move")
"""Server-side actions after a mail is committed: add \\Seen, or move it."""

POLL_INTERVAL_SECONDS = 60
"""Default time between two polls of a mailbox."""


def _to_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _to_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def coerce(value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return lowered

    return coerce


# (setting, environment variable, coercer, default)
SETTINGS: tuple[tuple[str, str, Callable[[str], Any], Any], ...] = (
    ("SECRET_KEY", "INBOX_SECRET_KEY", str, None),
    ("SQLALCHEMY_DATABASE_URI", "DATABASE_URL", str, None),
    ("REDIS_URL", "REDIS_URL", str, ""),
    ("ORG_NAME", "INBOX_ORG_NAME", str, "Example Organisation"),
    ("ORG_TIMEZONE", "INBOX_TIMEZONE", str, "Europe/Amsterdam"),
    ("HOLIDAY_COUNTRY", "INBOX_HOLIDAY_COUNTRY", str, "NL"),
    ("SLA_MONTH_RULE", "INBOX_SLA_MONTH_RULE", _to_bool, True),
    ("SLA_REQUEST_DAYS", "INBOX_SLA_REQUEST_DAYS", int, 30),
    ("SLA_BREACH_HOURS", "INBOX_SLA_BREACH_HOURS", int, 72),
    ("SLA_PAUSE_FOR_IDENTITY", "INBOX_SLA_PAUSE_FOR_IDENTITY", _to_bool, False),
    ("IMAP_HOST", "INBOX_IMAP_HOST", str, ""),
    ("IMAP_PORT", "INBOX_IMAP_PORT", int, 0),
    ("IMAP_SECURITY", "INBOX_IMAP_SECURITY", _to_choice(IMAP_SECURITY_CHOICES), "ssl"),
    ("IMAP_USER", "INBOX_IMAP_USER", str, ""),
    ("IMAP_PASSWORD", "INBOX_IMAP_PASSWORD", str, ""),
    ("IMAP_FOLDER", "INBOX_IMAP_FOLDER", str, "INBOX"),
    (
        "IMAP_PROCESSED_ACTION",
        "INBOX_IMAP_PROCESSED_ACTION",
        _to_choice(PROCESSED_ACTION_CHOICES),
        "seen",
    ),
    ("IMAP_PROCESSED_FOLDER", "INBOX_IMAP_PROCESSED_FOLDER", str, "Processed"),
    ("IMAP_TIMEOUT_SECONDS", "INBOX_IMAP_TIMEOUT_SECONDS", float, 30.0),
    ("IMAP_FETCH_BATCH", "INBOX_IMAP_FETCH_BATCH", int, 100),
    ("PARSE_WORKER", "INBOX_PARSE_WORKER", _to_bool, True),
    ("MAX_MESSAGE_BYTES", "INBOX_MAX_MESSAGE_BYTES", int, 40 * 1024 * 1024),
    ("MAX_ATTACHMENT_BYTES", "INBOX_MAX_ATTACHMENT_BYTES", int, 35 * 1024 * 1024),
    ("POLL_INTERVAL_SECONDS", "INBOX_POLL_INTERVAL_SECONDS", int, POLL_INTERVAL_SECONDS),
    ("POLL_INLINE", "INBOX_POLL_INLINE", _to_bool, True),
    ("ADMIN_EMAIL", "INBOX_ADMIN_EMAIL", str, "admin@example.org"),
    ("ADMIN_PASSWORD", "INBOX_ADMIN_PASSWORD", str, ""),
    ("PAGE_SIZE", "INBOX_PAGE_SIZE", int, 50),
    ("BABEL_DEFAULT_LOCALE", "INBOX_DEFAULT_LOCALE", _to_choice(("en", "nl")), "en"),
    ("SMTP_HOST", "INBOX_SMTP_HOST", str, ""),
    ("SMTP_PORT", "INBOX_SMTP_PORT", int, 0),
    ("SMTP_SECURITY", "INBOX_SMTP_SECURITY", _to_choice(("starttls", "ssl", "none")), "starttls"),
    ("SMTP_USER", "INBOX_SMTP_USER", str, ""),
    ("SMTP_PASSWORD", "INBOX_SMTP_PASSWORD", str, ""),
    ("SMTP_TIMEOUT_SECONDS", "INBOX_SMTP_TIMEOUT_SECONDS", float, 30.0),
    ("MAIL_FROM", "INBOX_MAIL_FROM", str, ""),
    ("DPO_CONTACT", "INBOX_DPO_CONTACT", str, ""),
    ("ORG_SIGNATURE", "INBOX_ORG_SIGNATURE", str, ""),
    ("AUTO_ACKNOWLEDGE", "INBOX_AUTO_ACKNOWLEDGE", _to_bool, True),
)

BOUNDS = (
    ("IMAP_PORT", "INBOX_IMAP_PORT", 0, 65535),
    ("SMTP_PORT", "INBOX_SMTP_PORT", 0, 65535),
    ("MAX_MESSAGE_BYTES", "INBOX_MAX_MESSAGE_BYTES", 1024, 2**40),
    ("MAX_ATTACHMENT_BYTES", "INBOX_MAX_ATTACHMENT_BYTES", 0, 2**40),
    ("IMAP_TIMEOUT_SECONDS", "INBOX_IMAP_TIMEOUT_SECONDS", 1, 3600),
    ("SMTP_TIMEOUT_SECONDS", "INBOX_SMTP_TIMEOUT_SECONDS", 1, 3600),
    ("PAGE_SIZE", "INBOX_PAGE_SIZE", 1, 1000),
)
"""Numeric settings with their allowed range; 0 for a port means the security's default port."""

LOOPBACK_NAMES = ("localhost", "localhost.localdomain")
"""Host names that count as loopback for INBOX_IMAP_SECURITY=none."""


def is_loopback_host(host: str) -> bool:
    """Tell whether ``host`` names this machine; only such hosts may use unencrypted IMAP or SMTP."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(environ: Mapping[str, str], instance_path: Path) -> dict[str, Any]:
    """Read every setting from ``environ``, coerce it and fill in defaults.

    :raises ConfigError: a variable contains a value that cannot be coerced.
    """
    settings: dict[str, Any] = {}
    for name, variable, coerce, default in SETTINGS:
        raw = environ.get(variable)
        if raw is None or raw == "":
            settings[name] = default
            continue
        try:
            settings[name] = coerce(raw)
        except ValueError as exc:
            raise ConfigError(f"{variable} is invalid: {exc}") from exc

    if not settings["SQLALCHEMY_DATABASE_URI"]:
        settings["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance_path / 'privacy-inbox.db'}"
    settings["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(
        settings["SQLALCHEMY_DATABASE_URI"]
    )
    if settings["SECRET_KEY"] is None:
        settings["SECRET_KEY"] = read_or_create_secret(instance_path)
    return settings


def normalise_database_url(url: str) -> str:
    """Map ``postgres://`` and ``postgresql://`` onto SQLAlchemy's psycopg 3 dialect.

    psycopg 3 sends bytes as binary parameters; psycopg2 escaped them into the SQL text, which made
    storing raw mail several times slower.
    """
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def redact_url(url: str) -> str:
    """Return a database or Redis URL with its password replaced, for messages and logs."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def read_or_create_secret(instance_path: Path) -> str:
    """Keep a random session key in the instance folder so logins survive a restart."""
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def validate_settings(settings: Mapping[str, Any]) -> None:
    """Check settings that depend on each other; raise ConfigError naming the variable."""
    if settings["IMAP_HOST"] and settings["IMAP_SECURITY"] == "none":
        if not is_loopback_host(settings["IMAP_HOST"]):
            raise ConfigError(
                f"INBOX_IMAP_SECURITY=none is only allowed for a loopback host, "
                f"but INBOX_IMAP_HOST is {settings['IMAP_HOST']!r}: use ssl or starttls"
            )
    if settings["IMAP_FETCH_BATCH"] < 1:
        raise ConfigError(
            f"INBOX_IMAP_FETCH_BATCH must be at least 1, got {settings['IMAP_FETCH_BATCH']}"
        )
    if settings["POLL_INTERVAL_SECONDS"] < 5:
        raise ConfigError(
            "INBOX_POLL_INTERVAL_SECONDS must be at least 5, "
            f"got {settings['POLL_INTERVAL_SECONDS']}"
        )
    try:
        SlaPolicy(
            timezone=settings["ORG_TIMEZONE"],
            holiday_country=settings["HOLIDAY_COUNTRY"],
            month_rule=settings["SLA_MONTH_RULE"],
            request_days=settings["SLA_REQUEST_DAYS"],
            breach_hours=settings["SLA_BREACH_HOURS"],
        )
    except SlaError as exc:
        raise ConfigError(
            "deadline settings are invalid "
            f"(INBOX_TIMEZONE, INBOX_HOLIDAY_COUNTRY, INBOX_SLA_*): {exc}"
        ) from exc
    for name, variable, low, high in BOUNDS:
        if not low <= settings[name] <= high:
            raise ConfigError(f"{variable} must be between {low} and {high}, got {settings[name]}")
    if settings["PAGE_SIZE"] < 1:
        raise ConfigError(f"INBOX_PAGE_SIZE must be at least 1, got {settings['PAGE_SIZE']}")


def environ() -> Mapping[str, str]:
    """Return the process environment; the single place that touches ``os.environ``."""
    return os.environ
