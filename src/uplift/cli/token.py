"""``uplift token``: print a strong random access token for the service, and where it goes."""

from __future__ import annotations

from typing import Annotated

import typer

from uplift.cli.app import app, err_console

__all__ = ["token"]


@app.command()
def token(
    name: Annotated[str | None, typer.Option(help="Prefix the token with 'NAME:' (the name the service records, "
                                                   "e.g. who approved a plan).")] = None,
) -> None:
    """Print a new random token (32 random bytes, URL-safe) on stdout; the note on stderr says where it goes."""
    from uplift.api.tokens import new_token, split_entry

    entry = new_token() if name is None else f"{name}:{new_token()}"
    try:
        shown_name, _ = split_entry(entry)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--name") from None
    typer.echo(entry)
    err_console.print(
        f"A new token named {shown_name!r}. Give it to the service in its environment, comma-separated with the "
        "others:\n  UPLIFT_SERVICE_TOKENS='<token>,<another>' uplift serve\n(or under `tokens:` in the settings "
        "file, which should then not be world-readable). Clients send it as 'Authorization: Bearer <token>' "
        "without the 'NAME:' prefix; planners sign in to the page (/ui/) with it, also without the prefix.",
        highlight=False,
    )
