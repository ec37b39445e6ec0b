"""``uplift models`` (registered models, versions, aliases, the gate's reasons) and ``uplift promote`` (by hand)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from uplift.cli.app import app, console, fail

__all__ = ["models", "promote"]


def _client():
    from mlflow import MlflowClient

    from uplift.config import get_settings, tracking_uri

    uri = tracking_uri(get_settings())
    return MlflowClient(uri, registry_uri=uri), uri


@app.command()
def models(
    name: Annotated[str | None, typer.Argument(help="Only this registered model.")] = None,
    last: Annotated[int, typer.Option(min=1, help="Newest versions to list per model.")] = 10,
) -> None:
    """List the registered models (one per use), their versions, aliases and why each alias did or did not move."""
    from uplift.tracking.registry import model_versions

    client, uri = _client()
    table = model_versions(client, name, last=last)
    if table.empty:
        console.print(f"no registered models in {uri} (train one with `uplift run` or `uplift train`)")
        return
    for model, versions in table.groupby("model", sort=True):
        t = Table(title=f"{model}: {versions['use'].iloc[0]} (newest {len(versions)} versions)", title_justify="left")
        for col in ("version", "aliases", "created", "spec", "decision", "data digest"):
            t.add_column(col, justify="right" if col == "version" else "left", no_wrap=True)
        t.add_column("reason", overflow="fold", min_width=40)
        for r in versions.itertuples():
            t.add_row(str(r.version), f"[bold green]{r.aliases}[/]" if r.aliases else "", r.created, r.spec,
                      r.decision, r.digest, r.reason)
        console.print(t)
    console.print(f"tracking: {uri}")


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Registered model, e.g. uplift-registration.")],
    version: Annotated[str, typer.Argument(help="Version number to move the alias to.")],
    reason: Annotated[str, typer.Option(help="Why (recorded on the version as a manual move).")],
    alias: Annotated[str | None, typer.Option(help="Alias to move (default: the settings' alias, champion).")] = None,
) -> None:
    """Move an alias to a version by hand, past the gate; recorded on the version as manual, with the reason."""
    from uplift.config import get_settings
    from uplift.tracking.registry import promote_by_hand

    if not version.isdigit():
        fail(f"VERSION must be a version number, got {version!r}")
    alias = alias or get_settings().alias
    client, _ = _client()
    replaced = promote_by_hand(client, name, version, alias=alias, reason=reason)
    before = f" (was v{replaced})" if replaced is not None else ""
    console.print(f"{name}@{alias} = v{version}{before}, by hand: {reason.strip()}", highlight=False)
