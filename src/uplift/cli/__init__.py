"""The ``uplift`` command line: one module per sub-command, all registered on :data:`app`."""

from __future__ import annotations

import signal
import sys
import warnings

from uplift.cli.app import app
from uplift.errors import MissingAttributesWarning, ThinDataWarning, UpliftError
from uplift.quiet import install as install_quiet_output

# Sub-command modules register themselves on ``app`` when imported; add one line per module.
_COMMANDS = (
    "uplift.cli.simulate",
    "uplift.cli.features",
    "uplift.cli.train",
    "uplift.cli.run",
    "uplift.cli.models",
    "uplift.cli.segments",
    "uplift.cli.plan",
    "uplift.cli.handoff",
    "uplift.cli.serve",
    "uplift.cli.token",
    "uplift.cli.score",
    "uplift.cli.experiment",
)

for _name in _COMMANDS:
    __import__(_name)

__all__ = ["app", "main"]


_NOTES = (MissingAttributesWarning, ThinDataWarning)
"""The product's own warnings: printed as one plain ``note:`` line each, once per command."""


def _show_notes(show):
    """Print the product's notes (features or persona rules switched off, thin data) as one plain line each,
    each text once; other warnings go to ``show``."""
    shown: set[str] = set()

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, _NOTES):
            if str(message) in shown:
                return
            shown.add(str(message))
            from uplift.cli.app import err_console

            err_console.print(f"[bold yellow]note:[/] {message}", highlight=False)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM ends a command as Ctrl-C does, through its ``finally`` blocks: an unfinished output's
    temporary file is removed (:func:`uplift.data.tableio.atomic_path`) and nothing is half written."""
    sys.exit(128 + signum)


def main() -> None:
    """Console-script entry point: known errors print one clear line and exit 2; SIGTERM exits 143
    after cleaning up."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    install_quiet_output()  # before any command imports MLflow, causalml or the solver
    warnings.showwarning = _show_notes(warnings.showwarning)
    try:
        app()
    except UpliftError as exc:
        from uplift.cli.app import err_console

        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except FileNotFoundError as exc:
        from uplift.cli.app import err_console

        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
