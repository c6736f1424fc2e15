"""Job functions, run by an RQ worker or inline by the web process; each calls one service."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from typing import TYPE_CHECKING

from flask import current_app

from inbox.errors import ConfigError
from inbox.extensions import db
from inbox.services.intake import poll_mailboxes
from inbox.services.replies import OUTGOING_QUEUE

if TYPE_CHECKING:
    from flask import Flask
    from redis import Redis
    from rq.cron import CronScheduler

logger = logging.getLogger(__name__)

POLL_QUEUE = "mail"
"""RQ queue that runs the mailbox polls."""

POLL_JOB_TIMEOUT_SECONDS = 3600
"""Maximum run time of one poll job before RQ stops it; a first poll of a large mailbox is slow."""


def poll_job(mailbox_name: str | None = None) -> dict[str, int]:
    """Poll the mailboxes once inside an app context; safe to run twice, since UIDs are keyed."""
    app = current_app._get_current_object() if has_app() else make_app()  # type: ignore[attr-defined]
    with app.app_context():
        results, errors = poll_mailboxes(db.session, app.config, only=mailbox_name)
        db.session.remove()
    summary = {
        "mailboxes": len(results),
        "errors": len(errors),
        "new_tickets": sum(r.new_tickets for r in results),
        "replies": sum(r.replies for r in results),
    }
    if results or errors:
        logger.info("poll job done: %s", summary)
    else:
        logger.debug("poll job found no mailbox to poll")
    return summary


def has_app() -> bool:
    """Tell whether an app context is active."""
    try:
        current_app._get_current_object()  # type: ignore[attr-defined]
    except RuntimeError:
        return False
    return True


def make_app() -> Flask:
    """Build the app for a job run by a worker process that has none."""
    from inbox import create_app

    return create_app()


def run_poll_loop(app: Flask, stop: threading.Event | None = None) -> None:
    """Poll every POLL_INTERVAL_SECONDS until ``stop`` is set; a failed poll is logged and skipped."""
    interval = app.config["POLL_INTERVAL_SECONDS"]
    stop = stop or threading.Event()
    logger.info("polling every %s s", interval)
    while not stop.is_set():
        started = time.monotonic()
        try:
            with app.app_context():
                poll_job()
        except Exception:  # noqa: BLE001 - the timer must survive a failed poll
            logger.error("periodic poll failed", exc_info=True)
        stop.wait(max(1.0, interval - (time.monotonic() - started)))


def run_idle_pollers(app: Flask, stop: threading.Event, only: str | None = None) -> int:
    """Poll the configured mailboxes on IMAP IDLE wake-ups and on the timer until ``stop`` is set.

    Returns the number of mailboxes watched; 0 when none is configured.
    """
    from inbox.mail.idle import start_idle_poller
    from inbox.services.intake import mailbox_configs

    with app.app_context():
        configs = [c for c in mailbox_configs(db.session, app.config) if only in (None, c.name)]
        db.session.remove()
    watchers = [start_idle_poller(app, config) for config in configs]
    logger.info(
        "watching %s mailboxes with IDLE and a %s s timer",
        len(watchers),
        app.config["POLL_INTERVAL_SECONDS"],
    )
    try:
        stop.wait()
    finally:
        for _, thread_stop in watchers:
            thread_stop.set()
        for thread, _ in watchers:
            thread.join(timeout=app.config["IMAP_TIMEOUT_SECONDS"] + 5)
    return len(watchers)


def start_inline_poller(app: Flask) -> threading.Event | None:
    """Start the poll timer in a daemon thread when no Redis is configured.

    It runs even with no mailbox configured yet, so a mailbox that an admin adds on the
    Mailboxes page is polled from the next round on without a restart.
    """
    if app.config["REDIS_URL"] or not app.config["POLL_INLINE"]:
        return None
    stop = threading.Event()
    thread = threading.Thread(
        target=run_poll_loop, args=(app, stop), name="inline-poller", daemon=True
    )
    thread.start()
    return stop


def build_cron_scheduler(connection: Redis, interval_seconds: int) -> CronScheduler:
    """Return RQ's cron scheduler with the periodic mailbox poll registered."""
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=connection)
    scheduler.register(
        poll_job,
        queue_name=POLL_QUEUE,
        interval=interval_seconds,
        job_timeout=POLL_JOB_TIMEOUT_SECONDS,
    )
    return scheduler


def run_cron_scheduler(redis_url: str, interval_seconds: int) -> None:
    """Run RQ's cron scheduler with the periodic poll until stopped."""
    from redis import Redis

    build_cron_scheduler(Redis.from_url(redis_url), interval_seconds).start()


def run_worker(app: Flask) -> None:
    """Run an RQ worker on REDIS_URL, with RQ's cron scheduler in a child process.

    The scheduler installs signal handlers, which Python allows only in a main thread, so it gets
    a process of its own. Each job builds its own app, so no database connection crosses a fork.

    :raises ConfigError: REDIS_URL is unset.
    """
    from redis import Redis
    from rq import Queue, Worker

    url = app.config["REDIS_URL"]
    if not url:
        raise ConfigError(
            "REDIS_URL is not set: the worker needs Redis, e.g. redis://127.0.0.1:6379/0"
        )
    connection = Redis.from_url(url)
    queues = [
        Queue(POLL_QUEUE, connection=connection),
        Queue(OUTGOING_QUEUE, connection=connection),
    ]

    interval = app.config["POLL_INTERVAL_SECONDS"]
    cron = multiprocessing.get_context("spawn").Process(
        target=run_cron_scheduler, args=(url, interval), name="rq-cron", daemon=True
    )
    cron.start()
    logger.info(
        "worker on queues %s and %s, poll every %s s (cron pid %s)",
        POLL_QUEUE,
        OUTGOING_QUEUE,
        interval,
        cron.pid,
    )
    try:
        Worker(queues, connection=connection).work(with_scheduler=False)
    finally:
        cron.terminate()
        cron.join(timeout=10)
