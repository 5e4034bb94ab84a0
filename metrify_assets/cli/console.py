"""The commands' Rich console: the terminal's width in a terminal, and wide when piped or redirected."""

from __future__ import annotations

from rich.console import Console

# Piped or redirected, Rich would assume 80 columns and cut paths, batch ids and table cells with "…".
PIPED_WIDTH = 200


def command_console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr, when stdout carries `--json` output)."""
    out = Console(stderr=stderr)
    return out if out.is_terminal else Console(stderr=stderr, width=max(out.width, PIPED_WIDTH))
