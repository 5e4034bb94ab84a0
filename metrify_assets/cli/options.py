"""Options more than one command takes, checked the same way everywhere."""

from __future__ import annotations

from datetime import date
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


def parse_day(value: str, option: str) -> date:
    """`value` of `option` as a day; a usage error (exit 2) naming the option otherwise."""
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise typer.BadParameter(f"must be a date (YYYY-MM-DD), got {value!r}", param_hint=option) from err


def day_range(first: str, last: str | None) -> tuple[date, date]:
    """`--from` and `--to` (default: the first day) as days, the last not before the first."""
    first_day = parse_day(first, "--from")
    last_day = parse_day(last, "--to") if last else first_day
    if last_day < first_day:
        raise typer.BadParameter(f"{last_day} is before --from {first_day}", param_hint="--to")
    return first_day, last_day
