"""Workflow versions, a ticket's checklist and closing a ticket, each change with its audit event.

A ticket's checklist is planned from the workflow version in force when the ticket was opened.
Editing a workflow adds a new version, so tickets in flight keep the steps they started with.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path

from sqlalchemy import and_, func, insert, select
from sqlalchemy.orm import Session, joinedload

from inbox.audit import SYSTEM_ACTOR, record_event
from inbox.enums import TicketStatus, parse_choice
from inbox.errors import InboxError, TransitionError
from inbox.ids import ensure_id, hands_out_ids
from inbox.models.audit import AuditTag
from inbox.models.message import Attachment
from inbox.models.ticket import Ticket
from inbox.models.types import utcnow
from inbox.models.user import Role, User
from inbox.models.workflow import (
    Outcome,
    StepNote,
    StepStatus,
    WorkflowInstance,
    WorkflowStep,
    WorkflowVersion,
)
from inbox.rowqueue import flush_queued, has_queued, queue_rows
from inbox.services.tickets import change_status
from inbox.txcache import transaction_cache
from inbox.workflow import (
    SHIPPED_WORKFLOW_DIR,
    Applicability,
    Issue,
    Step,
    StepKind,
    Workflow,
    WorkflowError,
    check_file,
    compute_step_due,
    parse_workflow_text,
    step_applicability,
)

logger = logging.getLogger(__name__)

MAX_NOTE_CHARS = 10_000
"""Maximum length of a note on a step, in characters."""

MAX_REASON_CHARS = 2_000
"""Maximum length of a skip or override reason, in characters."""

_STATUS_OF = {
    Applicability.APPLIES: StepStatus.OPEN,
    Applicability.PENDING: StepStatus.PENDING,
    Applicability.NOT_APPLICABLE: StepStatus.NOT_APPLICABLE,
}


class WorkflowStateError(TransitionError):
    """Raised when a checklist action is not allowed in the step's or ticket's current state."""


@functools.lru_cache(maxsize=256)
def _parse_cached(source_text: str, origin: str) -> Workflow:
    workflow, issues = parse_workflow_text(source_text, origin)
    if workflow is None:
        # Versions are validated before they are stored, so this is a corrupted row.
        raise InboxError(f"stored workflow version {origin} is invalid: {issues[0]}")
    return workflow


def workflow_of(version: WorkflowVersion) -> Workflow:
    """Return the parsed workflow of a stored version."""
    return _parse_cached(version.source_text, f"{version.type} v{version.number}")


def step_definition(step: WorkflowStep) -> Step:
    """Return the definition a checklist step was planned from."""
    definition = workflow_of(step.version).step(step.step_id)
    if definition is None:
        raise InboxError(f"step {step.step_id} is missing from {step.version.type} workflow")
    return definition


def latest_version(session: Session, request_type: str) -> WorkflowVersion | None:
    """Return the newest stored version of a type's workflow, or None.

    ``add_version`` writes each version at once, so the look-up need not flush other rows.
    """
    with session.no_autoflush:
        return session.scalars(
            select(WorkflowVersion)
            .where(WorkflowVersion.type == request_type)
            .order_by(WorkflowVersion.number.desc())
            .limit(1)
        ).first()


def add_version(
    session: Session, request_type: str, source_text: str, actor: str, origin: str
) -> WorkflowVersion:
    """Validate a workflow text and store it as the type's newest version; the caller commits.

    :raises WorkflowError: the text is invalid or is for another request type.
    """
    workflow, issues = parse_workflow_text(source_text, origin)
    if workflow is None:
        raise WorkflowError(issues)
    if workflow.request_type != request_type:
        message = f"got {workflow.request_type.value!r}; allowed: {request_type}"
        raise WorkflowError([Issue(origin, None, "type", message)])

    number = (
        session.scalar(
            select(func.max(WorkflowVersion.number)).where(WorkflowVersion.type == request_type)
        )
        or 0
    ) + 1
    version = WorkflowVersion(
        type=request_type,
        number=number,
        source_text=source_text,
        definition={"steps": [step.id for step in workflow.steps], "version": workflow.version},
        sha256=hashlib.sha256(source_text.encode("utf-8")).hexdigest(),
        origin=origin[:255],
        created_by=actor,
    )
    session.add(version)
    session.flush()
    transaction_cache(session)[("workflow_version", request_type)] = version

    record_event(
        session,
        AuditTag.WORKFLOW_VERSION_ADD,
        actor,
        None,
        {"type": request_type, "number": number, "sha256": version.sha256, "origin": origin},
    )
    logger.info("workflow %s version %s added by %s", request_type, number, actor)
    return version


def look_up_versions(session: Session) -> None:
    """Read the newest stored version of every request type in one query, for ``version_in_force``.

    The ingest calls it before a batch, so each request type in the batch does not query again.
    """
    newest = (
        select(WorkflowVersion.type, func.max(WorkflowVersion.number).label("number"))
        .group_by(WorkflowVersion.type)
        .subquery()
    )
    query = select(WorkflowVersion).join(
        newest,
        and_(WorkflowVersion.type == newest.c.type, WorkflowVersion.number == newest.c.number),
    )
    with session.no_autoflush:
        versions = session.scalars(query).all()
    cache = transaction_cache(session)
    for version in versions:
        cache[("workflow_version", version.type)] = version


def version_in_force(
    session: Session, request_type: str, directory: Path = SHIPPED_WORKFLOW_DIR
) -> WorkflowVersion:
    """Return the type's newest stored version, storing the shipped file as version 1 if none.

    :raises WorkflowError: no version is stored yet and the shipped file is invalid.
    """
    cache = transaction_cache(session)
    version = cache.get(("workflow_version", request_type)) or latest_version(session, request_type)
    if version is not None:
        cache[("workflow_version", request_type)] = version
        return version
    path = directory / f"{request_type}.yaml"
    workflow, issues = check_file(path)
    if workflow is None:
        raise WorkflowError(issues)
    # NOTE: two processes that store the first version at the same moment collide on the
    # unique (type, number) key. The second transaction then fails, and the ingest retry repeats it.
    return add_version(
        session, request_type, path.read_text(encoding="utf-8"), SYSTEM_ACTOR, str(path.name)
    )


def start_workflow(session: Session, ticket: Ticket, actor: str) -> WorkflowInstance:
    """Plan a new ticket's checklist from the workflow version in force, and audit it."""
    version = version_in_force(session, ticket.type)
    instance = WorkflowInstance(ticket=ticket, version=version)
    session.add(instance)
    instance_id = ensure_id(session, instance)
    transaction_cache(session)[("workflow_instance", ticket.id)] = instance

    # Nothing has been decided yet, so each step's status follows from its own conditions.
    steps = workflow_of(version).steps
    rows = [
        {
            "instance_id": instance_id,
            "version_id": version.id,
            "step_id": step.id,
            "position": position,
            "required": step.required,
            "status": str(_STATUS_OF[step_applicability(step, {})]),
            "due_at": compute_step_due(step, ticket.received_at, ticket.due_at),
        }
        for position, step in enumerate(steps)
    ]
    if hands_out_ids(session):
        # The flush that writes the instance writes the steps of every ticket of the batch with
        # one executemany, without the ORM's work per object.
        queue_rows(session, WorkflowStep.__table__, rows)
    else:
        # One bulk INSERT: SQLite hands back new ids one row at a time, so adding the steps as
        # objects cost an INSERT each. render_nulls keeps every row in one shape, so that steps
        # without a due date do not split the INSERT into several statements.
        session.execute(insert(WorkflowStep).execution_options(render_nulls=True), rows)
        session.expire(instance, ["steps"])

    record_event(
        session,
        AuditTag.WORKFLOW_START,
        actor,
        ticket,
        {"type": version.type, "version": version.number, "steps": len(rows)},
    )
    logger.info("ticket %s follows %s workflow v%s", ticket.reference, version.type, version.number)
    return instance


