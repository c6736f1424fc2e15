"""Exceptions raised by privacy-inbox, all under InboxError."""

from __future__ import annotations


class InboxError(Exception):
    """Base of every error privacy-inbox raises on purpose."""


class InputError(InboxError):
    """Raised when input from outside (a mail, a form, a command-line value) is invalid."""


class ConfigError(InboxError):
    """Raised at start-up when a setting is missing or invalid; the message names the variable."""


class ParseError(InputError):
    """Raised when a raw message cannot be turned into a ParsedMail; the raw bytes are kept."""


class SlaError(InputError):
    """Raised for an unknown request type or an unusable receipt time in deadline arithmetic."""


class MailboxError(InboxError):
    """Raised when the IMAP server cannot be reached, refuses the login or fails a command."""


class TransitionError(InputError):
    """Raised when a ticket change is not allowed, such as an unknown status or type."""
