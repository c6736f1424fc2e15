"""SQLAlchemy models, one module per aggregate."""

from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.mailbox import Mailbox
from inbox.models.message import Attachment, Blob, MailLocation, Message, RawMessage
from inbox.models.ticket import ReferenceCounter, Ticket
from inbox.models.user import Role, User

__all__ = [
    "Attachment",
    "AuditEvent",
    "AuditTag",
    "Blob",
    "MailLocation",
    "Mailbox",
    "Message",
    "RawMessage",
    "ReferenceCounter",
    "Role",
    "Ticket",
    "User",
]
