"""IMAP connections: how to reach a mailbox, connect with retries, and let go cleanly."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from inbox.errors import MailboxError

logger = logging.getLogger(__name__)

CONNECT_ATTEMPTS = 4
"""Connection attempts of one poll before it gives up and reports the error."""

CONNECT_BACKOFF_SECONDS = 1.0
"""First wait between connection attempts; doubled after each failure."""

DROPPED_CONNECTION_ERRORS = (OSError, IMAPClientAbortError)
"""Errors of a lost connection: socket errors, timeouts (an OSError) and a server's BYE."""


@dataclass(frozen=True)
class MailboxConfig:
    """How to reach one IMAP folder and what to do with processed mail."""

    name: str
    host: str
    port: int
    security: str
    username: str
    password: str
    folder: str = "INBOX"
    processed_action: str = "seen"
    processed_folder: str = "Processed"
    timeout_seconds: float = 30.0
    batch_size: int = 100
    max_message_bytes: int = 40 * 1024 * 1024

    def describe(self) -> str:
        """Name the server and account for log lines and errors, without the password."""
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"


def connect(config: MailboxConfig) -> IMAPClient:
    """Open and log in to the IMAP server; translate every failure into MailboxError."""
    context = ssl.create_default_context()
    try:
        client = IMAPClient(
            config.host,
            port=config.port,
            ssl=config.security == "ssl",
            ssl_context=context if config.security == "ssl" else None,
            timeout=config.timeout_seconds,
        )
    except (OSError, IMAPClientError) as exc:
        raise MailboxError(
            f"cannot connect to IMAP server {config.host}:{config.port} as {config.username} "
            f"({config.security}): {exc}"
        ) from exc

    # imapclient 4.1 sets imaplib's debug level to 5, which makes imaplib repr() every fetched
    # literal for its log hook: about seven times slower fetches.
    client._imap.debug = 0
    client.normalise_times = False
    try:
        if config.security == "starttls":
            client.starttls(context)
        client.login(config.username, config.password)
    except LoginError as exc:
        close_quietly(client)
        raise MailboxError(
            f"IMAP login failed for {config.describe()}: check INBOX_IMAP_USER and "
            f"INBOX_IMAP_PASSWORD ({exc})"
        ) from exc
    except (OSError, IMAPClientError) as exc:
        close_quietly(client)
        raise MailboxError(
            f"IMAP session with {config.host}:{config.port} as {config.username} "
            f"({config.security}) failed: {exc}"
        ) from exc
    return client


def close_quietly(client: IMAPClient) -> None:
    """Close the socket of a client whose session failed."""
    try:
        client.shutdown()
    except (OSError, IMAPClientError):
        logger.debug("closing a failed IMAP connection raised; it was already closed")


def connect_with_retry(
    config: MailboxConfig,
    attempts: int = CONNECT_ATTEMPTS,
    backoff_seconds: float = CONNECT_BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> IMAPClient:
    """Connect, retrying with doubling waits; re-raise the last MailboxError when all fail."""
    delay = backoff_seconds
    for attempt in range(1, attempts + 1):
        try:
            return connect(config)
        except MailboxError as exc:
            if attempt == attempts:
                raise
            logger.warning(
                "IMAP connect attempt %s of %s to %s failed, retrying in %.1f s: %s",
                attempt,
                attempts,
                config.describe(),
                delay,
                exc,
            )
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def as_utc(value: object) -> datetime:
    """Return an IMAP INTERNALDATE as an aware UTC datetime."""
    if not isinstance(value, datetime):
        raise MailboxError(f"server returned an INTERNALDATE that is not a date: {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def logout_quietly(client: IMAPClient) -> None:
    """Log out, ignoring a connection that is already gone."""
    try:
        client.logout()
    except (OSError, IMAPClientError):
        logger.debug("logout after poll failed; closing the socket")
        close_quietly(client)
