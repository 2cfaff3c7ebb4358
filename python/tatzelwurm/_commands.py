"""The ``tatzelwurm``, ``workwurm`` and ``actionwurm`` commands of the package.

Each runs the same Rust ``main`` as the cargo-built binary, inside the extension with the GIL
released; ctrl-c and SIGTERM reach the program's own handlers and drain as in the binaries.
"""

from __future__ import annotations

import signal
import sys
from typing import Callable, List, NoReturn

from . import _native

__all__ = ["tatzelwurm", "workwurm", "actionwurm"]


def _run(main: Callable[[List[str], str], int]) -> NoReturn:
    # As in the binary: a ctrl-c that comes before the program has set up its own handler ends
    # the process, instead of waiting in Python's handler until the program returns (which it
    # would not, having never seen it). Once set up, the program's handler drains as usual.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    code = main(list(sys.argv), sys.executable)
    sys.stdout.flush()
    sys.exit(code)


def tatzelwurm() -> NoReturn:
    """The coordinator (``tatzelwurm --help``)."""
    _run(_native.tatzelwurm_main)


def workwurm() -> NoReturn:
    """A worker whose slots run in this interpreter (``workwurm --help``)."""
    _run(_native.workwurm_main)


def actionwurm() -> NoReturn:
    """The command line (``actionwurm --help``)."""
    _run(_native.actionwurm_main)
