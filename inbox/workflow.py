"""Load and validate step workflows, and plan their steps: pure, no database, no clock reading.

A workflow is one YAML file per request type in ``workflows/``. Each step has an id, and a title
and a description in Dutch and English. It states whether it is required, which role does it, its
kind (task, reply, approval or decision) and the GDPR articles it serves. Optional fields give a
due offset and conditions on earlier decisions. ``validate_workflow`` lists every problem with
the file, step id and field, so that an author can fix a file in one pass.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from inbox.enums import RequestType
from inbox.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""The safe YAML loader, in C when PyYAML was built with libyaml (about 10 times faster here)."""

SHIPPED_WORKFLOW_DIR = Path(__file__).resolve().parent.parent / "workflows"
"""Folder of the default workflows, one ``<request type>.yaml`` per request type."""

LANGUAGES = ("nl", "en")
"""Languages every title and description must be written in."""

ROLES = ("agent", "manager", "admin")
"""Roles that may own a step, the values of ``inbox.models.user.Role``."""

APPROVER_ROLES = ("manager", "admin")
"""Roles that may own an approval step."""

REPLY_TEMPLATES = frozenset(
    {
        "acknowledgement",
        "identity_verification",
        "clarification",
        "extension",
        "completion",
        "refusal",
        "breach_notification",
    }
)
"""Mail templates a reply step may name; each exists as ``templates/mail/<name>.<nl|en>.txt``."""

STEP_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
"""Form of step and option ids: lowercase letters, digits and _, starting with a letter."""

MAX_OFFSET_DAYS = 366
"""Largest due offset in days; a longer offset is a typing mistake."""

MAX_OFFSET_HOURS = 24 * 31
"""Largest due offset in hours."""

WORKFLOW_KEYS = ("type", "version", "title", "steps")
STEP_KEYS = (
    "id",
    "title",
    "description",
    "required",
    "role",
    "due",
    "kind",
    "template",
    "options",
    "when",
    "articles",
)
OPTION_KEYS = ("id", "title")


class StepKind(StrEnum):
    """Kind of a step, which sets what completing it means."""

    TASK = "task"
    REPLY = "reply"  # send a mail from a named template
    APPROVAL = "approval"  # a manager signs off
    DECISION = "decision"  # pick one of the named options; later steps may depend on it


class DueAnchor(StrEnum):
    """Starting point of a due offset."""

    DAYS_AFTER_RECEIPT = "days_after_receipt"
    HOURS_AFTER_RECEIPT = "hours_after_receipt"
    DAYS_BEFORE_DEADLINE = "days_before_deadline"


class Applicability(StrEnum):
    """Whether a step applies, given the decisions taken so far."""

    APPLIES = "applies"
    PENDING = "pending"  # a decision it depends on is not taken yet
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True)
class Issue:
    """One problem in a workflow file: where it is and what is allowed."""

    file: str
    step: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"step {self.step}" if self.step else "workflow"
        return f"{self.file}: {where}: {self.field}: {self.message}"