def instance_of(session: Session, ticket: Ticket) -> WorkflowInstance | None:
    """Return the ticket's workflow instance, or None for a ticket opened before workflows."""
    started = transaction_cache(session).get(("workflow_instance", ticket.id))
    if started is not None:
        if has_queued(session, WorkflowStep.__table__):
            # The steps of a workflow started in this transaction may still wait in the queue.
            flush_queued(session)
            session.expire(started, ["steps"])
        return started  # type: ignore[no-any-return]
    return session.scalars(
        select(WorkflowInstance).where(WorkflowInstance.ticket_id == ticket.id)
    ).first()


def replan_workflow(session: Session, ticket: Ticket, actor: str) -> WorkflowInstance:
    """Re-plan a retyped ticket: keep finished steps, replace the rest by the new type's steps."""
    instance = instance_of(session, ticket)
    if instance is None:
        return start_workflow(session, ticket, actor)
    old_version = instance.version
    version = version_in_force(session, ticket.type)

    # Unfinished steps are marked dropped rather than deleted, so their notes and assignments
    # stay on record. A step id that the new workflow also has is planned again from it.
    by_id = {step.step_id: step for step in instance.steps}
    kept = sorted(step.step_id for step in instance.steps if step.is_finished)
    dropped = []
    for step in instance.steps:
        if not step.is_finished and step.status != StepStatus.DROPPED:
            step.status = StepStatus.DROPPED
            dropped.append(step.step_id)
    position = max((step.position for step in instance.steps), default=-1) + 1
    added = []
    for definition in workflow_of(version).steps:
        existing = by_id.get(definition.id)
        if existing is not None and existing.is_finished:
            continue
        if existing is not None:
            existing.version = version
            existing.required = definition.required
            existing.status = StepStatus.OPEN
        else:
            instance.steps.append(_new_step(version, definition, position))
            position += 1
        added.append(definition.id)
    _renumber(instance, [d.id for d in workflow_of(version).steps])
    instance.version = version
    _apply_plan(instance, ticket)
    session.flush()

    record_event(
        session,
        AuditTag.WORKFLOW_REPLAN,
        actor,
        ticket,
        {
            "from": f"{old_version.type} v{old_version.number}",
            "to": f"{version.type} v{version.number}",
            "kept": kept,
            "dropped": sorted(set(dropped) - set(added)),
            "added": added,
        },
    )
    logger.info("ticket %s re-planned onto %s workflow", ticket.reference, version.type)
    return instance


