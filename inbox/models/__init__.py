"""SQLAlchemy models, one module per aggregate."""

from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.correction import TypeCorrection
from inbox.models.mailbox import Mailbox
from inbox.models.message import Attachment, Blob, MailLocation, Message, RawMessage
from inbox.models.ticket import ReferenceCounter, Ticket
from inbox.models.user import Role, User
from inbox.models.workflow import (
    ClockPause,
    DeadlineExtension,
    IdentityCheck,
    MailDelivery,
    StepNote,
    SystemSearch,
    WorkflowInstance,
    WorkflowStep,
    WorkflowVersion,
)

__all__ = [
    "Attachment",
    "AuditEvent",
    "AuditTag",
    "Blob",
    "ClockPause",
    "DeadlineExtension",
    "IdentityCheck",
    "MailLocation",
    "Mailbox",
    "MailDelivery",
    "Message",
    "RawMessage",
    "ReferenceCounter",
    "Role",
    "StepNote",
    "SystemSearch",
    "Ticket",
    "TypeCorrection",
    "User",
    "WorkflowInstance",
    "WorkflowStep",
    "WorkflowVersion",
]