class WorkflowError(InputError):
    """Raised when a workflow file is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(issue) for issue in issues))


@dataclass(frozen=True)
class Due:
    """A due offset: a number of days or hours from the anchor."""

    anchor: DueAnchor
    amount: int


@dataclass(frozen=True)
class Option:
    """One choice of a decision step."""

    id: str
    title: Mapping[str, str]


@dataclass(frozen=True)
class Step:
    """One checklist item of a workflow."""

    id: str
    title: Mapping[str, str]
    description: Mapping[str, str]
    kind: StepKind
    required: bool = True
    role: str = "agent"
    due: Due | None = None
    template: str | None = None
    options: tuple[Option, ...] = ()
    when: Mapping[str, tuple[str, ...]] | None = None
    articles: tuple[str, ...] = ()

    def text(self, field: str, language: str) -> str:
        """Return the title or description in ``language``, falling back to English."""
        values: Mapping[str, str] = getattr(self, field)
        return values.get(language) or values["en"]


@dataclass(frozen=True)
class Workflow:
    """A validated workflow of one request type."""

    request_type: RequestType
    version: int
    title: Mapping[str, str]
    steps: tuple[Step, ...]

    def step(self, step_id: str) -> Step | None:
        """Return the step with this id, or None."""
        return next((step for step in self.steps if step.id == step_id), None)


@dataclass(frozen=True)
class PlannedStep:
    """A step with its due moment and whether it applies, for one ticket."""

    step: Step
    due_at: datetime | None
    applicability: Applicability


def _allowed(values: Iterable[str]) -> str:
    return "allowed: " + ", ".join(values)


class _Checker:
    """Collect the issues of one workflow mapping while building its value objects."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.issues: list[Issue] = []

    def add(self, step: str | None, field: str, message: str) -> None:
        self.issues.append(Issue(self.file, step, field, message))

    def texts(self, step: str | None, field: str, value: object) -> dict[str, str]:
        """Check a mapping with a non-empty text for every language."""
        if not isinstance(value, dict):
            self.add(step, field, f"must be a mapping with the keys {', '.join(LANGUAGES)}")
            return {}
        result: dict[str, str] = {}
        for language in LANGUAGES:
            text = value.get(language)
            if not isinstance(text, str) or not text.strip():
                self.add(step, f"{field}.{language}", "missing or empty; write a text")
            else:
                result[language] = text.strip()
        unknown = sorted(str(key) for key in value if key not in LANGUAGES)
        if unknown:
            self.add(step, field, f"unknown languages {unknown}; {_allowed(LANGUAGES)}")
        return result

    def unknown_keys(
        self, step: str | None, data: Mapping[Any, Any], allowed: tuple[str, ...], prefix: str = ""
    ) -> None:
        unknown = sorted(prefix + str(key) for key in data if key not in allowed)
        if unknown:
            self.add(step, ", ".join(unknown), f"unknown field; {_allowed(allowed)}")

    def due(self, step: str, value: object, has_deadline: bool) -> Due | None:
        """Check a due offset: one anchor key with a whole number."""
        anchors = [anchor.value for anchor in DueAnchor]
        if not isinstance(value, dict) or len(value) != 1:
            self.add(step, "due", f"must be a mapping with exactly one key; {_allowed(anchors)}")
            return None
        ((key, amount),) = value.items()
        if key not in anchors:
            self.add(step, f"due.{key}", f"unknown anchor; {_allowed(anchors)}")
            return None
        anchor = DueAnchor(key)
        limit = MAX_OFFSET_HOURS if anchor is DueAnchor.HOURS_AFTER_RECEIPT else MAX_OFFSET_DAYS
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= limit:
            self.add(
                step, f"due.{key}", f"got {amount!r}; allowed: a whole number from 0 to {limit}"
            )
            return None
        if anchor is DueAnchor.DAYS_BEFORE_DEADLINE and not has_deadline:
            self.add(
                step,
                f"due.{key}",
                "this request type has no legal deadline; allowed: days_after_receipt, "
                "hours_after_receipt",
            )
            return None
        return Due(anchor, amount)

    def options(self, step: str, value: object) -> tuple[Option, ...]:
        """Check the options of a decision step."""
        if not isinstance(value, list) or not value:
            self.add(step, "options", "a decision needs a list of at least one option")
            return ()
        options: list[Option] = []
        for number, item in enumerate(value):
            field = f"options[{number}]"
            if not isinstance(item, dict):
                self.add(step, field, "must be a mapping with id and title")
                continue
            self.unknown_keys(step, item, OPTION_KEYS, prefix=f"{field}.")
            option_id = item.get("id")
            if not isinstance(option_id, str) or not STEP_ID_PATTERN.match(option_id):
                self.add(step, f"{field}.id", f"got {option_id!r}; {_id_rule()}")
                continue
            if any(option.id == option_id for option in options):
                self.add(step, f"{field}.id", f"duplicate option id {option_id!r}")
                continue
            options.append(Option(option_id, self.texts(step, f"{field}.title", item.get("title"))))
        return tuple(options)

    def when(
        self, step: str, value: object, decisions: Mapping[str, tuple[Option, ...]]
    ) -> dict[str, tuple[str, ...]] | None:
        """Check conditions: each earlier decision step id maps to a list of its option ids."""
        if not isinstance(value, dict) or not value:
            self.add(step, "when", "must map an earlier decision step id to a list of its options")
            return None
        result: dict[str, tuple[str, ...]] = {}
        for decision_id, wanted in value.items():
            field = f"when.{decision_id}"
            if decision_id not in decisions:
                allowed = sorted(decisions) or ["(no decision step before this one)"]
                self.add(step, field, f"not an earlier decision step; {_allowed(allowed)}")
                continue
            option_ids = [option.id for option in decisions[decision_id]]
            if not isinstance(wanted, list) or not wanted:
                self.add(step, field, f"must be a list of options; {_allowed(option_ids)}")
                continue
            bad = [str(option) for option in wanted if option not in option_ids]
            if bad:
                self.add(step, field, f"unknown options {bad}; {_allowed(option_ids)}")
                continue
            result[str(decision_id)] = tuple(str(option) for option in wanted)
        return result


