"""Measure how many mails per second the request classifier handles on one core.

Run: ``python bench/bench_classify.py [DIR]``. DIR contains a MANIFEST.csv corpus (default: the
project's own samples in tests/data/classify). Every mail is classified repeatedly for about
three seconds after the phrase book is loaded, and the rate is printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inbox.classify import classify, load_phrasebook  # noqa: E402
from inbox.classify_eval import read_corpus  # noqa: E402

logger = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "classify"
"""Corpus used when no folder is given."""

RUN_SECONDS = 3.0
"""Wall-clock time spent classifying, after loading."""


def run(directory: Path) -> None:
    """Classify the corpus of ``directory`` in a loop and print mails per second."""
    mails = [(sample.subject, sample.body) for sample in read_corpus(directory)]
    size = sum(len(subject) + len(body) for subject, body in mails) / len(mails)
    phrases = load_phrasebook()

    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < RUN_SECONDS:
        for subject, body in mails:
            classify(subject, body, phrases)
        count += len(mails)
    elapsed = time.perf_counter() - started

    print(f"corpus: {directory} ({len(mails)} mails, {size:.0f} characters on average)")
    print(f"rate: {count / elapsed:.0f} classifications/s on one core")


def main() -> None:
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR,
                        help="folder with MANIFEST.csv and the mails it lists")
    run(parser.parse_args().directory)


if __name__ == "__main__":
    main()