def _renumber(instance: WorkflowInstance, order: list[str]) -> None:
    """Order the steps: finished ones first as they were, then the workflow's, then dropped."""

    def key(step: WorkflowStep) -> tuple[int, int]:
        if step.is_finished:
            return (0, step.position)
        if step.status == StepStatus.DROPPED:
            return (2, step.position)
        return (1, order.index(step.step_id) if step.step_id in order else len(order))

    for position, step in enumerate(sorted(instance.steps, key=key)):
        step.position = position


def _new_step(version: WorkflowVersion, step: Step, position: int) -> WorkflowStep:
    return WorkflowStep(
        version=version,
        step_id=step.id,
        position=position,
        required=step.required,
        status=StepStatus.OPEN,
    )


def _apply_plan(instance: WorkflowInstance, ticket: Ticket) -> None:
    """Set the status and due moment of every unfinished step from the decisions taken so far."""
    decisions = {
        step.step_id: step.decision for step in instance.steps if step.status == StepStatus.DONE
    }
    for step in instance.steps:
        if step.is_finished or step.status == StepStatus.DROPPED:
            continue
        definition = step_definition(step)
        step.status = _STATUS_OF[step_applicability(definition, decisions)]
        step.due_at = compute_step_due(definition, ticket.received_at, ticket.due_at)


def refresh_plan(session: Session, ticket: Ticket) -> None:
    """Recompute the due moments of unfinished steps after the ticket's deadline moved."""
    instance = instance_of(session, ticket)
    if instance is not None:
        _apply_plan(instance, ticket)


def _role_of(session: Session, actor: str) -> str | None:
    user = session.scalars(select(User).where(User.email == actor)).first()
    return user.role if user is not None else None


def _is_manager(session: Session, actor: str) -> bool:
    return _role_of(session, actor) in (Role.MANAGER, Role.ADMIN)


def _require_open_ticket(step: WorkflowStep) -> Ticket:
    ticket = step.instance.ticket
    if ticket.is_closed:
        raise WorkflowStateError(f"ticket {ticket.reference} is closed; reopen it to change steps")
    return ticket


def check_step(
    session: Session, step: WorkflowStep, actor: str, option: str | None = None
) -> WorkflowStep:
    """Mark a step done; a decision needs one of its options, an approval a manager.

    :raises WorkflowStateError: the step is not open, the option is unknown or the actor may not.
    """
    ticket = _require_open_ticket(step)
    definition = step_definition(step)
    if step.status != StepStatus.OPEN:
        raise WorkflowStateError(f"step {step.step_id} is {step.status}, not open")
    if definition.kind is StepKind.DECISION:
        allowed = [choice.id for choice in definition.options]
        if option not in allowed:
            raise WorkflowStateError(
                f"step {step.step_id} needs a decision; allowed: {', '.join(allowed)}"
            )
    if definition.kind is StepKind.APPROVAL and not _is_manager(session, actor):
        raise WorkflowStateError(f"step {step.step_id} must be approved by a manager")
    from inbox.services import verification  # local: that module imports this one

    verification.check_step_records(session, step)

    step.status = StepStatus.DONE
    step.decision = option if definition.kind is StepKind.DECISION else None
    step.completed_at = utcnow()
    step.completed_by = actor
    _apply_plan(step.instance, ticket)

    record_event(
        session,
        AuditTag.STEP_CHECK,
        actor,
        ticket,
        {"step": step.step_id, "decision": step.decision, **_changed_statuses(step.instance)},
    )
    logger.info("ticket %s step %s done by %s", ticket.reference, step.step_id, actor)
    if definition.template == verification.IDENTITY_TEMPLATE:
        verification.record_identity_request(session, step, actor)
    return step


