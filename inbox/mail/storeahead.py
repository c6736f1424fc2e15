"""Store fetched batches over a second database connection while the poller processes earlier ones.

On PostgreSQL, storing a batch's raw bytes keeps the server busy (TOAST rows, compression, the
write-ahead log) while the poller waits for it. A thread with a session of its own stores and
commits each batch instead, so the server's work runs beside the poller's processing. Each batch
is still committed before its processing starts. SQLite allows one writer at a time, so there
the poller stores each batch itself.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from inbox.ids import client_ids
from inbox.mail.store import FetchedMail, StoredBatch, store_fetched, summarise


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
