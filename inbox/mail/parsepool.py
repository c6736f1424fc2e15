"""Parse and classify fetched mail in a second process while the poller writes to the database.

Parsing and classifying are pure: they read the raw bytes and nothing else. A poll with a large
backlog hands each fetched batch to a worker process and writes the previous batch meanwhile,
so a machine with two cores does both at once. After any fault of the worker (a crash, an
exception, a time-out) the poller does that work itself. A poll therefore stores the same
tickets with or without the pool, which tests/test_parsepool.py checks.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from types import MappingProxyType

from inbox.classify import Classification, classify
from inbox.errors import ParseError
from inbox.mail.parse import ParsedMail, parse_message, shown_inline
from inbox.mail.quoting import split_reply

logger = logging.getLogger(__name__)

# NOTE: an estimate, not tuned: starting the worker and its first batch took 0.8 s here, about
# what parsing 300 messages in the poller itself costs.
MIN_MESSAGES = 300
"""Minimum number of new messages in one poll for which the poll starts a worker process."""

RESULT_TIMEOUT_SECONDS = 300.0
"""Maximum wait for one batch's results before the poller parses the batch itself."""

PARENT_CHECK_SECONDS = 1.0
"""How often the worker checks that the poller that started it is still alive."""

CLOSE_TIMEOUT_SECONDS = 5.0
"""Maximum wait for the worker to stop at the end of a poll before it is killed."""


@dataclass(frozen=True)
class Prepared:
    """The pure work on one raw message: its parse and classification, or the parse error."""

    parsed: ParsedMail | None
    parse_error: str | None = None
    classification: Classification | None = None

    def parsed_or_raise(self) -> ParsedMail:
        """Return the parsed mail, or raise the ParseError the worker met."""
        if self.parsed is None:
            raise ParseError(self.parse_error or "the mail could not be parsed")
        return self.parsed


def classify_new_text(parsed: ParsedMail) -> Classification:
    """Classify a mail by its subject and the text it adds, leaving quoted history out."""
    new_text, _quoted = split_reply(parsed.text)
    return classify(parsed.subject, new_text)


def replies_to_earlier_mail(parsed: ParsedMail) -> bool:
    """Tell whether a mail names an earlier mail it replies to, so it most likely joins a ticket."""
    return bool(parsed.in_reply_to or parsed.references)


def prepare(raw: bytes, max_attachment_bytes: int | None, classified: bool = True) -> Prepared:
    """Parse a raw message and classify its new text, as ``process_raw`` would.

    A reply to an earlier mail is only parsed, as is every mail when ``classified`` is false.
    ``process_raw`` classifies such a mail if it starts a conversation after all.

    :raises Exception: any fault other than a ParseError; the caller then leaves the message
        to the poller's own processing and its retries.
    """
    try:
        parsed = parse_message(raw, max_attachment_bytes=max_attachment_bytes)
    except ParseError as exc:
        return Prepared(None, parse_error=str(exc))
    if not classified or replies_to_earlier_mail(parsed):
        return Prepared(parsed)
    return Prepared(parsed, classification=classify_new_text(parsed))


def without_file_bytes(parsed: ParsedMail) -> ParsedMail:
    """Return a copy of a parse whose attachments carry no bytes, forwarded mails excepted.

    The ingest keeps an attachment's hash and size and reads the bytes back from the raw mail
    when someone opens the file, so the worker sending them would only copy them through the
    pipe. Parts of a message/ type keep theirs, because the ingest reads a forwarded mail's
    sender, and so do parts the mail shows inline, which the ingest stores (``shown_inline``).
    """
    attachments = tuple(
        part
        if part.content_type.startswith("message/") or shown_inline(part)
        else replace(part, data=b"")
        for part in parsed.attachments
    )
    return replace(parsed, attachments=attachments)


def prepare_batch(
    raw_by_id: dict[int, bytes], max_attachment_bytes: int | None
) -> dict[int, Prepared]:
    """Prepare every message of a batch in the worker; a message that faults is left out.

    The parsed headers travel as a plain dict, because a mapping proxy cannot be pickled, and
    the attachments without their bytes.
    """
    prepared = {}
    for raw_message_id, raw in raw_by_id.items():
        try:
            result = prepare(raw, max_attachment_bytes)
        except Exception:  # noqa: BLE001 - the poller processes this message itself
            logger.warning("worker could not prepare raw message %s", raw_message_id)
            continue
        if result.parsed is not None:
            plain = replace(without_file_bytes(result.parsed), headers=dict(result.parsed.headers))
            result = replace(result, parsed=plain)
        prepared[raw_message_id] = result
    return prepared


