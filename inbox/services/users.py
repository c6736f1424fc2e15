"""User accounts: creation and sign-in, each audited."""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inbox.audit import record_event
from inbox.errors import InputError
from inbox.models.audit import AuditTag
from inbox.models.user import Role, User

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
"""Shortest password accepted for a new account."""


class UserExistsError(InputError):
    """Raised when an account with the same e-mail address already exists."""


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


def authenticate(session: Session, email: str, password: str) -> User | None:
    """Return the active user whose password matches, auditing success and failure."""
    user = find_user(session, email)
    if user is None or not user.is_active or not user.check_password(password):
        record_event(
            session,
            AuditTag.USER_LOGIN_FAIL,
            "anonymous",
            None,
            {"user": user.id if user else None},
        )
        return None
    record_event(session, AuditTag.USER_LOGIN, user.email, None, {"user": user.id})
    return user


def record_logout(session: Session, user: User) -> None:
    """Audit a sign-out; the caller commits."""
    record_event(session, AuditTag.USER_LOGOUT, user.email, None, {"user": user.id})