def _changed_statuses(instance: WorkflowInstance) -> dict[str, list[str]]:
    """List the steps that apply now, for the audit record of a decision."""
    return {"open": [s.step_id for s in instance.steps if s.status == StepStatus.OPEN]}


def uncheck_step(session: Session, step: WorkflowStep, actor: str) -> WorkflowStep:
    """Reopen a done or skipped step; steps that hang on its decision wait again.

    :raises WorkflowStateError: the step is not done or skipped.
    """
    ticket = _require_open_ticket(step)
    if not step.is_finished:
        raise WorkflowStateError(f"step {step.step_id} is {step.status}, not done or skipped")
    previous = step.status
    step.status = StepStatus.OPEN
    step.decision = None
    step.skip_reason = ""
    step.completed_at = None
    step.completed_by = ""
    _apply_plan(step.instance, ticket)
    session.flush()

    record_event(
        session,
        AuditTag.STEP_UNCHECK,
        actor,
        ticket,
        {"step": step.step_id, "from": previous, "to": step.status},
    )
    logger.info("ticket %s step %s reopened by %s", ticket.reference, step.step_id, actor)
    return step


def skip_step(session: Session, step: WorkflowStep, actor: str, reason: str) -> WorkflowStep:
    """Skip an open or waiting step with a reason; only a manager or admin skips an approval.

    :raises WorkflowStateError: the reason is empty, the step is finished already, or the step
        is an approval and the actor is neither a manager nor an admin.
    """
    ticket = _require_open_ticket(step)
    reason = reason.strip()
    if not reason:
        raise WorkflowStateError(f"skipping step {step.step_id} needs a reason")
    # Skipping a sign-off would let an agent bypass the approval that check_step enforces.
    if step_definition(step).kind is StepKind.APPROVAL and not _is_manager(session, actor):
        raise WorkflowStateError(
            f"step {step.step_id} is a manager approval: only a manager or admin may skip it"
        )
    if step.is_finished or step.status in (StepStatus.NOT_APPLICABLE, StepStatus.DROPPED):
        raise WorkflowStateError(f"step {step.step_id} is {step.status}; only open steps skip")
    step.status = StepStatus.SKIPPED
    step.skip_reason = reason[:MAX_REASON_CHARS]
    step.completed_at = utcnow()
    step.completed_by = actor
    session.flush()

    record_event(
        session,
        AuditTag.STEP_SKIP,
        actor,
        ticket,
        {"step": step.step_id, "reason": step.skip_reason},
    )
    logger.info("ticket %s step %s skipped by %s", ticket.reference, step.step_id, actor)
    return step


def add_note(
    session: Session,
    step: WorkflowStep,
    actor: str,
    text: str,
    evidence: Attachment | None = None,
) -> StepNote:
    """Add a note to a step, with an optional evidence file; the audit event seals both by SHA-256.

    :raises WorkflowStateError: the note is too long, or empty without an evidence file.
    """
    text = text.strip()
    if len(text) > MAX_NOTE_CHARS or not (text or evidence is not None):
        raise WorkflowStateError(f"a note needs 1 to {MAX_NOTE_CHARS} characters or a file")
    note = StepNote(author=actor, text=text, evidence=evidence)
    step.notes.append(note)
    session.flush()

    data: dict[str, object] = {
        "step": step.step_id,
        "note": note.id,
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }
    if evidence is not None:
        data["attachment"] = evidence.id
        data["attachment_sha256"] = evidence.sha256
        data["attachment_size"] = evidence.size
    record_event(session, AuditTag.STEP_NOTE, actor, step.instance.ticket, data)
    return note


def assign_step(
    session: Session, step: WorkflowStep, assignee: User | None, actor: str
) -> WorkflowStep:
    """Assign a step to a user, or unassign it with None."""
    previous = step.assignee.email if step.assignee is not None else None
    step.assignee = assignee
    session.flush()

    record_event(
        session,
        AuditTag.STEP_ASSIGN,
        actor,
        step.instance.ticket,
        {"step": step.step_id, "from": previous, "to": assignee.email if assignee else None},
    )
    return step


