"""The privacy-inbox command line: help, sla due, tickets, import, demo, audit verify."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask

from inbox.extensions import db
from inbox.models.audit import AuditEvent
from tests.factories import make_mail

REQUIRED_COMMANDS = (
    "init",
    "serve",
    "poll",
    "import",
    "demo",
    "create-user",
    "tickets",
    "audit",
    "worker",
    "sla",
    "classify-eval",
)


def test_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from inbox.cli import main; main()", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in REQUIRED_COMMANDS:
        assert f"  {command}" in result.stdout, command


@pytest.mark.parametrize(
    ("type_name", "received", "expected"),
    [
        ("access", "2025-01-31T10:00:00+01:00", "2025-02-28T23:59:59+01:00"),
        ("erasure", "2024-01-31T10:00:00+01:00", "2024-02-29T23:59:59+01:00"),
        ("breach", "2026-03-28T12:00:00+01:00", "2026-03-31T13:00:00+02:00"),
    ],
)
def test_sla_due_prints_iso_moment(
    app: Flask, type_name: str, received: str, expected: str
) -> None:
    result = app.test_cli_runner().invoke(
        args=["sla", "due", "--type", type_name, "--received", received]
    )

    assert result.exit_code == 0, result.output
    assert result.output.strip() == expected


def test_sla_due_rejects_malformed_received(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=["sla", "due", "--type", "access", "--received", "31-01-2025"]
    )

    assert result.exit_code != 0
    assert "31-01-2025" in result.output


def test_sla_due_rejects_unknown_type(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=["sla", "due", "--type", "inzage", "--received", "2025-01-31T10:00:00+01:00"]
    )

    assert result.exit_code != 0
    assert "inzage" in result.output
    assert "access" in result.output


def test_demo_imports_samples_and_summarises(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["demo", "--no-serve"])

    assert result.exit_code == 0, result.output
    assert "imported 29 sample mails" in result.output
    assert "nearest deadline:" in result.output


def test_tickets_json_has_required_fields(app: Flask) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["demo", "--no-serve"])

    result = runner.invoke(args=["tickets", "--json"])

    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == 28
    for key in ("reference", "type", "status", "requester", "subject", "received_at", "due_at"):
        assert key in rows[0]


def test_audit_verify_detects_tampering(app: Flask) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["demo", "--no-serve"])
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0

    event = db.session.get(AuditEvent, 3)
    assert event is not None
    event.actor = "someone-else"
    db.session.commit()
    result = runner.invoke(args=["audit", "verify"])

    assert result.exit_code == 1
    assert "broken at event 3" in result.output


def test_reset_password_lets_admin_sign_in(app: Flask) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["init"])

    result = runner.invoke(
        args=["reset-password", "admin@example.org", "--password", "a-new-long-password"]
    )
    response = app.test_client().post(
        "/login", data={"email": "admin@example.org", "password": "a-new-long-password"}
    )

    assert result.exit_code == 0, result.output
    assert response.status_code == 302


def test_reset_password_unknown_user_names_address(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=["reset-password", "nobody@example.org", "--password", "a-new-long-password"]
    )

    assert result.exit_code != 0
    assert "nobody@example.org" in result.output


def test_import_twice_reports_already_stored(app: Flask, tmp_path: Path) -> None:
    saved = tmp_path / "request.eml"
    saved.write_bytes(make_mail())

    first = app.test_cli_runner().invoke(args=["import", str(saved)])
    second = app.test_cli_runner().invoke(args=["import", str(saved)])

    assert first.exit_code == 0, first.output
    assert "1 mails, 0 already stored, 1 new tickets" in first.output
    assert "1 mails, 1 already stored, 0 new tickets" in second.output
