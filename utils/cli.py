"""Glue for the top-level scripts: user mistakes become one line on stderr and a non-zero exit."""
import signal
import sys
from typing import Callable

from utils.errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def run_main(main: Callable[[], object]) -> None:
    """Run a script's ``main``; print ``error: ...`` instead of a traceback for a UserError.

    SIGTERM (``kill``) is turned into an interrupt, so pending atomic writes remove their temp files.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept and a rerun completes the rest", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