def complete_reply_step(session: Session, ticket: Ticket, template: str, actor: str) -> None:
    """Mark the open reply step that names ``template`` done, once its mail is queued."""
    instance = instance_of(session, ticket)
    if instance is None or ticket.is_closed:
        return
    for step in instance.steps:
        if step.status != StepStatus.OPEN:
            continue
        definition = step_definition(step)
        if definition.kind is StepKind.REPLY and definition.template == template:
            check_step(session, step, actor)
            return


def open_required_steps(session: Session, ticket: Ticket) -> list[WorkflowStep]:
    """List the required steps that are open or wait for a decision."""
    instance = instance_of(session, ticket)
    if instance is None:
        return []
    return [
        step
        for step in instance.steps
        if step.required and step.status in (StepStatus.OPEN, StepStatus.PENDING)
    ]


UNFINISHED_STATUSES = (StepStatus.OPEN, StepStatus.PENDING)
"""Statuses of steps that still need work; done, skipped, dropped and not applicable ones do not."""


def next_steps_due(session: Session, ticket_ids: list[int]) -> dict[int, WorkflowStep]:
    """Return, per ticket id, its unfinished step with the earliest due moment, in one query.

    Steps come with their workflow version loaded, so their titles need no further query. A
    tie goes to the step that comes first in the checklist. Tickets without a dated unfinished
    step are left out.
    """
    if not ticket_ids:
        return {}
    unfinished = [str(status) for status in UNFINISHED_STATUSES]
    earliest = (
        select(WorkflowStep.instance_id, func.min(WorkflowStep.due_at).label("due_at"))
        .join(WorkflowInstance, WorkflowInstance.id == WorkflowStep.instance_id)
        .where(
            WorkflowInstance.ticket_id.in_(ticket_ids),
            WorkflowStep.status.in_(unfinished),
            WorkflowStep.due_at.is_not(None),
        )
        .group_by(WorkflowStep.instance_id)
        .subquery()
    )
    rows = session.execute(
        select(WorkflowInstance.ticket_id, WorkflowStep)
        .join(WorkflowStep, WorkflowStep.instance_id == WorkflowInstance.id)
        .join(
            earliest,
            and_(
                earliest.c.instance_id == WorkflowStep.instance_id,
                earliest.c.due_at == WorkflowStep.due_at,
            ),
        )
        .where(WorkflowStep.status.in_(unfinished))
        .options(joinedload(WorkflowStep.version))
        .order_by(WorkflowStep.position)
    ).all()
    steps: dict[int, WorkflowStep] = {}
    for ticket_id, step in rows:
        steps.setdefault(ticket_id, step)
    return steps


def can_close(session: Session, ticket: Ticket) -> bool:
    """Tell whether the ticket may close without a manager's override."""
    return not ticket.is_closed and not open_required_steps(session, ticket)


def close_ticket(
    session: Session,
    ticket: Ticket,
    outcome: str,
    actor: str,
    override_reason: str | None = None,
) -> None:
    """Close a ticket with its outcome; open required steps need a manager's override reason.

    :raises WorkflowStateError: unknown outcome, ticket already closed, or open required steps
        without a manager's override.
    """
    result = parse_choice(Outcome, outcome, "outcome", WorkflowStateError)
    if ticket.is_closed:
        raise WorkflowStateError(f"ticket {ticket.reference} is closed already")
    blocking = [step.step_id for step in open_required_steps(session, ticket)]
    reason = (override_reason or "").strip()
    if blocking and not reason:
        raise WorkflowStateError(
            f"ticket {ticket.reference} has open required steps: {', '.join(blocking)}; "
            "finish or skip them, or have a manager close it with an override reason"
        )
    if blocking and not _is_manager(session, actor):
        raise WorkflowStateError("only a manager may close a ticket with open required steps")

    instance = instance_of(session, ticket)
    if instance is not None:
        instance.outcome = result.value
        instance.override_reason = reason[:MAX_REASON_CHARS] if blocking else ""
    change_status(session, ticket, TicketStatus.CLOSED, actor)

    record_event(
        session,
        AuditTag.TICKET_CLOSE,
        actor,
        ticket,
        {
            "outcome": result.value,
            "override": bool(blocking),
            "override_reason": reason[:MAX_REASON_CHARS] if blocking else "",
            "open_required_steps": blocking,
        },
    )
    logger.info(
        "ticket %s closed as %s by %s%s",
        ticket.reference,
        result.value,
        actor,
        " with an override" if blocking else "",
    )
