"""User accounts: creation and sign-in, each audited."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inbox.audit import record_event
from inbox.errors import InputError
from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.user import Role, User

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
"""Shortest password accepted for a new account."""


MAX_FAILED_SIGN_INS = 5
"""Failed sign-ins for one address within SIGN_IN_WINDOW that lock the address."""

SIGN_IN_WINDOW = timedelta(minutes=15)
"""Period in which MAX_FAILED_SIGN_INS failures lock an address."""

SIGN_IN_LOCK = timedelta(minutes=15)
"""How long a locked address is rejected, counted from the failure that locked it."""

FAIL_PASSWORD = "password"
"""Reason of a failure event for an unknown address, inactive user or wrong password."""

FAIL_THROTTLED = "throttled"
"""Reason of a failure event for an attempt rejected while the address was locked."""


class UserExistsError(InputError):
    """Raised when an account with the same e-mail address already exists."""


class SignInThrottledError(InputError):
    """Raised when an address had too many failed sign-ins lately, until the lock ends."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many failed sign-ins for this address; try again after {until}")
        self.until = until


def find_user(session: Session, email: str) -> User | None:
    """Return the user with this e-mail address (case-insensitive), or None."""
    return session.scalars(
        select(User).where(func.lower(User.email) == email.strip().lower())
    ).first()


def create_user(
    session: Session, *, email: str, password: str, role: Role, actor: str, name: str = ""
) -> User:
    """Create an account with a hashed password and audit it; the caller commits.

    :raises InputError: the address or the password is unusable.
    :raises UserExistsError: the address is taken.
    """
    email = email.strip().lower()
    if "@" not in email:
        raise InputError(
            f"{email!r} is not an e-mail address: give the user's address, such as name@example.org"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(
            f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters"
        )
    if find_user(session, email) is not None:
        raise UserExistsError(f"a user with the address {email} already exists")

    user = User(email=email, name=name, role=str(role))
    user.set_password(password)
    session.add(user)
    session.flush()
    record_event(session, AuditTag.USER_CREATE, actor, None, {"user": user.id, "role": user.role})
    logger.info("user %s created with role %s by %s", user.id, user.role, actor)
    return user


def address_digest(email: str) -> str:
    """Return the SHA-256 of a normalised e-mail address, to count sign-ins without storing it."""
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


def throttled_until(session: Session, email: str, now: datetime) -> datetime | None:
    """Return when sign-in for this address opens again, or None when it is open now.

    A lock starts at the failure that makes MAX_FAILED_SIGN_INS failures within
    SIGN_IN_WINDOW and lasts SIGN_IN_LOCK from that failure. Attempts rejected during a lock
    are audited but not counted, so the lock ends on time even under a stream of attempts.
    """
    earliest = now - SIGN_IN_WINDOW - SIGN_IN_LOCK
    failures = list(
        session.scalars(
            select(AuditEvent.created_at)
            .where(
                AuditEvent.tag == str(AuditTag.USER_LOGIN_FAIL),
                AuditEvent.created_at > earliest,
                AuditEvent.data["address_sha256"].as_string() == address_digest(email),
                AuditEvent.data["reason"].as_string() == FAIL_PASSWORD,
            )
            .order_by(AuditEvent.created_at)
        )
    )
    for index in range(MAX_FAILED_SIGN_INS - 1, len(failures)):
        started = failures[index]
        first_in_window = failures[index - MAX_FAILED_SIGN_INS + 1]
        if started - first_in_window < SIGN_IN_WINDOW and now < started + SIGN_IN_LOCK:
            return started + SIGN_IN_LOCK
    return None


def authenticate(session: Session, email: str, password: str, now: datetime) -> User | None:
    """Return the active user whose password matches, auditing success and failure.

    The failure event stores the SHA-256 of the attempted address, not the address, because
    it may belong to no user and may be a data subject's mistyped address.

    :raises SignInThrottledError: the address had too many failed sign-ins lately; the
        password is not checked.
    """
    digest = address_digest(email)
    until = throttled_until(session, email, now)
    if until is not None:
        record_event(
            session,
            AuditTag.USER_LOGIN_FAIL,
            "anonymous",
            None,
            {"user": None, "address_sha256": digest, "reason": FAIL_THROTTLED},
        )
        logger.warning("sign-in rejected for address hash %s until %s", digest[:12], until)
        raise SignInThrottledError(until)

    user = find_user(session, email)
    if user is None or not user.is_active or not user.check_password(password):
        record_event(
            session,
            AuditTag.USER_LOGIN_FAIL,
            "anonymous",
            None,
            {"user": user.id if user else None, "address_sha256": digest, "reason": FAIL_PASSWORD},
        )
        return None
    record_event(session, AuditTag.USER_LOGIN, user.email, None, {"user": user.id})
    return user


def record_logout(session: Session, user: User) -> None:
    """Audit a sign-out; the caller commits."""
    record_event(session, AuditTag.USER_LOGOUT, user.email, None, {"user": user.id})


def change_password(session: Session, email: str, password: str, actor: str) -> User:
    """Set a new password for an existing account and audit it; the caller commits.

    :raises InputError: no account has this address, or the password is too short.
    """
    user = find_user(session, email)
    if user is None:
        raise InputError(
            f"no user has the address {email!r}: check it with the admin, or create one"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(
            f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters"
        )
    user.set_password(password)
    record_event(session, AuditTag.USER_PASSWORD_CHANGE, actor, None, {"user": user.id})
    logger.info("password of user %s changed by %s", user.id, actor)
    return user
