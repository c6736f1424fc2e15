"""Encrypt secrets kept in the database (IMAP passwords) with a key derived from SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from inbox.errors import ConfigError

PREFIX = "fernet:"
"""Marks an encrypted value, so a plain value from an older row is still recognised."""


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(("privacy-inbox mailbox secrets\0" + secret_key).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_secret(value: str, secret_key: str) -> str:
    """Return ``value`` encrypted for storage."""
    return PREFIX + _fernet(secret_key).encrypt(value.encode()).decode()


def decrypt_secret(stored: str, secret_key: str) -> str:
    """Return the plain value of a stored secret.

    :raises ConfigError: the value was encrypted under another SECRET_KEY.
    """
    if not stored.startswith(PREFIX):
        return stored
    try:
        return _fernet(secret_key).decrypt(stored.removeprefix(PREFIX).encode()).decode()
    except InvalidToken as exc:
        raise ConfigError(
            "a stored mailbox password cannot be decrypted: INBOX_SECRET_KEY changed since it "
            "was saved; enter the password again on the Mailboxes page"
        ) from exc