def _id_rule() -> str:
    return "allowed: lowercase letters, digits and _, starting with a letter, at most 63 characters"


def _check_step(
    checker: _Checker,
    number: int,
    data: object,
    has_deadline: bool,
    decisions: dict[str, tuple[Option, ...]],
    seen: set[str],
) -> Step | None:
    """Check one step mapping; return the step, or None when it has an issue."""
    if not isinstance(data, dict):
        checker.add(f"#{number + 1}", "step", "must be a mapping of fields")
        return None
    step_id = data.get("id")
    if not isinstance(step_id, str) or not STEP_ID_PATTERN.match(step_id):
        checker.add(f"#{number + 1}", "id", f"got {step_id!r}; {_id_rule()}")
        return None
    if step_id in seen:
        checker.add(step_id, "id", "duplicate step id; every step needs its own id")
        return None
    seen.add(step_id)
    before = len(checker.issues)
    checker.unknown_keys(step_id, data, STEP_KEYS)

    title = checker.texts(step_id, "title", data.get("title"))
    description = checker.texts(step_id, "description", data.get("description"))
    kind_value = data.get("kind")
    kinds = [kind.value for kind in StepKind]
    kind = StepKind(kind_value) if kind_value in kinds else None
    if kind is None:
        checker.add(step_id, "kind", f"got {kind_value!r}; {_allowed(kinds)}")

    required = data.get("required", True)
    if not isinstance(required, bool):
        checker.add(step_id, "required", f"got {required!r}; allowed: true, false")
    role = data.get("role", "agent")
    if role not in ROLES:
        checker.add(step_id, "role", f"got {role!r}; {_allowed(ROLES)}")
    elif kind is StepKind.APPROVAL and role not in APPROVER_ROLES:
        checker.add(
            step_id, "role", f"an approval is given by a manager; {_allowed(APPROVER_ROLES)}"
        )

    template = data.get("template")
    if kind is StepKind.REPLY and template not in REPLY_TEMPLATES:
        checker.add(step_id, "template", f"got {template!r}; {_allowed(sorted(REPLY_TEMPLATES))}")
    elif kind is not StepKind.REPLY and template is not None:
        checker.add(step_id, "template", "only a step of kind reply names a template")

    options: tuple[Option, ...] = ()
    if kind is StepKind.DECISION:
        options = checker.options(step_id, data.get("options"))
    elif "options" in data:
        checker.add(step_id, "options", "only a step of kind decision has options")

    due = checker.due(step_id, data["due"], has_deadline) if "due" in data else None
    when = checker.when(step_id, data["when"], decisions) if "when" in data else None
    articles = data.get("articles", [])
    if not isinstance(articles, list) or not all(isinstance(a, str) for a in articles):
        checker.add(step_id, "articles", 'must be a list of texts such as "12(6)"')
        articles = []

    if kind is StepKind.DECISION and options:
        decisions[step_id] = options
    if len(checker.issues) > before or kind is None:
        return None
    return Step(
        id=step_id,
        title=title,
        description=description,
        kind=kind,
        required=bool(required),
        role=str(role),
        due=due,
        template=str(template) if template is not None else None,
        options=options,
        when=when,
        articles=tuple(articles),
    )


