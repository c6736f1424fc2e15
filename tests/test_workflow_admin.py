"""Admin workflow editor: list, preview, save as a new version, diff and revert."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from inbox.enums import RequestType
from inbox.extensions import db
from inbox.models.ticket import Ticket
from inbox.models.user import Role
from inbox.models.workflow import WorkflowVersion
from inbox.services.tickets import NewTicket, open_ticket, sla_policy
from inbox.services.users import create_user
from inbox.services.workflows import instance_of, latest_version
from inbox.workflow import SHIPPED_WORKFLOW_DIR
from tests.conftest import AuthActions
from tests.test_workflow import minimal_workflow

URL = "/admin/workflows"


def new_ticket(app: Flask) -> Ticket:
    new = NewTicket(request_type=RequestType.ACCESS, received_at=datetime.now(UTC))
    ticket = open_ticket(db.session, new, sla_policy(app.config), "system")
    db.session.commit()
    return ticket


def step_ids(ticket: Ticket) -> list[str]:
    instance = instance_of(db.session, ticket)
    assert instance is not None
    return [step.step_id for step in instance.steps]


def version_count() -> int:
    return db.session.scalar(select(func.count()).select_from(WorkflowVersion)) or 0


def test_admin_workflows_need_admin(client: FlaskClient, app: Flask) -> None:
    create_user(
        db.session, email="a@example.org", password="pw-agent-12345", role=Role.AGENT, actor="t"
    )
    db.session.commit()
    AuthActions(client).login("a@example.org", "pw-agent-12345")

    assert client.get(URL + "/").status_code == 403
    assert client.post(URL + "/access/revert").status_code == 403


def test_admin_workflows_list_types(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()

    page = client.get(URL + "/").text

    for request_type in RequestType:
        assert f'id="workflow-{request_type.value}"' in page
    assert "shipped default (not stored yet)" in page


def test_admin_preview_shows_steps_unsaved(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()

    response = client.post(
        URL + "/access", data={"text": yaml.safe_dump(minimal_workflow()), "action": "preview"}
    )

    assert response.status_code == 200
    assert 'id="preview-decide"' in response.text
    assert "Preview: 2 steps, not saved" in response.text
    assert version_count() == 0


def test_admin_preview_lists_errors(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()
    data = minimal_workflow()
    data["steps"][1]["kind"] = "vote"

    response = client.post(URL + "/access", data={"text": yaml.safe_dump(data), "action": "save"})

    assert response.status_code == 400
    assert "<td>access.yaml</td><td>reply</td><td>kind</td>" in response.text
    assert "allowed: task, reply" in response.text
    assert version_count() == 0


def test_admin_save_rejects_other_type(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()

    response = client.post(
        URL + "/erasure", data={"text": yaml.safe_dump(minimal_workflow()), "action": "save"}
    )

    assert response.status_code == 400
    assert "allowed: erasure" in response.text
    assert version_count() == 0


def test_admin_save_keeps_open_tickets(client: FlaskClient, auth: AuthActions, app: Flask) -> None:
    auth.login()
    old_ticket = new_ticket(app)
    old_steps = step_ids(old_ticket)

    response = client.post(
        URL + "/access", data={"text": yaml.safe_dump(minimal_workflow()), "action": "save"}
    )
    new = new_ticket(app)

    db.session.expire_all()
    assert response.status_code == 302
    assert step_ids(old_ticket) == old_steps
    assert step_ids(new) == ["decide", "reply"]
    version = latest_version(db.session, "access")
    assert version is not None
    assert version.number == 2
    assert version.created_by == "admin@example.org"


def test_admin_diff_against_shipped(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()
    unchanged = client.get(URL + "/access").text
    client.post(
        URL + "/access", data={"text": yaml.safe_dump(minimal_workflow()), "action": "save"}
    )

    changed = client.get(URL + "/access").text

    assert "The version in force matches the shipped default." in unchanged
    assert "--- shipped/access.yaml" in changed
    assert "+++ in force/access.yaml" in changed
    assert "-- id: acknowledge" in changed


def test_admin_revert_stores_shipped(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()
    client.post(
        URL + "/access", data={"text": yaml.safe_dump(minimal_workflow()), "action": "save"}
    )

    response = client.post(URL + "/access/revert")

    version = latest_version(db.session, "access")
    shipped = (SHIPPED_WORKFLOW_DIR / "access.yaml").read_text(encoding="utf-8")
    assert response.status_code == 302
    assert version is not None
    assert version.number == 2
    assert version.source_text == shipped
    assert version.origin == "shipped default access.yaml"


def test_admin_unknown_type_not_found(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()

    assert client.get(URL + "/nonsense").status_code == 404


def test_admin_editor_shows_text_in_force(
    client: FlaskClient, auth: AuthActions, admin: Any
) -> None:
    auth.login()

    page = client.get(URL + "/access").text

    assert "type: access" in page
    assert "Revert to shipped default" in page