def _restore_headers(prepared: Prepared) -> Prepared:
    """Give a worker's parsed mail back its read-only header mapping."""
    if prepared.parsed is None:
        return prepared
    headers = MappingProxyType(dict(prepared.parsed.headers))
    return replace(prepared, parsed=replace(prepared.parsed, headers=headers))


def watch_parent(parent_pid: int) -> None:
    """Start a thread in the worker that ends the worker once its poller is gone.

    A poller killed with SIGKILL cannot stop its worker, and the worker would otherwise wait
    for work for ever.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


WARM_UP_MAIL = (
    b"From: warm-up@example.org\r\nTo: privacy@example.org\r\nSubject: warm-up\r\n"
    b"Date: Sat, 5 Dec 2026 10:00:00 +0100\r\nMessage-ID: <warm-up@example.org>\r\n\r\n"
    b"Ik wil mijn gegevens inzien.\r\n"
)
"""A small mail the worker prepares once, before the first batch arrives."""


def _started() -> None:
    """Prepare a small mail, so the worker has its modules imported and its phrases compiled.

    The executor starts its process with the first job, and the poller parses the first batch
    itself meanwhile. Loading the classifier's phrases alone took about 0.25 s on a 2-core machine.
    """
    prepare(WARM_UP_MAIL, None)


class ParsePool:
    """One worker process that prepares batches; after any fault the poller works alone."""

    def __init__(self, max_attachment_bytes: int | None) -> None:
        """Set up the pool and start its worker, which imports the parser while the poller fetches.

        :raises OSError: the pool cannot be set up, for example without a usable /dev/shm.
        """
        self.max_attachment_bytes = max_attachment_bytes
        # spawn starts a clean interpreter. A fork would copy the poller's database and IMAP
        # connections and its threads into the worker.
        self._executor: ProcessPoolExecutor | None = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=watch_parent,
            initargs=(os.getpid(),),
        )
        # The executor starts its process with the first job; this one only starts it.
        self._executor.submit(_started)

    def submit(self, raw_by_id: dict[int, bytes]) -> Future[dict[int, Prepared]] | None:
        """Start preparing a batch; return None when the pool is closed or broken."""
        if self._executor is None or not raw_by_id:
            return None
        try:
            return self._executor.submit(prepare_batch, raw_by_id, self.max_attachment_bytes)
        except Exception as exc:  # noqa: BLE001 - a broken pool leaves the work to the poller
            self._give_up(f"{type(exc).__name__}: {exc}")
            return None

    def results(self, job: Future[dict[int, Prepared]] | None) -> dict[int, Prepared]:
        """Wait for a batch; return {} when it failed, so the poller prepares it itself."""
        if job is None or self._executor is None:
            # After the pool gave up, its earlier jobs fail too; that was logged once already.
            return {}
        try:
            prepared = job.result(timeout=RESULT_TIMEOUT_SECONDS)
        except TimeoutError:
            self._give_up(f"no result within {RESULT_TIMEOUT_SECONDS:.0f} s")
            return {}
        except Exception as exc:  # noqa: BLE001 - a crash of the worker or a fault in it
            self._give_up(f"{type(exc).__name__}: {exc}")
            return {}
        return {key: _restore_headers(value) for key, value in prepared.items()}

    def close(self) -> None:
        """Stop the worker process, and kill it when it has not stopped within a few seconds.

        A poll that ends on an error may leave a batch in the worker, and a stopped or hung
        worker must not hold the poller up.
        """
        executor, self._executor = self._executor, None
        if executor is not None:
            _stop(executor, CLOSE_TIMEOUT_SECONDS)

    def _give_up(self, reason: str) -> None:
        logger.error("parse worker failed, the poller parses the rest itself: %s", reason)
        executor, self._executor = self._executor, None
        if executor is not None:
            _stop(executor, 0.0)


def _stop(executor: ProcessPoolExecutor, timeout: float) -> None:
    """Shut an executor down without waiting on it, killing workers alive after ``timeout``."""
    # NOTE: ProcessPoolExecutor has no public way to reach its processes. CPython 3.11 keeps
    # them in _processes, by pid; without that attribute a hung worker is not killed here.
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join(1.0)
