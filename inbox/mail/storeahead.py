"""Store fetched batches over a second database connection while the poller processes earlier ones.

On PostgreSQL, storing a batch's raw bytes keeps the server busy (TOAST rows, compression, the
write-ahead log) while the poller waits for it. A thread with a session of its own stores and
commits each batch instead, so the server's work runs beside the poller's processing. Each batch
is still committed before its processing starts. SQLite allows one writer at a time, so there
the poller stores each batch itself.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from inbox.ids import client_ids
from inbox.mail.store import FetchedMail, StoreResult, store_fetched


@dataclass(frozen=True)
class StoredBatch:
    """The outcome of storing one fetched batch."""

    raw_by_id: dict[int, bytes]
    """Bytes of the stored messages that still need processing, by raw message id, in UID order."""
    fetched: int
    created: int


def summarise(fetched: list[FetchedMail], stored: list[StoreResult]) -> StoredBatch:
    """Count a stored batch and collect the bytes of its messages that still need processing."""
    raw_by_id: dict[int, bytes] = {}
    for item, outcome in zip(fetched, stored, strict=True):
        if not outcome.raw_message.is_processed:
            raw_by_id[outcome.raw_message.id] = item.raw
    created = sum(1 for outcome in stored if outcome.created)
    return StoredBatch(raw_by_id, fetched=len(fetched), created=created)


def store_committed(engine: Engine, fetched: list[FetchedMail], source: str) -> StoredBatch:
    """Store a fetched batch in a session of its own and commit it."""
    with Session(bind=engine) as session:
        with client_ids(session):
            stored = store_fetched(session, fetched, source)
        batch = summarise(fetched, stored)
        session.commit()
    return batch


def runs_beside_poller(engine: Engine) -> bool:
    """Tell whether the database takes a second writer while the poller's transaction is open."""
    return engine.dialect.name == "postgresql"


class StoreAhead:
    """One thread that stores fetched batches in order, each in its own committed transaction."""

    def __init__(self, engine: Engine, source: str) -> None:
        """Start the thread that stores batches through ``engine``, labelled with ``source``."""
        self.engine = engine
        self.source = source
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-ahead")

    def submit(self, fetched: list[FetchedMail]) -> Future[StoredBatch]:
        """Start storing a batch. The future's result raises any error of the store."""
        return self._executor.submit(store_committed, self.engine, fetched, self.source)

    def close(self) -> None:
        """Wait for the batch being stored, so nothing is written after the poll has ended."""
        self._executor.shutdown(wait=True, cancel_futures=True)
