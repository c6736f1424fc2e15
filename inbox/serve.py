"""Serve the web interface with the standard WSGI server, plus the inline poll timer."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from werkzeug.serving import run_simple

from inbox.jobs import start_inline_poller

if TYPE_CHECKING:
    from flask import Flask

logger = logging.getLogger(__name__)


def serve_app(app: Flask, host: str, port: int) -> None:
    """Serve ``app`` until interrupted; without REDIS_URL, poll the mailbox on a timer too.

    NOTE: Werkzeug's threaded server suits one team on one machine; run several gunicorn
    workers and an RQ worker (REDIS_URL) at scale.
    """
    stop = start_inline_poller(app)
    logger.info("serving on http://%s:%s/", host, port)
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        if stop is not None:
            stop.set()
