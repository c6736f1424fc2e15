"""IMAP IDLE (RFC 2177) as a wake-up call for the poller; the UID poll stays the source of truth.

The loop waits in IDLE on its own connection and calls ``on_wake`` when the server reports new
mail (an untagged EXISTS) and at least every ``poll_interval_seconds``, so mail that arrived
while the connection was down is found by the next regular poll. RFC 2177 lets a server drop
an IDLE after 29 minutes, so IDLE is renewed every ``renew_seconds`` (10 minutes by default).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from inbox.errors import MailboxError
from inbox.mail.imap import (
    CONNECT_BACKOFF_SECONDS,
    DROPPED_CONNECTION_ERRORS,
    MailboxConfig,
    connect_with_retry,
    logout_quietly,
)

if TYPE_CHECKING:
    from flask import Flask

logger = logging.getLogger(__name__)

IDLE_RENEW_SECONDS = 600.0
"""Time after which IDLE is ended and started again, well within RFC 2177's 29 minutes."""

IDLE_WATCHDOG_SECONDS = 300.0
"""Silence after which the connection is checked with DONE and NOOP, and reopened if dead."""

IDLE_CHECK_SECONDS = 1.0
"""Maximum single wait for server data, so that ``stop`` is noticed within about a second."""

MAX_RECONNECT_DELAY_SECONDS = 300.0
"""Upper bound of the doubling wait between reconnections of the IDLE connection."""


@dataclass(frozen=True)
class IdleTiming:
    """How often the loop renews IDLE, checks a silent connection and polls regardless."""

    poll_interval_seconds: float
    renew_seconds: float = IDLE_RENEW_SECONDS
    watchdog_seconds: float = IDLE_WATCHDOG_SECONDS


def run_idle_loop(
    config: MailboxConfig,
    on_wake: Callable[[], None],
    stop: threading.Event,
    timing: IdleTiming,
) -> None:
    """Call ``on_wake`` on new mail and every poll interval until ``stop`` is set.

    Connection failures are logged and retried with doubling waits; they never end the loop.
    Exceptions from ``on_wake`` are logged too, so one failed poll does not stop the wake-ups.
    """
    delay = CONNECT_BACKOFF_SECONDS
    while not stop.is_set():
        try:
            client = connect_with_retry(config)
        except MailboxError as exc:
            logger.warning(
                "IDLE connection to %s failed, polling on the timer: %s", config.name, exc
            )
            wake_safely(on_wake, config)
            stop.wait(min(delay, timing.poll_interval_seconds))
            delay = min(delay * 2, MAX_RECONNECT_DELAY_SECONDS)
            continue

        try:
            delay = CONNECT_BACKOFF_SECONDS
            if client.has_capability("IDLE"):
                idle_until_stopped(client, config, on_wake, stop, timing)
            else:
                logger.info("server of mailbox %s has no IDLE, polling on the timer", config.name)
                logout_quietly(client)
                poll_on_timer(config, on_wake, stop, timing)
        except (*DROPPED_CONNECTION_ERRORS, IMAPClientError) as exc:
            logger.warning(
                "IDLE connection to %s lost (%s: %s), reconnecting",
                config.describe(),
                type(exc).__name__,
                exc,
            )
        finally:
            logout_quietly(client)


def poll_on_timer(
    config: MailboxConfig, on_wake: Callable[[], None], stop: threading.Event, timing: IdleTiming
) -> None:
    """Wake the poll every poll interval, for servers without IDLE."""
    while not stop.is_set():
        wake_safely(on_wake, config)
        stop.wait(timing.poll_interval_seconds)


def idle_until_stopped(
    client: IMAPClient,
    config: MailboxConfig,
    on_wake: Callable[[], None],
    stop: threading.Event,
    timing: IdleTiming,
) -> None:
    """Wait in IDLE, waking the poll on EXISTS and on the poll interval, until ``stop`` is set.

    :raises OSError: the connection died or timed out; the caller reconnects.
    """
    client.select_folder(config.folder, readonly=True)
    wake_safely(on_wake, config)
    last_poll = time.monotonic()
    while not stop.is_set():
        has_new_mail = wait_in_idle(client, stop, timing, last_poll)
        # DONE waits for the server's tagged OK within the socket timeout, so a dead connection
        # raises here; NOOP then proves the session still responds.
        client.idle_done()
        client.noop()
        if has_new_mail or time.monotonic() - last_poll >= timing.poll_interval_seconds:
            wake_safely(on_wake, config)
            last_poll = time.monotonic()


def wait_in_idle(
    client: IMAPClient, stop: threading.Event, timing: IdleTiming, last_poll: float
) -> bool:
    """Stay in one IDLE command; return True when the server reported new mail.

    Returns False when IDLE is due for renewal, the poll interval has passed, ``stop`` is set,
    or the server has been silent for the watchdog time.
    """
    client.idle()
    started = last_heard = time.monotonic()
    while not stop.is_set():
        responses = client.idle_check(timeout=IDLE_CHECK_SECONDS)
        now = time.monotonic()
        if responses:
            last_heard = now
        if any(len(item) > 1 and item[1] == b"EXISTS" for item in responses):
            return True
        if now - started >= timing.renew_seconds:
            return False
        if now - last_poll >= timing.poll_interval_seconds:
            return False
        if now - last_heard >= timing.watchdog_seconds:
            logger.info("IDLE connection silent for %.0f s, checking it", now - last_heard)
            return False
    return False


def wake_safely(on_wake: Callable[[], None], config: MailboxConfig) -> None:
    """Run the wake-up callback, logging any error so the loop keeps running."""
    try:
        on_wake()
    except Exception:  # noqa: BLE001 - a failed poll must not end the IDLE loop
        logger.error("poll woken by IDLE of mailbox %s failed", config.name, exc_info=True)


def start_idle_poller(
    app: Flask, config: MailboxConfig
) -> tuple[threading.Thread, threading.Event]:
    """Start a daemon thread that polls ``config``'s mailbox on IDLE wake-ups.

    Returns the thread and the event that stops it.
    """
    from inbox.extensions import db
    from inbox.services.intake import poll_mailboxes

    def poll() -> None:
        with app.app_context():
            try:
                poll_mailboxes(db.session, app.config, only=config.name)
            finally:
                db.session.remove()

    stop = threading.Event()
    timing = IdleTiming(poll_interval_seconds=float(app.config["POLL_INTERVAL_SECONDS"]))
    thread = threading.Thread(
        target=run_idle_loop,
        args=(config, poll, stop, timing),
        name=f"idle-{config.name}",
        daemon=True,
    )
    thread.start()
    return thread, stop
