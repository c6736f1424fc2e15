"""Compress stored mail bytes with lz4 instead of pglz on PostgreSQL.

PostgreSQL compresses large values with pglz by default. Storing a batch of raw mail then took
most of the poller's time, because pglz is slow. lz4 compresses mail about as well with a
fraction of the CPU work. Servers built without lz4 keep pglz, and other databases are left alone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, event, text

LZ4_COLUMNS = {"raw_message_content": "raw", "blob": "data"}
"""The byte column of mail or attachment bytes, by table name."""


def supports_lz4(connection: Connection) -> bool:
    """Tell whether the connection is to a PostgreSQL server that can compress with lz4."""
    if connection.dialect.name != "postgresql":
        return False
    found = connection.execute(
        text(
            "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
            "AND 'lz4' = ANY(enumvals)"
        )
    ).first()
    return found is not None


def compress_with_lz4(connection: Connection, table_name: str, column: str | None = None) -> bool:
    """Make new values of a byte column compress with lz4; return whether it did.

    :param column: the column; by default the table's column in LZ4_COLUMNS.
    """
    column = column or LZ4_COLUMNS[table_name]
    if not supports_lz4(connection):
        return False
    connection.execute(text(f"ALTER TABLE {table_name} ALTER COLUMN {column} SET COMPRESSION lz4"))
    return True


def _after_create(target: Table, connection: Connection, **kw: Any) -> None:
    compress_with_lz4(connection, target.name)


def register(table: Table) -> None:
    """Set lz4 compression on ``table`` whenever ``create_all`` creates it."""
    event.listen(table, "after_create", _after_create)
