"""Options more than one command takes, checked the same way everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

from metrify_assets.contracts import CONTRACTS

Source = Annotated[str | None, typer.Option(help=f"Only this source: {', '.join(CONTRACTS)}.")]


def known_source(source: str | None) -> str | None:
    """`source` if it names a contract (or is None); a usage error (exit 2) otherwise."""
    if source and source not in CONTRACTS:
        raise typer.BadParameter(
            f"unknown source {source!r}; one of {', '.join(CONTRACTS)}", param_hint="--source"
        )
    return source
