"""Kill the poller with SIGKILL at random moments over 1,000 messages and check exactly-once.

Run as root: ``python bench/crash_test.py [--count 1000] [--kills 10] [--db URL]``. A private
Dovecot is filled with mail where about one in three replies to an earlier one; the poller runs
in child processes that are killed at random, then once to the end. The script prints the
counts and exits non-zero when a message is missing, stored twice, split over two tickets or
left unmarked on the server.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import flask_migrate  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from inbox import create_app  # noqa: E402
from inbox.extensions import db  # noqa: E402
from inbox.models.message import MailLocation, Message, RawMessage  # noqa: E402
from inbox.models.ticket import Ticket  # noqa: E402
from tests.servers import start_dovecot  # noqa: E402
from tests.test_reliability import (  # noqa: E402
    append_all,
    child_config,
    make_conversations,
    run_with_kills,
    tickets_per_conversation,
)


def count(model: object) -> int:
    """Return the number of rows of a model."""
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def main(argv: list[str] | None = None) -> int:
    """Fill Dovecot, run the poller with kills, and print and check the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", default="", help="SQLAlchemy URL; default a new SQLite file")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="pi-crash-", dir="/tmp"))
    dovecot = start_dovecot(workdir)
    try:
        conversation = make_conversations(args.count, args.seed)
        append_all(dovecot, conversation.mails)
        url = args.db or f"sqlite:///{workdir / 'crash.db'}"
        app = create_app(
            {
                "SECRET_KEY": "crash",
                "SQLALCHEMY_DATABASE_URI": url,
                "IMAP_PORT": dovecot.port,
                "REDIS_URL": "",
                "POLL_INLINE": False,
            },
            instance_path=str(workdir / "instance"),
        )
        with app.app_context():
            flask_migrate.upgrade()
            killed, exit_code = run_with_kills(
                child_config(app, batch_size=50),
                workdir / "child",
                args.kills,
                random.Random(args.seed),
            )
            split = [
                t for t, ids in tickets_per_conversation(conversation).items() if len(ids) != 1
            ]
            unseen = [u for u, f in dovecot.flags("INBOX").items() if b"\\Seen" not in f]
            figures = {
                "messages": args.count,
                "runs killed mid-poll": killed,
                "final run exit code": exit_code,
                "raw messages": count(RawMessage),
                "locations": count(MailLocation),
                "parsed messages": count(Message),
                "tickets": count(Ticket),
                "conversations": len(set(conversation.thread_of)),
                "conversations split over tickets": len(split),
                "unmarked on server": len(unseen),
            }
    finally:
        dovecot.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    for name, value in figures.items():
        print(f"{name}: {value}")
    ok = (
        figures["raw messages"] == args.count
        and figures["parsed messages"] == args.count
        and figures["tickets"] == figures["conversations"]
        and not split
        and not unseen
    )
    print("result:", "exactly once" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
