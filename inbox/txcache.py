"""Values kept for the rest of a session's transaction and dropped on any rollback.

Later work in a transaction need not read some values again. One kind is read under a lock the
transaction keeps, such as the audit chain's tail or a reference counter row taken FOR UPDATE.
The other cannot change before the commit, such as the workflow version in force. A rollback,
a SAVEPOINT's included, drops every value, because it may have undone the rows they came from.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

_KEY = "inbox.transaction_cache"
"""Key in ``Session.info`` of the (transaction, values) pair."""


def current_transaction(session: Session | scoped_session[Session]) -> SessionTransaction | None:
    """Return the outermost transaction of a session or of a scoped session's current one."""
    if isinstance(session, scoped_session):
        return session().get_transaction()
    return session.get_transaction()


def transaction_cache(session: Session | scoped_session[Session]) -> dict[Any, Any]:
    """Return the values cached for the session's current outermost transaction."""
    transaction = current_transaction(session)
    cached = session.info.get(_KEY)
    if cached is None or cached[0] is not transaction:
        cached = (transaction, {})
        session.info[_KEY] = cached
    values: dict[Any, Any] = cached[1]
    return values


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_cache(session: Session, previous_transaction: SessionTransaction) -> None:
    """Drop every cached value after a rollback, a SAVEPOINT's included.

    On PostgreSQL a rollback to a savepoint also releases locks taken after it, so a value read
    under such a lock must be read again.
    """
    session.info.pop(_KEY, None)
