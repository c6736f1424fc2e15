"""Rows that the next flush writes as plain INSERTs, after the ORM's own rows.

A ticket's checklist has a dozen steps. As ORM objects, the steps of a batch of new tickets cost
more Python work in the unit of work than everything else the batch writes. Code that only
creates such rows queues them here instead: the flush that writes their parent rows then writes
them with one executemany per table, so a foreign key to a row of the same flush holds.

Queued rows live in the transaction cache, so a rollback (a SAVEPOINT's included) drops them with
the objects they belong to. Code that reads the rows back in the same transaction flushes first
(``flush_queued``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, event, insert
from sqlalchemy.orm import Session

from inbox.ids import hands_out_ids, next_sqlite_ids
from inbox.txcache import transaction_cache

_KEY = "rowqueue.rows"
"""Key in the transaction cache of the queued rows: a dict of table to list of rows."""


def queue_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Queue new rows of ``table`` for the session's next flush.

    Each row gives the same columns. On SQLite, inside ``client_ids``, each row of a table with
    an ``id`` key gets its id now, so that ORM objects that get counted ids later in the
    transaction do not take them. Elsewhere the database gives the ids.
    """
    if (
        rows
        and "id" in table.c
        and session.get_bind().dialect.name == "sqlite"
        and hands_out_ids(session)
    ):
        for row, new_id in zip(rows, next_sqlite_ids(session, table, len(rows)), strict=True):
            row["id"] = new_id
    queued: dict[Table, list[dict[str, Any]]] = transaction_cache(session).setdefault(_KEY, {})
    queued.setdefault(table, []).extend(rows)


def has_queued(session: Session, table: Table) -> bool:
    """Return whether rows of ``table`` wait for the next flush."""
    return bool(transaction_cache(session).get(_KEY, {}).get(table))


def flush_queued(session: Session) -> None:
    """Write the queued rows now, with every pending ORM object."""
    session.flush()
    write_queued(session)


def write_queued(session: Session) -> None:
    """Insert the queued rows, one executemany per table, in the order the tables were queued."""
    queued: dict[Table, list[dict[str, Any]]] | None = transaction_cache(session).pop(_KEY, None)
    if not queued:
        return
    connection = session.connection()
    for table, rows in queued.items():
        if rows:
            connection.execute(insert(table), rows)


@event.listens_for(Session, "after_flush")
def _write_after_flush(session: Session, flush_context: object) -> None:
    """Write the queued rows once the flush has written the rows they point to."""
    write_queued(session)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    """Write rows still queued when nothing else was pending, so a commit never drops them."""
    if transaction_cache(session).get(_KEY):
        flush_queued(session)
