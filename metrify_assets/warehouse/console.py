"""dbt's console lines go to the run's log, not to the process's stdout.

dagster-dbt echoes each line of dbt's console to `sys.stdout` (a build: about 900 lines, with ANSI
colours). In the runs the CLI executes in its own process they landed on the command's stdout, over
its summary and before the one JSON object `metrify demo --json` promises. While dbt runs, what the
calling thread writes to stdout becomes debug lines of the run's Dagster log (the UI shows them; the
CLI prints warnings and up); writes from other threads, such as a progress display's, still reach
stdout. dbt's full log is also in `dbt.log` of each invocation's target directory.
"""

from __future__ import annotations

import io
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _CallerLines(io.TextIOBase):
    """A stdout whose writes from one thread become lines passed to `emit`."""

    def __init__(self, stdout: TextIO, emit: Callable[[str], None]) -> None:
        self._stdout = stdout
        self._emit = emit
        self._caller = threading.get_ident()
        self._partial = ""

    @property
    def rich_proxied_file(self) -> TextIO:
        """The file under this one, for Rich: a console writing to stdout (a progress display's
        refresh) unwraps it as it unwraps its own stdout proxy, and writes to the terminal."""
        return getattr(self._stdout, "rich_proxied_file", self._stdout)

    def write(self, text: str) -> int:
        if threading.get_ident() != self._caller:
            return self._stdout.write(text)
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._send(line)
        return len(text)

    def flush(self) -> None:
        if threading.get_ident() != self._caller:
            self._stdout.flush()

    def finish(self) -> None:
        """Pass on a last line that had no newline."""
        self._send(self._partial)
        self._partial = ""

    def _send(self, line: str) -> None:
        plain = _ANSI.sub("", line).rstrip()
        if plain:
            self._emit(plain)


@contextmanager
def dbt_console_to(emit: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, lines this thread writes to stdout go to `emit` (e.g. `context.log.debug`)."""
    stdout = sys.stdout
    lines = _CallerLines(stdout, emit)
    sys.stdout = lines
    try:
        yield
    finally:
        sys.stdout = stdout
        lines.finish()
