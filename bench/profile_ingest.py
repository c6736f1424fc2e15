"""Profile one poll of generated mail: where the time goes, and how many SQL statements it sends.

Run as root from the repository root (the private Dovecot needs it)::

    python bench/profile_ingest.py --count 2000 --db sqlite
    python bench/profile_ingest.py --count 2000 --db postgresql --profile /tmp/poll.prof

It fills a private Dovecot with ``bench/mailgen.py`` mail and polls it once into an empty
database in this process. It prints the seconds until every message was committed and marked,
and until the poll returned with its acknowledgements written to the outbox. It also prints the
CPU time of the poller, of its parse worker and of the whole machine, and the SQL statements by
kind with their time. With ``--profile`` it writes cProfile data of the poller's main thread to
the given file, and with ``--phases`` it prints the time the poller spent in each phase of the
poll. bench_ingest.py gives the figures for BENCHMARKS.md; this script is for finding what to
change next.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from bench.bench_ingest import fill_mailbox, fresh_database, poll_config  # noqa: E402
from tests.servers import start_dovecot  # noqa: E402


def machine_cpu() -> tuple[float, float, float]:
    """Return the machine's busy, idle and stolen CPU seconds since boot, over all cores."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    steal = fields[7] if len(fields) > 7 else 0
    # Guest time is counted in user time already, so only the first eight fields add up.
    busy = sum(fields[:8]) - idle - steal
    return busy / ticks, idle / ticks, steal / ticks


def cpu_by_command() -> Counter[str]:
    """Return the CPU seconds each running command has used, summed over its processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds: Counter[str] = Counter()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces; the fields follow it.
        command = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        seconds[command] += (int(fields[11]) + int(fields[12])) / ticks
    return seconds


@contextmanager
def timed_phases(seconds: Counter[str], system: Counter[str]) -> Iterator[None]:
    """Add each phase's wall time to ``seconds`` and its system CPU time to ``system``.

    The system CPU time is that of the poller's main thread.
    """
    from imapclient import IMAPClient
    from sqlalchemy.orm import Session

    from inbox.mail import poller
    from inbox.mail.parsepool import ParsePool

    def timer(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            kernel = resource.getrusage(resource.RUSAGE_THREAD).ru_stime
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - started
                system[name] += resource.getrusage(resource.RUSAGE_THREAD).ru_stime - kernel

        return timed

    # Phases nest (a commit inside processing), so the lines do not add up to the whole poll.
    patches = [
        (IMAPClient, "fetch", "IMAP fetch"),
        (poller, "fetch_and_store", "fetch and store a batch"),
        (poller, "fetch_batch", "fetch a batch"),
        (ParsePool, "results", "wait for the parse worker"),
        (poller, "process_batch", "process a batch"),
        (Session, "commit", "commit"),
        (poller, "mark_processed", "mark on the server"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for (owner, name, phase), (_, _, original) in zip(patches, originals, strict=True):
        setattr(owner, name, timer(phase, original))
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def profile_poll(args: argparse.Namespace, workdir: Path) -> None:
    """Fill the mailbox, poll it once and print the measurements."""
    from sqlalchemy import event

    from inbox import create_app
    from inbox.extensions import db
    from inbox.services.intake import poll_mailboxes

    dovecot = start_dovecot(workdir)
    try:
        fill_mailbox(dovecot, args.count, args.seed)
        logging.disable(logging.WARNING)
        config = poll_config(fresh_database(args.db, workdir), dovecot.port, args.acknowledge)
        app = create_app(config, instance_path=str(workdir / "instance"))
        statements: Counter[str] = Counter()
        statement_seconds: Counter[str] = Counter()
        statement_system: Counter[str] = Counter()
        with app.app_context():
            db.create_all()

            # Statements of the store thread interleave with the poller's, so each thread keeps
            # its own stack of start times.
            started_at: dict[int, list[tuple[float, float]]] = defaultdict(list)

            @event.listens_for(db.engine, "before_cursor_execute")
            def count(*params: Any) -> None:
                statement = str(params[2])
                statements[" ".join(statement.split()[:3])] += 1
                kernel = resource.getrusage(resource.RUSAGE_THREAD).ru_stime
                started_at[threading.get_ident()].append((time.perf_counter(), kernel))

            @event.listens_for(db.engine, "after_cursor_execute")
            def time_statement(*params: Any) -> None:
                stack = started_at[threading.get_ident()]
                if not stack:
                    return
                began, kernel_before = stack.pop()
                kind = " ".join(str(params[2]).split()[:3])
                statement_seconds[kind] += time.perf_counter() - began
                kernel_after = resource.getrusage(resource.RUSAGE_THREAD).ru_stime
                statement_system[kind] += kernel_after - kernel_before

            phases: Counter[str] = Counter()
            phases_system: Counter[str] = Counter()
            profiler = cProfile.Profile() if args.profile else None
            machine_before = machine_cpu()
            commands_before = cpu_by_command()
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.monotonic()
            if profiler is not None:
                profiler.enable()
            if args.phases:
                with timed_phases(phases, phases_system):
                    results, errors = poll_mailboxes(db.session, app.config)
            else:
                results, errors = poll_mailboxes(db.session, app.config)
            if profiler is not None:
                profiler.disable()
            ended = time.monotonic()
            after = resource.getrusage(resource.RUSAGE_SELF)
            machine_after = machine_cpu()
            commands = cpu_by_command()
            commands.subtract(commands_before)
        worker = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        dovecot.stop()

    fetched = sum(result.fetched for result in results)
    ingested = max((r.ingested_at for r in results if r.ingested_at), default=ended)
    print(f"messages: {fetched}, errors: {[str(error) for error in errors]}")
    print(f"committed and marked after {ingested - started:.2f} s")
    print(f"poll returned after {ended - started:.2f} s")
    print(
        f"poller CPU: {after.ru_utime - before.ru_utime:.2f} s user, "
        f"{after.ru_stime - before.ru_stime:.2f} s system; "
        f"parse worker CPU: {worker.ru_utime:.2f} s user, {worker.ru_stime:.2f} s system"
    )
    busy, idle, steal = (a - b for a, b in zip(machine_after, machine_before, strict=True))
    print(
        f"machine CPU over the poll, all processes: {busy:.2f} s busy, {idle:.2f} s idle, "
        f"{steal:.2f} s stolen by the host"
    )
    print(
        "CPU of running commands over the poll (a process that ended is missing): "
        + ", ".join(f"{name} {spent:.2f} s" for name, spent in commands.most_common(6))
    )
    if phases:
        print("wall s  system s  phase (phases nest, so they do not add up)")
    for phase, spent in phases.items():
        print(f"{spent:6.2f}  {phases_system[phase]:8.2f}  {phase}")
    print(f"SQL statements: {sum(statements.values())}")
    print("  number  wall s  system s  kind")
    for statement, number in statements.most_common(args.top):
        print(
            f"{number:8d}  {statement_seconds[statement]:6.2f}  "
            f"{statement_system[statement]:8.2f}  {statement}"
        )
    if profiler is not None:
        profiler.dump_stats(args.profile)
        print(f"cProfile data written to {args.profile}")


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run one profiled poll."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-acknowledge", dest="acknowledge", action="store_false")
    parser.add_argument("--profile", default="", help="write cProfile data to this file")
    parser.add_argument("--phases", action="store_true", help="print the time spent in each phase")
    parser.add_argument("--top", type=int, default=15, help="statement kinds to list")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="pi-profile-", dir="/tmp"))
    try:
        profile_poll(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    # The guard matters: the poll starts its parse worker with spawn, which imports this module.
    sys.exit(main())
