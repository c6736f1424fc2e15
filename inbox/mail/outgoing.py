"""Build outgoing mail and deliver it through SMTP or, without an SMTP host, to a file outbox.

Every mail carries our loop header, ``X-Auto-Response-Suppress: All`` and a Message-ID whose
local part holds the ticket reference and an HMAC of it, so a reply can be matched to its ticket
and the match verified. Automatic mail also carries ``Auto-Submitted: auto-replied`` (RFC 3834).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import mimetypes
import re
import secrets
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any

from inbox.config import is_loopback_host
from inbox.errors import ConfigError, InboxError
from inbox.mail.filters import LOOP_HEADER

logger = logging.getLogger(__name__)

SMTP_DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}
"""Port per INBOX_SMTP_SECURITY value when INBOX_SMTP_PORT is 0."""

FALLBACK_DOMAIN = "privacy-inbox.invalid"
"""Message-ID domain when MAIL_FROM has none; ``.invalid`` is reserved by RFC 2606."""

MESSAGE_ID_TOKEN_CHARS = 20
"""Hex characters of the HMAC in a Message-ID: 80 bits, enough against guessing."""

MAX_REFERENCES = 20
"""Message-IDs kept in the References header; older ones are dropped from the front."""

MAX_FILENAME_CHARS = 255
"""Maximum length of an attachment's file name, the size of Attachment.filename."""

DEFAULT_CONTENT_TYPE = "application/octet-stream"
"""Content type of an attachment whose type is unknown or malformed."""

_UNSAFE_FILENAME_CHARS = re.compile(r'[\x00-\x1f\x7f"*:<>?|]+')
_CONTENT_TYPE_PATTERN = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")

_MESSAGE_ID_PATTERN = re.compile(
    r"^<?(?P<reference>[A-Z]{3}-\d{4}-\d{5})\.(?P<nonce>[0-9a-f]{16})\.(?P<token>[0-9a-f]+)@"
)


class DeliveryError(InboxError):
    """Raised when the SMTP server cannot be reached or rejects a mail; a retry may succeed."""


@dataclass(frozen=True)
class SmtpSettings:
    """Connection settings of the SMTP server."""

    host: str
    port: int
    security: str
    user: str = ""
    password: str = ""
    timeout_seconds: float = 30.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SmtpSettings | None:
        """Read the SMTP settings; return None when INBOX_SMTP_HOST is unset (file outbox).

        :raises ConfigError: INBOX_SMTP_SECURITY=none with a host that is not loopback.
        """
        host = str(config.get("SMTP_HOST") or "")
        if not host:
            return None
        security = str(config.get("SMTP_SECURITY") or "starttls")
        if security == "none" and not is_loopback_host(host):
            raise ConfigError(
                f"INBOX_SMTP_SECURITY=none is only allowed for a loopback host, but "
                f"INBOX_SMTP_HOST is {host!r}: use ssl or starttls"
            )
        port = int(config.get("SMTP_PORT") or SMTP_DEFAULT_PORTS[security])
        return cls(
            host=host,
            port=port,
            security=security,
            user=str(config.get("SMTP_USER") or ""),
            password=str(config.get("SMTP_PASSWORD") or ""),
            timeout_seconds=float(config.get("SMTP_TIMEOUT_SECONDS") or 30.0),
        )


