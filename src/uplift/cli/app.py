"""The Typer application that every ``uplift`` sub-command registers on."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

__all__ = ["app", "console", "disclosure_policy", "fail"]

app = typer.Typer(
    name="uplift",
    help="Multi-treatment uplift targeting for re-skilling outreach campaigns.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# wide enough for the result tables when the output is a file or a CI log rather than a terminal
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def fail(message: str, code: int = 2) -> None:
    """Print ``message`` as an error and exit with ``code`` (nothing else is written)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def disclosure_policy():
    """The disclosure policy of every table the command line shows, writes or logs (``UPLIFT_DISCLOSURE``,
    default ``serve/disclosure.yaml``); says so loudly when its threshold is below the default."""
    from uplift.config import get_settings
    from uplift.specs.disclosure import DEFAULT_THRESHOLD, load_disclosure_policy

    policy = load_disclosure_policy(get_settings().disclosure)
    if policy.lowered:
        err_console.print(f"[bold yellow]warning:[/] the disclosure threshold is lowered to {policy.threshold} "
                          f"(default {DEFAULT_THRESHOLD}): figures about groups this small are shown and written",
                          highlight=False)
    return policy
