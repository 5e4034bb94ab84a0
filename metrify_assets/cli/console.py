"""How the commands print: their Rich console (the terminal's width in a terminal, wide when piped
or redirected) and their `--json` text (times in ISO 8601 with a `T`, as the API writes them)."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any

from rich.console import Console

# Piped or redirected, Rich would assume 80 columns and cut paths, batch ids and table cells with "…".
PIPED_WIDTH = 200


def counted(n: int, noun: str) -> str:
    """`n` and its noun, plural unless one: "1 meter-day", "1,204 records"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def command_console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr, when stdout carries `--json` output)."""
    out = Console(stderr=stderr)
    return out if out.is_terminal else Console(stderr=stderr, width=max(out.width, PIPED_WIDTH))


def to_json(value: Any, indent: int | None = None) -> str:
    """`value` as JSON; dates and times in ISO 8601 (`str` gave `2026-03-28 00:00:00+00:00`, unlike
    the API's `2026-03-28T00:00:00+00:00`), anything else JSON cannot hold as its text."""

    def default(item: Any) -> str:
        return item.isoformat() if isinstance(item, (date, datetime, time)) else str(item)

    return json.dumps(value, indent=indent, default=default)