@dataclass(frozen=True)
class MailFile:
    """A file attached to an outgoing mail."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class OutgoingMail:
    """One mail to send about a ticket."""

    reference: str
    sender_name: str
    sender: str
    recipient_name: str
    recipient: str
    subject: str
    text: str
    language: str
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    is_automatic: bool = False
    attachments: tuple[MailFile, ...] = ()


def safe_attachment_name(name: str, fallback: str = "attachment") -> str:
    """Reduce an uploaded file name to its last path part without control or shell characters.

    Letters outside ASCII stay, because the mail encodes them (RFC 2231) and the download
    path reduces them again.
    """
    base = re.split(r"[/\\]", name)[-1]
    cleaned = _UNSAFE_FILENAME_CHARS.sub("_", base).strip(" .")
    if len(cleaned) > MAX_FILENAME_CHARS:
        stem, dot, suffix = cleaned.rpartition(".")
        keep = suffix if dot and len(suffix) <= 16 else ""
        cleaned = cleaned[: MAX_FILENAME_CHARS - len(keep) - 1].rstrip(" .") + (
            f".{keep}" if keep else ""
        )
    return cleaned or fallback


def safe_content_type(content_type: str, filename: str) -> str:
    """Return a well-formed lower-case content type, guessed from the name when none is given."""
    value = content_type.split(";")[0].strip().lower()
    if _CONTENT_TYPE_PATTERN.match(value) and value != DEFAULT_CONTENT_TYPE:
        return value
    guessed, _encoding = mimetypes.guess_type(filename, strict=False)
    return guessed or DEFAULT_CONTENT_TYPE


def domain_of(address: str) -> str:
    """Return the domain of an address, or FALLBACK_DOMAIN when it has none."""
    _name, addr = parseaddr(address)
    domain = addr.rpartition("@")[2].strip().lower()
    return domain or FALLBACK_DOMAIN


def _token(secret_key: str, reference: str, nonce: str) -> str:
    digest = hmac.new(
        secret_key.encode("utf-8"), f"{reference}.{nonce}".encode(), hashlib.sha256
    ).hexdigest()
    return digest[:MESSAGE_ID_TOKEN_CHARS]


def make_message_id(reference: str, secret_key: str, domain: str) -> str:
    """Make a Message-ID (without angle brackets) that embeds the reference and its HMAC."""
    nonce = secrets.token_hex(8)
    return f"{reference}.{nonce}.{_token(secret_key, reference, nonce)}@{domain}"


def verify_message_id(message_id: str, secret_key: str) -> str | None:
    """Return the ticket reference of a Message-ID we made, or None when it is not ours."""
    match = _MESSAGE_ID_PATTERN.match(message_id.strip())
    if match is None:
        return None
    expected = _token(secret_key, match["reference"], match["nonce"])
    if not hmac.compare_digest(expected, match["token"]):
        return None
    return match["reference"]


def subject_with_reference(subject: str, reference: str) -> str:
    """Put ``[REFERENCE]`` in front of a subject unless it carries the reference already."""
    subject = " ".join(subject.split())
    if reference in subject:
        return subject
    return f"[{reference}] {subject}".strip()


def build_message(mail: OutgoingMail, message_id: str, date: datetime) -> EmailMessage:
    """Build the MIME message of an outgoing mail."""
    message = EmailMessage()
    message["From"] = formataddr((mail.sender_name, mail.sender))
    message["To"] = Address(display_name=mail.recipient_name, addr_spec=mail.recipient)
    message["Subject"] = subject_with_reference(mail.subject, mail.reference)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = f"<{message_id}>"
    if mail.in_reply_to:
        message["In-Reply-To"] = f"<{mail.in_reply_to}>"
    references = list(mail.references[-MAX_REFERENCES:])
    if references:
        message["References"] = " ".join(f"<{mid}>" for mid in references)
    if mail.is_automatic:
        message["Auto-Submitted"] = "auto-replied"
    # Asks Exchange and Outlook not to send out-of-office replies or read receipts back.
    message["X-Auto-Response-Suppress"] = "All"
    message[LOOP_HEADER] = mail.reference
    message.set_content(mail.text, charset="utf-8")
    for item in mail.attachments:
        maintype, _slash, subtype = item.content_type.partition("/")
        message.add_attachment(
            item.data, maintype=maintype, subtype=subtype, filename=item.filename
        )
    # Last, because set_content removes every Content-* header set before it, and the first
    # attachment moves the Content-* headers of a single-part mail into its text part.
    message["Content-Language"] = mail.language
    return message


def send_smtp(message: EmailMessage, settings: SmtpSettings) -> None:
    """Hand a message to the SMTP server.

    :raises DeliveryError: the server cannot be reached, refuses the login or a recipient.
    """
    context = ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if settings.security == "ssl":
            client = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout_seconds, context=context
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
        with client:
            if settings.security == "starttls":
                client.starttls(context=context)
            if settings.user:
                client.login(settings.user, settings.password)
            refused = client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(
            f"SMTP delivery to {settings.host}:{settings.port} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if refused:
        raise DeliveryError(f"SMTP server {settings.host} rejected {len(refused)} recipients")


def write_outbox(message: EmailMessage, outbox: Path, message_id: str) -> Path:
    """Write a message as an ``.eml`` file into the outbox folder and return its path."""
    outbox.mkdir(parents=True, exist_ok=True)
    safe_name = re.sub(r"[^A-Za-z0-9.-]", "_", message_id.partition("@")[0])
    path = outbox / f"{safe_name}.eml"
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(bytes(message))
    # A rename is atomic, so a reader of the outbox never reads a partly written file.
    temporary.replace(path)
    return path


def deliver(
    raw: bytes, smtp: SmtpSettings | None, outbox: Path, message_id: str, reference: str
) -> str:
    """Deliver stored message bytes by SMTP, or to the outbox without SMTP; return where to.

    :raises DeliveryError: SMTP delivery failed, or the outbox folder cannot be written.
    """
    message = message_from_bytes(raw, policy=email_policy.default)
    assert isinstance(message, EmailMessage)
    if smtp is None:
        try:
            path = write_outbox(message, outbox, message_id)
        except OSError as exc:
            raise DeliveryError(
                f"mail for ticket {reference} could not be written to the outbox {outbox}: "
                f"{exc}; make that folder writable, or set INBOX_SMTP_HOST"
            ) from exc
        logger.info("mail for ticket %s written to the outbox as %s", reference, path.name)
        return str(path)
    send_smtp(message, smtp)
    logger.info("mail for ticket %s sent through %s:%s", reference, smtp.host, smtp.port)
    return f"smtp://{smtp.host}:{smtp.port}"


def conversation_ids(message_ids: Sequence[str]) -> tuple[str, ...]:
    """Return the distinct non-empty Message-IDs of a conversation, oldest first."""
    seen: dict[str, None] = {}
    for message_id in message_ids:
        if message_id:
            seen.setdefault(message_id, None)
    return tuple(seen)
