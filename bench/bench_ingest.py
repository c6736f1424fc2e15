"""Measure ingest throughput: raw IMAP fetch and parse against privacy-inbox end to end.

Run as root (the private Dovecot needs it): ``python bench/bench_ingest.py --count 2000 10000
--db sqlite postgresql``. For each count, a private Dovecot mailbox is filled with
``bench/mailgen.py`` mail, then each measurement runs in a fresh child process:

- raw: imapclient fetches every message (BODY.PEEK[], batches of 100) and mail-parser parses
  it, with no database;
- end to end: ``poll_mailboxes`` on an empty database, from connect to the moment every new
  message is committed as a ticket (or reply) and marked on the server. Each new request's
  acknowledgement is queued in the transaction that opens its ticket. After that moment the
  poll composes the acknowledgements and writes them to the file outbox; the time until the
  poll returns is reported as well. ``--no-acknowledge`` turns acknowledgements off.
  ``--redis-url`` makes the poll enqueue them on RQ for a worker instead, as a deployment with
  Redis does.

Peak memory is the child's maximum resident set size (``resource.getrusage``), and separately
that of its parse worker process, if the poll started one. The result is a Markdown table on
standard output. PostgreSQL runs use the database ``inbox_bench`` on
INBOX_BENCH_POSTGRES_URL (default ``postgresql+psycopg://postgres@127.0.0.1:5432/inbox_bench``),
which is dropped and created again before each run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from bench.mailgen import generate_messages  # noqa: E402
from tests.servers import DEFAULT_PASSWORD, DEFAULT_USER, Dovecot, start_dovecot  # noqa: E402

logger = logging.getLogger(__name__)

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/inbox_bench"
"""Database of the PostgreSQL runs unless INBOX_BENCH_POSTGRES_URL is set."""

FETCH_BATCH = 100
"""Messages per UID FETCH, in both measurements."""

RAW_CHILD = """
import json, resource, sys, time
import mailparser
from imapclient import IMAPClient
port = int(sys.argv[1])
started = time.perf_counter()
client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=60)
client._imap.debug = 0
client.login(sys.argv[2], sys.argv[3])
client.select_folder("INBOX", readonly=True)
uids = sorted(client.search(["ALL"]))
count = 0
for start in range(0, len(uids), int(sys.argv[4])):
    batch = uids[start:start + int(sys.argv[4])]
    for uid, data in client.fetch(batch, ["BODY.PEEK[]"]).items():
        mailparser.parse_from_bytes(data[b"BODY[]"])
        count += 1
client.logout()
seconds = time.perf_counter() - started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"count": count, "seconds": seconds, "max_rss_kib": rss}))
"""
"""Child process of the raw measurement: fetch and parse, nothing stored."""

E2E_CHILD = """
import json, logging, resource, sys, time
from inbox import create_app
from inbox.extensions import db
from inbox.services.intake import poll_mailboxes
logging.disable(logging.WARNING)
app = create_app(json.loads(sys.argv[1]), instance_path=sys.argv[2])
with app.app_context():
    db.create_all()
    started = time.monotonic()
    results, errors = poll_mailboxes(db.session, app.config)
    ended = time.monotonic()
    ingested = max((r.ingested_at for r in results if r.ingested_at), default=ended)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
