"""The ``uplift`` command line: one module per sub-command, all registered on :data:`app`."""

from __future__ import annotations

import sys

from uplift.cli.app import app
from uplift.errors import UpliftError

# Sub-command modules register themselves on ``app`` when imported; add one line per module.
_COMMANDS = (
    "uplift.cli.simulate",
    "uplift.cli.features",
    "uplift.cli.train",
    "uplift.cli.run",
    "uplift.cli.models",
    "uplift.cli.segments",
    "uplift.cli.plan",
    "uplift.cli.serve",
    "uplift.cli.score",
    "uplift.cli.experiment",
)

for _name in _COMMANDS:
    __import__(_name)

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point: known errors print one clear line and exit 2."""
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
