"""Mailboxes that an admin adds besides the INBOX_IMAP_* default, each change audited."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox.audit import record_event
from inbox.config import IMAP_SECURITY_CHOICES, PROCESSED_ACTION_CHOICES, is_loopback_host
from inbox.errors import InputError
from inbox.models.audit import AuditTag
from inbox.models.mailbox import Mailbox
from inbox.secrets_box import encrypt_secret

logger = logging.getLogger(__name__)

RESERVED_NAME = "default"
"""Name of the mailbox configured through the environment; admins cannot take it."""


@dataclass
class MailboxInput:
    """The fields of the mailbox form."""

    name: str
    host: str
    port: int
    security: str
    username: str
    password: str  # empty on update means: keep the stored password
    folder: str = "INBOX"
    processed_action: str = "seen"
    processed_folder: str = "Processed"
    enabled: bool = True


def validate_mailbox(data: MailboxInput) -> None:
    """Check a mailbox form; raise InputError naming the field and what is allowed."""
    if not data.name.strip() or data.name.strip() == RESERVED_NAME:
        raise InputError(f"mailbox name {data.name!r} is empty or reserved: choose another name")
    if not data.host.strip():
        raise InputError("the IMAP host is missing: give the server name, such as imap.example.org")
    if not 1 <= data.port <= 65535:
        raise InputError(
            f"port {data.port} is invalid: use 1 to 65535 (993 for ssl, 143 otherwise)"
        )
    if data.security not in IMAP_SECURITY_CHOICES:
        raise InputError(
            f"security {data.security!r} is invalid: use {', '.join(IMAP_SECURITY_CHOICES)}"
        )
    if data.security == "none" and not is_loopback_host(data.host):
        raise InputError(f"security none is only allowed for a loopback host, not {data.host!r}")
    if data.processed_action not in PROCESSED_ACTION_CHOICES:
        raise InputError(
            f"action {data.processed_action!r} is invalid: use {', '.join(PROCESSED_ACTION_CHOICES)}"
        )


def create_mailbox(session: Session, data: MailboxInput, secret_key: str, actor: str) -> Mailbox:
    """Add a mailbox to poll, with its password encrypted; the caller commits."""
    validate_mailbox(data)
    if not data.password:
        raise InputError("the IMAP password is missing")
    if session.scalars(select(Mailbox).where(Mailbox.name == data.name.strip())).first():
        raise InputError(f"a mailbox named {data.name.strip()!r} already exists")

    mailbox = Mailbox(name=data.name.strip(), password=encrypt_secret(data.password, secret_key))
    apply_fields(mailbox, data)
    session.add(mailbox)
    session.flush()
    record_event(session, AuditTag.MAILBOX_CREATE, actor, None, describe(mailbox))
    logger.info("mailbox %s added by %s", mailbox.name, actor)
    return mailbox


def update_mailbox(
    session: Session, mailbox: Mailbox, data: MailboxInput, secret_key: str, actor: str
) -> None:
    """Change a mailbox; an empty password keeps the stored one. The caller commits."""
    data.name = mailbox.name
    validate_mailbox(data)
    before = describe(mailbox)
    apply_fields(mailbox, data)
    if data.password:
        mailbox.password = encrypt_secret(data.password, secret_key)
    after = describe(mailbox)
    record_event(
        session,
        AuditTag.MAILBOX_UPDATE,
        actor,
        None,
        {
            "mailbox": mailbox.name,
            "from": before,
            "to": after,
            "password_changed": bool(data.password),
        },
    )


def delete_mailbox(session: Session, mailbox: Mailbox, actor: str) -> None:
    """Stop polling a mailbox and forget its settings; stored mail and tickets stay."""
    record_event(session, AuditTag.MAILBOX_DELETE, actor, None, describe(mailbox))
    session.delete(mailbox)


def apply_fields(mailbox: Mailbox, data: MailboxInput) -> None:
    """Copy the form's non-secret fields onto the row."""
    mailbox.host = data.host.strip()
    mailbox.port = data.port
    mailbox.security = data.security
    mailbox.username = data.username.strip()
    mailbox.folder = data.folder.strip() or "INBOX"
    mailbox.processed_action = data.processed_action
    mailbox.processed_folder = data.processed_folder.strip() or "Processed"
    mailbox.enabled = data.enabled


def describe(mailbox: Mailbox) -> dict[str, object]:
    """Return the audited view of a mailbox, without its password."""
    return {
        "mailbox": mailbox.name,
        "host": mailbox.host,
        "port": mailbox.port,
        "security": mailbox.security,
        "username": mailbox.username,
        "folder": mailbox.folder,
        "processed_action": mailbox.processed_action,
        "enabled": mailbox.enabled,
    }
