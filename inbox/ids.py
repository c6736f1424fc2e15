"""Primary keys handed out before the INSERT, so that a batch of new rows goes in as one statement.

The ORM learns a new row's id from its INSERT. Code that needs the id at once (for an audit
event, say) flushes, and a flush per row costs a round trip per row. Inside ``client_ids`` the
session hands out ids itself: a new object gets its id when code needs it (``ensure_id``) or at
the latest when the flush starts. With every id known, the flush writes each table's new rows
with one executemany.

Where the ids come from:

- PostgreSQL: the column's own sequence, read in blocks. A sequence never hands a value out
  twice, whatever happens to the transaction. Values left over when the transaction ends are
  skipped, as after any rolled back INSERT.
- SQLite: one more than the table's largest id, read once per transaction. This is only safe
  while the transaction holds the database's write lock from its start, so ``client_ids`` hands
  out ids only in a transaction opened with BEGIN IMMEDIATE (``begin_write_transaction``);
  elsewhere it leaves ids to the database.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnDefault, Integer, Table, event, func, inspect, select, text
from sqlalchemy.orm import Mapper, Session

from inbox.txcache import transaction_cache

_ENABLED = "inbox.client_ids"
"""Key in ``Session.info`` that is set while the session hands out ids."""

_WRITE_LOCKED = "inbox.write_locked"
"""Key in the transaction cache: the transaction took SQLite's write lock when it began."""

_NEXT = "inbox.next_id"
"""Key prefix in the transaction cache of the next free id of a SQLite table."""

_POOL = "inbox.id_pool"
"""Key prefix in the transaction cache of the sequence values read for a PostgreSQL table."""

POSTGRES_BLOCK = 128
"""Sequence values read per round trip on PostgreSQL.

A poll's batch of 100 mails takes up to 100 ids from each of the ticket, message, raw message
and location tables, so a block of 64 cost each of them a second round trip per batch.
"""


# NOTE: on SQLite a Core INSERT inside the block that leaves the id to the database can take an
# id already handed out, so code in the block adds rows as ORM objects (see start_workflow).
@contextmanager
def client_ids(session: Session) -> Iterator[None]:
    """Hand out ids to new objects of ``session`` until the block ends."""
    previous = session.info.get(_ENABLED, False)
    session.info[_ENABLED] = True
    try:
        yield
    finally:
        session.info[_ENABLED] = previous
        if not previous:
            # Rows added after the block get their ids from SQLite again, so a counter read
            # now would be stale if a later block of the same transaction used it.
            cache = transaction_cache(session)
            for key in [k for k in cache if isinstance(k, tuple) and k[0] == _NEXT]:
                del cache[key]


def begin_write_transaction(session: Session) -> None:
    """Open the session's transaction so that SAVEPOINTs nest inside it, SQLite included.

    pysqlite in Python 3.11 emits BEGIN only before INSERT, UPDATE and DELETE, so a SAVEPOINT
    sent first would open the transaction itself and its RELEASE would commit everything.
    BEGIN IMMEDIATE also takes the write lock at once, which lets ``client_ids`` count ids.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is not None and not dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        transaction_cache(session)[_WRITE_LOCKED] = True


def ensure_id(session: Session, obj: Any) -> int:
    """Return the id of ``obj``, handing one out inside ``client_ids``, else flushing for it."""
    if obj.id is None:
        table = _id_table(type(obj))
        if table is not None and hands_out_ids(session):
            obj.id = next_id(session, table)
        else:
            session.flush()
    return int(obj.id)


def next_sqlite_ids(session: Session, table: Table, count: int) -> range:
    """Return ``count`` new ids of a SQLite table. Call it only where ``hands_out_ids`` is true."""
    first = next_id(session, table)
    cache = transaction_cache(session)
    cache[(_NEXT, table.name)] = first + count
    return range(first, first + count)


def next_id(session: Session, table: Table) -> int:
    """Return a new id for ``table``. Call it only where ``hands_out_ids`` is true."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        pool: list[int] = transaction_cache(session).setdefault((_POOL, table.name), [])
        if not pool:
            rows = connection.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                    "FROM generate_series(1, :count)"
                ),
                {"table": table.name, "count": POSTGRES_BLOCK},
            )
            pool.extend(sorted((int(row[0]) for row in rows), reverse=True))
        return pool.pop()
    cache = transaction_cache(session)
    key = (_NEXT, table.name)
    value = cache.get(key)
    if value is None:
        value = int(connection.execute(select(func.max(table.c.id))).scalar() or 0) + 1
    cache[key] = value + 1
    return int(value)


def hands_out_ids(session: Session) -> bool:
    """Return whether the session hands out ids now."""
    if not session.info.get(_ENABLED):
        return False
    if session.get_bind().dialect.name == "postgresql":
        return True
    return bool(transaction_cache(session).get(_WRITE_LOCKED))


def _id_table(model: type) -> Table | None:
    """Return the table of a model whose primary key is one integer column named id, or None."""
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        return None
    keys = list(table.primary_key.columns)
    if len(keys) != 1 or keys[0].name != "id" or not isinstance(keys[0].type, Integer):
        return None
    return table


def fill_defaults(obj: Any, table: Table) -> None:
    """Set every column attribute of a new object that has no value to its column default.

    The flush groups consecutive rows of a table that give the same columns into one
    executemany. A row that leaves a defaulted column to the INSERT has other columns than one
    that sets it, so rows of two shapes taking turns (a request and its acknowledgement, say)
    would each go in alone.
    """
    values = inspect(obj).dict
    for key, default in _defaults_of(inspect(obj).mapper, table):
        if values.get(key) is None:
            setattr(obj, key, default.arg if default.is_scalar else default.arg(None))


@functools.cache
def _defaults_of(mapper: Mapper[Any], table: Table) -> list[tuple[str, ColumnDefault]]:
    """Return the attribute names and Python-side defaults of a table's columns."""
    found = []
    for column in table.columns:
        default = column.default
        if isinstance(default, ColumnDefault) and (default.is_scalar or default.is_callable):
            found.append((mapper.get_property_by_column(column).key, default))
    return found


@event.listens_for(Session, "before_flush")
def _assign_ids(session: Session, flush_context: object, instances: object) -> None:
    """Give every new object without an id one, in the order the objects were added."""
    if not hands_out_ids(session):
        return
    new = sorted(session.new, key=lambda obj: inspect(obj).insert_order)
    for obj in new:
        table = _id_table(type(obj))
        if table is None:
            continue
        if obj.id is None:
            obj.id = next_id(session, table)
        fill_defaults(obj, table)
