"""RQ worker entry point: build the app, then run the worker and the periodic mailbox poll."""

from __future__ import annotations

from inbox import create_app
from inbox.jobs import run_worker


def main() -> None:
    """Run the worker with the settings from the environment."""
    run_worker(create_app())


if __name__ == "__main__":
    main()
