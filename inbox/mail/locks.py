"""One poller per mailbox at a time: a Redis lock when REDIS_URL is set, else a file lock.

Two workers that poll the same mailbox at once would both fetch the same new UIDs. The stored
rows stay unique either way, but both workers would then process the same raw message and open
two tickets for it. The lock makes the second worker skip the poll instead.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.exceptions import LockError, RedisError

from inbox.errors import MailboxError

logger = logging.getLogger(__name__)

LOCK_TIMEOUT_SECONDS = 120.0
"""Lifetime of a Redis lock, so a worker that dies holding it blocks the mailbox this long."""

LOCK_RENEW_SECONDS = 30.0
"""Interval at which the holder of a Redis lock resets its lifetime to LOCK_TIMEOUT_SECONDS."""

LOCK_WAIT_SECONDS = 0.0
"""Time a poll waits for a lock held by another worker before it skips the mailbox."""

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class LockSettings:
    """Location of mailbox locks: Redis when ``redis_url`` is set, else files in ``lock_dir``."""

    redis_url: str = ""
    lock_dir: Path | None = None
    wait_seconds: float = LOCK_WAIT_SECONDS
    timeout_seconds: float = LOCK_TIMEOUT_SECONDS
    renew_seconds: float = LOCK_RENEW_SECONDS


def lock_key(mailbox: str) -> str:
    """Return the Redis key or file name stem of one mailbox's lock."""
    return f"privacy-inbox:poll-lock:{_UNSAFE_NAME.sub('_', mailbox)}"


@contextmanager
def mailbox_lock(mailbox: str, settings: LockSettings) -> Iterator[bool]:
    """Hold the poll lock of ``mailbox`` for the ``with`` block; yield False when another holds it.

    :raises MailboxError: the lock store (Redis or the lock folder) cannot be reached.
    """
    if settings.redis_url:
        with _redis_lock(mailbox, settings) as acquired:
            yield acquired
        return
    if settings.lock_dir is None:
        raise MailboxError(
            f"no lock store for mailbox {mailbox}: set REDIS_URL or give the instance folder"
        )
    with _file_lock(mailbox, settings.lock_dir, settings.wait_seconds) as acquired:
        yield acquired


@contextmanager
def _redis_lock(mailbox: str, settings: LockSettings) -> Iterator[bool]:
    """Hold a redis-py Lock, renewed from a daemon thread while the block runs."""
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=10)
    lock = client.lock(
        lock_key(mailbox),
        timeout=settings.timeout_seconds,
        blocking=settings.wait_seconds > 0,
        blocking_timeout=settings.wait_seconds or None,
        # The renewal thread must see the token that the polling thread acquired.
        thread_local=False,
    )
    try:
        acquired = bool(lock.acquire())
    except RedisError as exc:
        client.close()
        raise MailboxError(
            f"cannot take the poll lock of mailbox {mailbox} in Redis: {exc}; check REDIS_URL"
        ) from exc
    if not acquired:
        client.close()
        yield False
        return

    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew_redis_lock,
        args=(lock, mailbox, settings.renew_seconds, stop),
        name=f"poll-lock-{mailbox}",
        daemon=True,
    )
    renewer.start()
    try:
        yield True
    finally:
        stop.set()
        renewer.join()
        try:
            lock.release()
        except (LockError, RedisError):
            # The lock expired (the renewer could not reach Redis) or another worker took it.
            logger.warning("poll lock of mailbox %s was lost before release", mailbox)
        client.close()


def _renew_redis_lock(
    lock: redis.lock.Lock, mailbox: str, interval: float, stop: threading.Event
) -> None:
    """Reset the lock's lifetime every ``interval`` seconds until ``stop`` is set."""
    while not stop.wait(interval):
        try:
            lock.reacquire()
        except (LockError, RedisError):
            logger.error("renewing the poll lock of mailbox %s failed", mailbox, exc_info=True)
            return


@contextmanager
def _file_lock(mailbox: str, lock_dir: Path, wait_seconds: float) -> Iterator[bool]:
    """Hold an exclusive flock() on a file in ``lock_dir``; the kernel drops it when we die."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{lock_key(mailbox).replace(':', '-')}.lock"
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise MailboxError(f"cannot open the poll lock file {path}: {exc}") from exc
    try:
        acquired = _flock(handle, wait_seconds)
        if not acquired:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)


def _flock(handle: int, wait_seconds: float) -> bool:
    """Try to take an exclusive flock, polling until ``wait_seconds`` have passed."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
        time.sleep(0.1)
