"""dramatiq's main process as ``omvant worker`` runs it: its INFO lines quiet below DEBUG.

``python -m dramatiq`` sets up logging at INFO itself, so its main process said "Dramatiq ...
is booting up" and "Sending signal ... to subprocesses" whatever ``OMVANT_LOG_LEVEL`` was.
``python -m workers.dramatiq_main ARGS`` is the same command line with the ``dramatiq`` logger
at WARNING unless ``--verbose`` (``OMVANT_LOG_LEVEL=DEBUG``) is given; the worker processes it
forks inherit that level before ``workers.app`` sets it again (``workers/log.py``). Omvänt's own
``worker.ready`` and ``worker.stopped`` (``workers/readiness.py``) say when it runs.
"""

from __future__ import annotations

import logging
import sys

from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser

MODULE = "workers.dramatiq_main"


def main(argv: list[str] | None = None) -> int:
    """Run dramatiq's main process with ``argv`` (default: this command line's)."""
    given = sys.argv[1:] if argv is None else argv
    args = make_argument_parser().parse_args(given)  # type: ignore[no-untyped-call]  # dramatiq.cli: untyped
    if not args.verbose:
        logging.getLogger("dramatiq").setLevel(logging.WARNING)
    # dramatiq restarts itself on SIGHUP by exec'ing sys.argv: this module, not python -m dramatiq
    sys.argv = [sys.executable, "-m", MODULE, *given]
    return int(dramatiq_main(args) or 0)  # type: ignore[no-untyped-call]  # dramatiq.cli: untyped


if __name__ == "__main__":
    sys.exit(main())