def validate_workflow(data: object, file: str) -> tuple[Workflow | None, list[Issue]]:
    """Check a parsed workflow mapping; return the workflow (None on issues) and every issue."""
    checker = _Checker(file)
    if not isinstance(data, dict):
        checker.add(None, "file", "must be a mapping with the fields " + ", ".join(WORKFLOW_KEYS))
        return None, checker.issues
    checker.unknown_keys(None, data, WORKFLOW_KEYS)

    types = [t.value for t in RequestType]
    type_value = data.get("type")
    request_type = RequestType(type_value) if type_value in types else None
    if request_type is None:
        checker.add(None, "type", f"got {type_value!r}; {_allowed(types)}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        checker.add(None, "version", f"got {version!r}; allowed: a whole number from 1")
    title = checker.texts(None, "title", data.get("title"))

    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        checker.add(None, "steps", "must be a list of at least one step")
        raw_steps = []
    has_deadline = request_type is None or request_type is not RequestType.OTHER
    decisions: dict[str, tuple[Option, ...]] = {}
    seen: set[str] = set()
    steps = [
        _check_step(checker, number, item, has_deadline, decisions, seen)
        for number, item in enumerate(raw_steps)
    ]

    if checker.issues or request_type is None:
        return None, checker.issues
    workflow = Workflow(
        request_type=request_type,
        version=int(version),  # type: ignore[arg-type]
        title=title,
        steps=tuple(step for step in steps if step is not None),
    )
    return workflow, []


def parse_workflow_text(text: str, file: str) -> tuple[Workflow | None, list[Issue]]:
    """Parse YAML text and validate it; a YAML syntax error is reported as one issue."""
    try:
        data = yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "file"
        return None, [Issue(file, None, where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    return validate_workflow(data, file)


def check_file(path: Path) -> tuple[Workflow | None, list[Issue]]:
    """Read and validate one workflow file; a shipped file must be named after its type."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Issue(str(path), None, "file", f"cannot be read: {exc}")]
    workflow, issues = parse_workflow_text(text, str(path))
    if workflow is not None and path.stem != workflow.request_type.value:
        issue = Issue(
            str(path),
            None,
            "type",
            f"type {workflow.request_type.value!r} does not match the "
            f"file name; name the file {workflow.request_type.value}.yaml",
        )
        return None, [issue]
    return workflow, issues


def load_directory(directory: Path) -> tuple[dict[RequestType, Workflow], list[Issue]]:
    """Load every ``<type>.yaml`` of a folder and report invalid files and missing types."""
    workflows: dict[RequestType, Workflow] = {}
    issues: list[Issue] = []
    for path in sorted(directory.glob("*.yaml")):
        workflow, file_issues = check_file(path)
        issues.extend(file_issues)
        if workflow is not None:
            workflows[workflow.request_type] = workflow
    for request_type in RequestType:
        if request_type not in workflows and not any(
            Path(issue.file).stem == request_type.value for issue in issues
        ):
            issues.append(
                Issue(str(directory / f"{request_type.value}.yaml"), None, "file", "missing")
            )
    return workflows, issues


def check_shipped_workflows(directory: Path = SHIPPED_WORKFLOW_DIR) -> None:
    """Validate the default workflows, so that the app refuses to start on an invalid one.

    :raises ConfigError: listing every issue, one per line.
    """
    _workflows, issues = load_directory(directory)
    if issues:
        lines = "\n".join(f"  {issue}" for issue in issues)
        raise ConfigError(
            f"the default workflows in {directory} are invalid; fix them or run "
            f"`privacy-inbox workflows check`:\n{lines}"
        )


def step_applicability(step: Step, decisions: Mapping[str, str | None]) -> Applicability:
    """Tell whether a step applies, given the option chosen per decision step (None: open)."""
    if not step.when:
        return Applicability.APPLIES
    for decision_id, wanted in step.when.items():
        chosen = decisions.get(decision_id)
        if chosen is None:
            return Applicability.PENDING
        if chosen not in wanted:
            return Applicability.NOT_APPLICABLE
    return Applicability.APPLIES


def compute_step_due(
    step: Step, received_at: datetime, deadline: datetime | None
) -> datetime | None:
    """Compute a step's due moment from the receipt time and the ticket's legal deadline."""
    if step.due is None:
        return None
    if step.due.anchor is DueAnchor.DAYS_AFTER_RECEIPT:
        return received_at + timedelta(days=step.due.amount)
    if step.due.anchor is DueAnchor.HOURS_AFTER_RECEIPT:
        return received_at + timedelta(hours=step.due.amount)
    if deadline is None:
        return None
    return deadline - timedelta(days=step.due.amount)


def plan_steps(
    workflow: Workflow,
    received_at: datetime,
    deadline: datetime | None,
    decisions: Mapping[str, str | None],
) -> list[PlannedStep]:
    """Plan every step of a workflow for one ticket: due moment and applicability."""
    return [
        PlannedStep(
            step=step,
            due_at=compute_step_due(step, received_at, deadline),
            applicability=step_applicability(step, decisions),
        )
        for step in workflow.steps
    ]


def unknown_templates(workflows: Iterable[Workflow], known: Collection[str]) -> list[str]:
    """List the reply templates that workflows name but ``known`` lacks."""
    named = {step.template for w in workflows for step in w.steps if step.template is not None}
    return sorted(name for name in named if name not in known)
