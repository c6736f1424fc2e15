"""Workflows: validation of the YAML files, checklists on tickets, closing, and versions."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from inbox.cli_workflows import check_command
from inbox.enums import RequestType, TicketStatus
from inbox.errors import ConfigError
from inbox.extensions import db
from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.message import Attachment, Blob, Message
from inbox.models.ticket import Ticket
from inbox.models.user import Role, User
from inbox.models.workflow import StepStatus, SystemSearch, WorkflowStep
from inbox.services.tickets import NewTicket, change_type, open_ticket, sla_policy
from inbox.services.triage import merge_tickets
from inbox.services.users import create_user
from inbox.services.verification import (
    IdentityChange,
    SearchRecordInput,
    add_search_record,
    attach_identity_evidence,
    delete_evidence_file,
    identity_check_of,
    update_identity,
)
from inbox.services.workflows import (
    WorkflowStateError,
    add_note,
    add_version,
    assign_step,
    can_close,
    check_step,
    close_ticket,
    instance_of,
    next_steps_due,
    skip_step,
    uncheck_step,
)
from inbox.workflow import (
    REPLY_TEMPLATES,
    SHIPPED_WORKFLOW_DIR,
    check_shipped_workflows,
    load_directory,
    validate_workflow,
)
from tests.factories import step_of

RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MANAGER = "manager@example.org"
AGENT = "agent@example.org"
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "mail"


def minimal_workflow() -> dict[str, Any]:
    """Return a valid workflow mapping with a decision and a step that depends on it."""
    return {
        "type": "access",
        "version": 1,
        "title": {"nl": "Inzageverzoek", "en": "Access request"},
        "steps": [
            {
                "id": "decide",
                "kind": "decision",
                "title": {"nl": "Besluiten", "en": "Decide"},
                "description": {"nl": "Kies.", "en": "Choose."},
                "options": [
                    {"id": "yes", "title": {"nl": "Ja", "en": "Yes"}},
                    {"id": "no", "title": {"nl": "Nee", "en": "No"}},
                ],
            },
            {
                "id": "reply",
                "kind": "reply",
                "template": "completion",
                "title": {"nl": "Antwoorden", "en": "Reply"},
                "description": {"nl": "Stuur.", "en": "Send."},
                "due": {"days_before_deadline": 2},
                "when": {"decide": ["yes"]},
            },
        ],
    }


def with_change(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """Return the minimal workflow with the value at ``path`` replaced (None deletes it)."""
    data = copy.deepcopy(minimal_workflow())
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "step", "field", "allowed"),
    [
        (("type",), "acces", None, "type", "allowed: access"),
        (("version",), 0, None, "version", "whole number"),
        (("title",), {"nl": "x"}, None, "title.en", "missing or empty"),
        (("steps",), [], None, "steps", "at least one step"),
        (("steps", 0, "id"), "Decide", "#1", "id", "lowercase letters"),
        (("steps", 1, "id"), "decide", "decide", "id", "duplicate step id"),
        (("steps", 0, "kind"), "vote", "decide", "kind", "allowed: task, reply"),
        (("steps", 1, "template"), "goodbye", "reply", "template", "allowed: acknowledgement"),
        (("steps", 0, "options"), [], "decide", "options", "at least one option"),
        (("steps", 1, "role"), "intern", "reply", "role", "allowed: agent, manager, admin"),
        (("steps", 1, "due"), {"weeks": 2}, "reply", "due.weeks", "allowed: days_after_receipt"),
        (
            ("steps", 1, "due"),
            {"days_after_receipt": -1},
            "reply",
            "due.days_after_receipt",
            "from 0 to 366",
        ),
        (("steps", 1, "when"), {"nothing": ["yes"]}, "reply", "when.nothing", "allowed: decide"),
        (("steps", 1, "when"), {"decide": ["maybe"]}, "reply", "when.decide", "allowed: yes, no"),
        (("steps", 1, "colour"), "red", "reply", "colour", "unknown field"),
        (("steps", 1, "description"), None, "reply", "description", "mapping with the keys"),
        (("steps", 0, "required"), "yes", "decide", "required", "allowed: true, false"),
    ],
)
def test_validate_workflow_reports_field(
    path: tuple[Any, ...], value: Any, step: str | None, field: str, allowed: str
) -> None:
    workflow, issues = validate_workflow(with_change(path, value), "access.yaml")

    assert workflow is None
    matching = [i for i in issues if i.step == step and i.field == field]
    assert matching, [str(i) for i in issues]
    assert allowed in matching[0].message
    assert str(matching[0]).startswith("access.yaml: ")


def test_validate_workflow_accepts_minimal() -> None:
    workflow, issues = validate_workflow(minimal_workflow(), "access.yaml")

    assert issues == []
    assert workflow is not None
    assert [step.id for step in workflow.steps] == ["decide", "reply"]


def test_validate_approval_needs_manager_role() -> None:
    data = minimal_workflow()
    data["steps"][1].update(kind="approval", template=None)
    del data["steps"][1]["template"]

    _workflow, issues = validate_workflow(data, "access.yaml")

    assert [(i.step, i.field) for i in issues] == [("reply", "role")]


def test_validate_other_has_no_deadline_offset() -> None:
    data = minimal_workflow()
    data["type"] = "other"

    _workflow, issues = validate_workflow(data, "other.yaml")

    assert [(i.step, i.field) for i in issues] == [("reply", "due.days_before_deadline")]


def test_shipped_workflows_are_valid() -> None:
    workflows, issues = load_directory(SHIPPED_WORKFLOW_DIR)

    assert [str(issue) for issue in issues] == []
    assert set(workflows) == set(RequestType)


def test_shipped_templates_exist_in_both_languages() -> None:
    for name in REPLY_TEMPLATES:
        for language in ("nl", "en"):
            assert (TEMPLATE_DIR / f"{name}.{language}.txt").is_file(), f"{name}.{language}"


def test_check_shipped_workflows_rejects_invalid(tmp_path: Path) -> None:
    for path in SHIPPED_WORKFLOW_DIR.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "erasure.yaml").write_text("type: erasure\nsteps: nope\n", encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        check_shipped_workflows(tmp_path)

    assert "erasure.yaml: workflow: steps" in str(raised.value)


def test_cli_check_reports_file_step_field(tmp_path: Path) -> None:
    bad = tmp_path / "access.yaml"
    bad.write_text(yaml.safe_dump(with_change(("steps", 1, "kind"), "vote")), encoding="utf-8")

    result = CliRunner().invoke(check_command, [str(bad)])

    assert result.exit_code == 1
    assert f"error: {bad}: step reply: kind: got 'vote'; allowed: task" in result.output


def test_cli_check_reports_yaml_syntax_line(tmp_path: Path) -> None:
    bad = tmp_path / "access.yaml"
    bad.write_text("type: access\nsteps: [\n", encoding="utf-8")

    result = CliRunner().invoke(check_command, [str(bad)])

    assert result.exit_code == 1
    assert "not valid YAML" in result.output


def test_cli_check_passes_shipped() -> None:
    result = CliRunner().invoke(check_command, [])

    assert result.exit_code == 0
    assert "10 workflow files are valid" in result.output


def make_users() -> None:
    create_user(db.session, email=MANAGER, password="pw-manager-123", role=Role.MANAGER, actor="t")
    create_user(db.session, email=AGENT, password="pw-agent-12345", role=Role.AGENT, actor="t")
    db.session.commit()


def new_ticket(app: Flask, request_type: RequestType = RequestType.ACCESS) -> Ticket:
    new = NewTicket(request_type=request_type, received_at=RECEIVED, requester_email="a@b.example")
    ticket = open_ticket(db.session, new, sla_policy(app.config), "system")
    db.session.commit()
    return ticket


def record_search(step: WorkflowStep, system: str = "CRM") -> SystemSearch:
    record = SearchRecordInput(system=system, result="nothing_found", note="searched by e-mail")
    return add_search_record(db.session, step, record, AGENT)


def tags_of(ticket: Ticket) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditEvent.tag).where(AuditEvent.ticket_id == ticket.id).order_by(AuditEvent.id)
        )
    )


def test_open_ticket_starts_workflow(app: Flask) -> None:
    ticket = new_ticket(app)

    instance = instance_of(db.session, ticket)
    assert instance is not None
    assert instance.version.number == 1
    assert AuditTag.WORKFLOW_START in tags_of(ticket)


def test_step_due_before_deadline(app: Flask) -> None:
    ticket = new_ticket(app)

    step = step_of(ticket, "send_completion")
    assert ticket.due_at is not None
    assert step.due_at is not None
    assert (ticket.due_at - step.due_at).days == 1


def test_decision_enables_dependent_steps(app: Flask) -> None:
    ticket = new_ticket(app)
    assert step_of(ticket, "request_identity").status == StepStatus.PENDING

    check_step(db.session, step_of(ticket, "assess_identity"), AGENT, "reasonable_doubt")

    assert step_of(ticket, "request_identity").status == StepStatus.OPEN
    assert step_of(ticket, "confirm_identity").status == StepStatus.OPEN


def test_decision_rules_out_steps(app: Flask) -> None:
    ticket = new_ticket(app)

    check_step(db.session, step_of(ticket, "assess_identity"), AGENT, "no_doubt")

    assert step_of(ticket, "request_identity").status == StepStatus.NOT_APPLICABLE


def test_decision_needs_known_option(app: Flask) -> None:
    ticket = new_ticket(app)

    with pytest.raises(WorkflowStateError, match="allowed: no_doubt, reasonable_doubt"):
        check_step(db.session, step_of(ticket, "assess_identity"), AGENT, "maybe")


def test_approval_needs_manager(app: Flask) -> None:
    make_users()
    ticket = new_ticket(app)
    check_step(db.session, step_of(ticket, "decide_outcome"), AGENT, "refused")

    with pytest.raises(WorkflowStateError, match="approved by a manager"):
        check_step(db.session, step_of(ticket, "approve_refusal"), AGENT)
    check_step(db.session, step_of(ticket, "approve_refusal"), MANAGER)

    assert step_of(ticket, "approve_refusal").status == StepStatus.DONE


def test_checklist_actions_are_audited(app: Flask) -> None:
    make_users()
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")
    agent = db.session.scalars(select(User).where(User.email == AGENT)).one()
    record_search(step)

    check_step(db.session, step, AGENT)
    uncheck_step(db.session, step, AGENT)
    skip_step(db.session, step, AGENT, "no systems hold data of this kind")
    add_note(db.session, step, AGENT, "Checked CRM and mail archive.")
    assign_step(db.session, step, agent, MANAGER)
    db.session.commit()

    tags = tags_of(ticket)
    for tag in (
        AuditTag.STEP_CHECK,
        AuditTag.STEP_UNCHECK,
        AuditTag.STEP_SKIP,
        AuditTag.STEP_NOTE,
        AuditTag.STEP_ASSIGN,
    ):
        assert tag in tags


def test_skip_needs_reason(app: Flask) -> None:
    ticket = new_ticket(app)

    with pytest.raises(WorkflowStateError, match="needs a reason"):
        skip_step(db.session, step_of(ticket, "search_systems"), AGENT, "  ")


def test_uncheck_decision_makes_dependants_wait(app: Flask) -> None:
    ticket = new_ticket(app)
    decision = step_of(ticket, "assess_identity")
    check_step(db.session, decision, AGENT, "reasonable_doubt")

    uncheck_step(db.session, decision, AGENT)

    assert step_of(ticket, "request_identity").status == StepStatus.PENDING


def test_close_blocked_by_required_steps(app: Flask) -> None:
    make_users()
    ticket = new_ticket(app)

    assert can_close(db.session, ticket) is False
    with pytest.raises(WorkflowStateError, match="open required steps"):
        close_ticket(db.session, ticket, "granted", AGENT)
    assert ticket.status != TicketStatus.CLOSED


def test_close_override_needs_manager(app: Flask) -> None:
    make_users()
    ticket = new_ticket(app)

    with pytest.raises(WorkflowStateError, match="only a manager"):
        close_ticket(db.session, ticket, "withdrawn", AGENT, override_reason="requester withdrew")


def test_close_override_by_manager_is_audited(app: Flask) -> None:
    make_users()
    ticket = new_ticket(app)

    close_ticket(db.session, ticket, "withdrawn", MANAGER, override_reason="requester withdrew")
    db.session.commit()

    assert ticket.status == TicketStatus.CLOSED
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.tag == AuditTag.TICKET_CLOSE)
    ).one()
    assert event.data["override"] is True
    assert event.data["override_reason"] == "requester withdrew"
    assert "search_systems" in event.data["open_required_steps"]


def test_close_after_required_steps_done(app: Flask) -> None:
    ticket = new_ticket(app, RequestType.OTHER)
    check_step(db.session, step_of(ticket, "triage"), AGENT, "no_action")

    assert can_close(db.session, ticket) is True
    close_ticket(db.session, ticket, "granted", AGENT)

    assert ticket.status == TicketStatus.CLOSED


def test_close_rejects_unknown_outcome(app: Flask) -> None:
    ticket = new_ticket(app, RequestType.OTHER)

    with pytest.raises(WorkflowStateError, match="allowed: granted, partly_granted"):
        close_ticket(db.session, ticket, "happy", AGENT)


def test_change_type_replans_keeping_done(app: Flask) -> None:
    ticket = new_ticket(app)
    record_search(step_of(ticket, "search_systems"))
    check_step(db.session, step_of(ticket, "search_systems"), AGENT)

    change_type(db.session, ticket, "erasure", sla_policy(app.config), AGENT)
    db.session.commit()

    instance = instance_of(db.session, ticket)
    assert instance is not None
    ids = [step.step_id for step in instance.steps]
    assert step_of(ticket, "search_systems").status == StepStatus.DONE
    assert ids.count("search_systems") == 1
    assert "assess_exceptions" in ids
    assert step_of(ticket, "compile_copy").status == StepStatus.DROPPED
    assert AuditTag.WORKFLOW_REPLAN in tags_of(ticket)


def test_new_version_leaves_open_tickets(app: Flask) -> None:
    old_ticket = new_ticket(app)
    old_ids = [s.step_id for s in instance_of(db.session, old_ticket).steps]  # type: ignore[union-attr]
    edited = minimal_workflow()

    add_version(db.session, "access", yaml.safe_dump(edited), MANAGER, "admin edit")
    db.session.commit()
    new = new_ticket(app)

    old_instance = instance_of(db.session, old_ticket)
    new_instance = instance_of(db.session, new)
    assert old_instance is not None
    assert new_instance is not None
    assert [s.step_id for s in old_instance.steps] == old_ids
    assert old_instance.version.number == 1
    assert new_instance.version.number == 2
    assert [s.step_id for s in new_instance.steps] == ["decide", "reply"]


def test_checklist_page_check_and_close(client: FlaskClient, auth: Any, app: Flask) -> None:
    auth.login()
    ticket = new_ticket(app, RequestType.OTHER)
    step = step_of(ticket, "triage")

    page = client.get(f"/tickets/{ticket.reference}")
    assert page.status_code == 200
    assert b'id="step-triage"' in page.data
    client.post(f"/tickets/{ticket.reference}/steps/{step.id}/check", data={"option": "no_action"})
    client.post(f"/tickets/{ticket.reference}/close", data={"outcome": "no_data_found"})

    db.session.expire_all()
    assert step_of(ticket, "triage").status == StepStatus.DONE
    assert db.session.get(Ticket, ticket.id).status == TicketStatus.CLOSED  # type: ignore[union-attr]


def test_status_form_cannot_close(client: FlaskClient, auth: Any, app: Flask) -> None:
    auth.login()
    ticket = new_ticket(app)

    page = client.get(f"/tickets/{ticket.reference}").text
    response = client.post(f"/tickets/{ticket.reference}/status", data={"status": "closed"})

    db.session.expire_all()
    assert 'value="closed"' not in page
    assert "To close the ticket, choose an outcome under Close ticket." in page
    assert response.status_code == 400
    assert db.session.get(Ticket, ticket.id).status != TicketStatus.CLOSED  # type: ignore[union-attr]
    assert AuditTag.TICKET_STATUS_CHANGE not in tags_of(ticket)


def test_status_form_still_reopens(client: FlaskClient, auth: Any, app: Flask) -> None:
    auth.login()
    ticket = new_ticket(app, RequestType.OTHER)
    close_ticket(db.session, ticket, "withdrawn", "admin@example.org", "requester withdrew")
    db.session.commit()

    client.post(f"/tickets/{ticket.reference}/status", data={"status": "open"})

    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).status == TicketStatus.OPEN  # type: ignore[union-attr]


def test_search_step_needs_a_record(app: Flask) -> None:
    ticket = new_ticket(app)

    with pytest.raises(WorkflowStateError, match="at least one system"):
        check_step(db.session, step_of(ticket, "search_systems"), AGENT)


def test_search_record_is_audited(app: Flask) -> None:
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")

    row = record_search(step, "Payroll")
    check_step(db.session, step, AGENT)
    db.session.commit()

    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.tag == AuditTag.SEARCH_RECORD_ADD)
    ).one()
    assert row.recorded_by == AGENT
    assert row.recorded_at is not None
    assert event.data["system"] == "Payroll"
    assert event.data["result"] == "nothing_found"
    assert step.status == StepStatus.DONE


@pytest.mark.parametrize(
    ("system", "result", "message"),
    [
        ("", "data_found", "system name"),
        ("x" * 201, "data_found", "system name"),
        ("CRM", "maybe", "allowed: data_found, nothing_found, not_applicable"),
    ],
)
def test_search_record_rejects_input(app: Flask, system: str, result: str, message: str) -> None:
    ticket = new_ticket(app)
    record = SearchRecordInput(system=system, result=result)

    with pytest.raises(WorkflowStateError, match=message):
        add_search_record(db.session, step_of(ticket, "search_systems"), record, AGENT)


def test_search_record_only_on_search_step(app: Flask) -> None:
    ticket = new_ticket(app)
    record = SearchRecordInput(system="CRM", result="data_found")

    with pytest.raises(WorkflowStateError, match="has no search records"):
        add_search_record(db.session, step_of(ticket, "clarify"), record, AGENT)


def test_search_record_rejects_foreign_attachment(app: Flask) -> None:
    ticket = new_ticket(app)
    record = SearchRecordInput(system="CRM", result="data_found", attachment_id=999)

    with pytest.raises(WorkflowStateError, match="attachment 999 is not part"):
        add_search_record(db.session, step_of(ticket, "search_systems"), record, AGENT)


def test_search_record_page_form(client: FlaskClient, auth: Any, app: Flask) -> None:
    auth.login()
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")

    client.post(
        f"/tickets/{ticket.reference}/steps/{step.id}/search",
        data={"system": "Mail archive", "result": "data_found", "note": "3 mails"},
    )
    page = client.get(f"/tickets/{ticket.reference}").text

    assert "Mail archive" in page
    assert "Data found" in page


def doubtful_ticket(app: Flask) -> Ticket:
    """Open an access request whose identity needs verification."""
    ticket = new_ticket(app)
    check_step(db.session, step_of(ticket, "assess_identity"), AGENT, "reasonable_doubt")
    db.session.commit()
    return ticket


def add_attachment(ticket: Ticket, data: bytes = b"scan of a passport") -> Attachment:
    """Attach a stored file to a new incoming message of the ticket."""
    sha256 = hashlib.sha256(data).hexdigest()
    blob = db.session.get(Blob, sha256) or Blob(sha256=sha256, size=len(data), data=data)
    message = Message(ticket=ticket, direction="in", received_at=RECEIVED, text="see attached")
    attachment = Attachment(
        message=message, filename="id.pdf", content_type="application/pdf", size=len(data)
    )
    attachment.blob = blob
    db.session.add_all([message, attachment])
    db.session.commit()
    return attachment


def test_identity_step_needs_verified(app: Flask) -> None:
    ticket = doubtful_ticket(app)

    with pytest.raises(WorkflowStateError, match="verified or not needed"):
        check_step(db.session, step_of(ticket, "confirm_identity"), AGENT)


def test_identity_verified_allows_check(app: Flask) -> None:
    ticket = doubtful_ticket(app)
    step = step_of(ticket, "confirm_identity")

    update_identity(db.session, step, IdentityChange("verified", "address matches CRM"), AGENT)
    check_step(db.session, step, AGENT)

    assert step.status == StepStatus.DONE


def test_identity_failed_blocks_check(app: Flask) -> None:
    ticket = doubtful_ticket(app)
    step = step_of(ticket, "confirm_identity")

    update_identity(db.session, step, IdentityChange("failed", "no answer"), AGENT)

    with pytest.raises(WorkflowStateError, match="not failed"):
        check_step(db.session, step, AGENT)


def test_identity_request_counts_attempts(app: Flask) -> None:
    ticket = doubtful_ticket(app)

    check_step(db.session, step_of(ticket, "request_identity"), AGENT)
    update_identity(
        db.session, step_of(ticket, "confirm_identity"), IdentityChange("requested"), AGENT
    )

    check = identity_check_of(db.session, step_of(ticket, "confirm_identity"))
    assert check is not None
    assert check.status == "requested"
    assert check.attempts == 2


def test_identity_update_is_audited(app: Flask) -> None:
    ticket = doubtful_ticket(app)

    update_identity(
        db.session, step_of(ticket, "confirm_identity"), IdentityChange("verified", "date"), AGENT
    )
    db.session.commit()

    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.tag == AuditTag.IDENTITY_UPDATE)
    ).one()
    assert event.data["to"] == "verified"
    assert "date" not in str(event.data)


@pytest.mark.parametrize(
    ("status", "note", "message"),
    [
        ("maybe", "", "allowed: not_needed, requested, verified, failed"),
        ("verified", "x" * 501, "at most 500"),
    ],
)
def test_identity_update_rejects_input(app: Flask, status: str, note: str, message: str) -> None:
    ticket = doubtful_ticket(app)

    with pytest.raises(WorkflowStateError, match=message):
        update_identity(
            db.session, step_of(ticket, "confirm_identity"), IdentityChange(status, note), AGENT
        )


def test_identity_only_on_identity_step(app: Flask) -> None:
    ticket = doubtful_ticket(app)

    with pytest.raises(WorkflowStateError, match="has no identity verification"):
        update_identity(
            db.session, step_of(ticket, "search_systems"), IdentityChange("verified"), AGENT
        )


def test_evidence_file_deleted_and_audited(app: Flask) -> None:
    ticket = doubtful_ticket(app)
    step = step_of(ticket, "confirm_identity")
    attachment = add_attachment(ticket)
    sha256 = attachment.sha256

    attach_identity_evidence(db.session, step, attachment.id, AGENT)
    delete_evidence_file(db.session, step, AGENT)
    db.session.commit()

    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.tag == AuditTag.EVIDENCE_DELETE)
    ).one()
    assert attachment.sha256 is None
    assert db.session.get(Blob, sha256) is None
    assert event.data["attachment"] == attachment.id
    assert event.data["file_deleted"] is True


def test_evidence_file_kept_when_shared(app: Flask) -> None:
    ticket = doubtful_ticket(app)
    step = step_of(ticket, "confirm_identity")
    attachment = add_attachment(ticket)
    add_attachment(ticket)

    attach_identity_evidence(db.session, step, attachment.id, AGENT)
    delete_evidence_file(db.session, step, AGENT)

    assert attachment.sha256 is None
    assert db.session.get(Blob, hashlib.sha256(b"scan of a passport").hexdigest()) is not None


def test_evidence_delete_twice_rejected(app: Flask) -> None:
    ticket = doubtful_ticket(app)
    step = step_of(ticket, "confirm_identity")
    attach_identity_evidence(db.session, step, add_attachment(ticket).id, AGENT)
    delete_evidence_file(db.session, step, AGENT)

    with pytest.raises(WorkflowStateError, match="deleted already"):
        delete_evidence_file(db.session, step, AGENT)


def test_evidence_page_warns_of_deletion(client: FlaskClient, auth: Any, app: Flask) -> None:
    auth.login()
    ticket = doubtful_ticket(app)
    step = step_of(ticket, "confirm_identity")
    attachment = add_attachment(ticket)

    client.post(
        f"/tickets/{ticket.reference}/steps/{step.id}/evidence",
        data={"attachment": str(attachment.id)},
    )
    page = client.get(f"/tickets/{ticket.reference}").text
    client.post(f"/tickets/{ticket.reference}/steps/{step.id}/delete-evidence")

    db.session.expire_all()
    assert "The file will be deleted after verification." in page
    assert "Delete evidence file" in page
    assert db.session.get(Attachment, attachment.id).sha256 is None  # type: ignore[union-attr]


def test_merge_leaves_identity_step_open(app: Flask) -> None:
    kept = doubtful_ticket(app)
    duplicate = doubtful_ticket(app)
    duplicate_step = step_of(duplicate, "confirm_identity")
    update_identity(db.session, duplicate_step, IdentityChange("verified", "CRM"), AGENT)
    check_step(db.session, duplicate_step, AGENT)

    result = merge_tickets(db.session, [kept, duplicate], MANAGER)
    db.session.commit()

    assert result.kept.id == kept.id
    assert step_of(kept, "confirm_identity").status == StepStatus.OPEN
    assert identity_check_of(db.session, step_of(kept, "confirm_identity")) is None


def test_next_steps_due_skips_finished(app: Flask) -> None:
    ticket = new_ticket(app)
    first = next_steps_due(db.session, [ticket.id])[ticket.id]
    skip_step(db.session, first, AGENT, "done elsewhere")
    db.session.commit()

    following = next_steps_due(db.session, [ticket.id])[ticket.id]

    assert following.id != first.id
    assert following.status == StepStatus.OPEN


def test_next_steps_due_is_earliest(app: Flask) -> None:
    ticket = new_ticket(app)
    instance = instance_of(db.session, ticket)
    assert instance is not None
    dated = [s.due_at for s in instance.steps if s.due_at and s.status == StepStatus.OPEN]

    step = next_steps_due(db.session, [ticket.id])[ticket.id]

    assert step.due_at == min(dated)


def test_next_steps_due_ignores_dropped(app: Flask) -> None:
    ticket = new_ticket(app)
    instance = instance_of(db.session, ticket)
    assert instance is not None
    for step in instance.steps:
        step.status = StepStatus.DROPPED
    db.session.commit()

    assert next_steps_due(db.session, [ticket.id]) == {}


def test_next_steps_due_per_ticket(app: Flask) -> None:
    first, second = new_ticket(app), new_ticket(app, RequestType.ERASURE)

    steps = next_steps_due(db.session, [first.id, second.id])

    assert steps[first.id].instance.ticket_id == first.id
    assert steps[second.id].instance.ticket_id == second.id


def test_next_steps_due_empty_page(app: Flask) -> None:
    assert next_steps_due(db.session, []) == {}