worker_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({
    "count": sum(r.fetched for r in results), "errors": [str(e) for e in errors],
    "tickets": sum(r.new_tickets + r.replies + r.quarantined for r in results),
    "seconds": ingested - started, "with_mail_seconds": ended - started,
    "max_rss_kib": rss, "worker_rss_kib": worker_rss,
}))
"""
"""Child process of the end-to-end measurement: one poll into an empty database."""


def fill_mailbox(dovecot: Dovecot, count: int, seed: int) -> int:
    """Append ``count`` generated messages to INBOX over one connection; return their bytes."""
    total = 0
    with dovecot.client() as client:
        for raw in generate_messages(count, seed):
            client.append("INBOX", raw)
            total += len(raw)
    return total


def run_child(code: str, *args: str) -> dict[str, Any]:
    """Run a measurement child and return the JSON it prints."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measurement child failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fresh_database(kind: str, workdir: Path) -> str:
    """Return the URL of an empty database of ``kind``."""
    if kind == "sqlite":
        path = workdir / f"bench-{time.monotonic_ns()}.db"
        return f"sqlite:///{path}"
    import psycopg

    url = os.environ.get("INBOX_BENCH_POSTGRES_URL", POSTGRES_URL)
    admin_dsn = re.sub(r"^postgresql\+\w+://", "postgresql://", url).rsplit("/", 1)[0] + "/postgres"
    name = url.rsplit("/", 1)[1]
    connection = psycopg.connect(admin_dsn, autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return url


def poll_config(
    database_url: str, port: int, acknowledge: bool, redis_url: str = ""
) -> dict[str, Any]:
    """Return the app settings of a measured poll of the private Dovecot's INBOX."""
    return {
        "SECRET_KEY": "bench",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "POLL_INLINE": False,
        "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": port,
        "IMAP_SECURITY": "none",
        "IMAP_USER": DEFAULT_USER,
        "IMAP_PASSWORD": DEFAULT_PASSWORD,
        "IMAP_FETCH_BATCH": FETCH_BATCH,
        "IMAP_TIMEOUT_SECONDS": 120.0,
        # Without a sender address every acknowledgement stops at a ConfigError before it is
        # queued, which would leave the outgoing-mail path out of the measurement.
        "MAIL_FROM": "privacy@example.org",
        "AUTO_ACKNOWLEDGE": acknowledge,
    }


def end_to_end(
    dovecot: Dovecot, kind: str, workdir: Path, acknowledge: bool, redis_url: str
) -> dict[str, Any]:
    """Poll the whole mailbox into an empty database in a child process."""
    config = poll_config(fresh_database(kind, workdir), dovecot.port, acknowledge, redis_url)
    try:
        return run_child(E2E_CHILD, json.dumps(config), str(workdir / f"instance-{kind}"))
    finally:
        if redis_url:
            empty_outgoing_queue(redis_url)


def empty_outgoing_queue(redis_url: str) -> None:
    """Drop the delivery jobs the measurement enqueued, so no worker sends them later."""
    from redis import Redis
    from rq import Queue

    from inbox.services.replies import OUTGOING_QUEUE

    Queue(OUTGOING_QUEUE, connection=Redis.from_url(redis_url)).empty()


def measure(
    count: int, kinds: list[str], seed: int, acknowledge: bool, redis_url: str
) -> list[dict[str, Any]]:
    """Fill a fresh Dovecot with ``count`` messages and run every measurement on it."""
    workdir = Path(tempfile.mkdtemp(prefix="pi-bench-", dir="/tmp"))
    dovecot = start_dovecot(workdir)
    try:
        size = fill_mailbox(dovecot, count, seed)
        raw = run_child(
            RAW_CHILD, str(dovecot.port), DEFAULT_USER, DEFAULT_PASSWORD, str(FETCH_BATCH)
        )
        rows = [{"n": count, "mib": size / 2**20, "kind": "raw fetch + parse", **raw}]
        for kind in kinds:
            result = end_to_end(dovecot, kind, workdir, acknowledge, redis_url)
            label = f"end to end, {kind}"
            if not acknowledge:
                label += ", no acknowledgement"
            elif redis_url:
                label += ", acknowledgements to RQ"
            rows.append({"n": count, "mib": size / 2**20, "kind": label, **result})
            rows[-1]["share"] = raw["seconds"] / result["seconds"]
        return rows
    finally:
        dovecot.stop()
        # A 10,000-message run leaves about 3 GB of mailbox and databases behind.
        shutil.rmtree(workdir, ignore_errors=True)


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print the measurements as a Markdown table."""
    print(
        "| N | MiB | measurement | seconds | msg/s | share of raw rate "
        "| seconds until acknowledgements sent | peak RSS MiB | parse worker RSS MiB |"
    )
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        share = f"{row['share']:.0%}" if "share" in row else ""
        worker = f"{row['worker_rss_kib'] / 1024:.0f}" if row.get("worker_rss_kib") else ""
        with_mail = f"{row['with_mail_seconds']:.1f}" if "with_mail_seconds" in row else ""
        print(
            f"| {row['n']} | {row['mib']:.0f} | {row['kind']} | {row['seconds']:.1f} | "
            f"{row['count'] / row['seconds']:.0f} | {share} | {with_mail} | "
            f"{row['max_rss_kib'] / 1024:.0f} | {worker} |"
        )


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-acknowledge",
        dest="acknowledge",
        action="store_false",
        help="turn off the acknowledgement mail of new requests (INBOX_AUTO_ACKNOWLEDGE)",
    )
    parser.add_argument(
        "--redis-url",
        default="",
        help="enqueue acknowledgements on RQ at this Redis (its outgoing queue is emptied after)",
    )
    args = parser.parse_args(argv)

    rows = []
    for count in args.count:
        rows.extend(measure(count, args.db, args.seed, args.acknowledge, args.redis_url))
        for row in rows:
            if row.get("errors"):
                print(f"poll errors at N={count}: {row['errors']}", file=sys.stderr)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
