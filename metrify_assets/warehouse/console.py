"""dbt's console lines go to the run's log, not to the process's stdout.

dagster-dbt echoes each line of dbt's console to `sys.stdout` (a build: about 900 lines, with ANSI
colours). In the runs the CLI executes in its own process they landed on the command's stdout, over
its summary and before the one JSON object `metrify demo --json` promises. While dbt runs, what the
calling thread writes to stdout becomes debug lines of the run's Dagster log (the UI shows them; the
CLI prints warnings and up); writes from other threads, such as a progress display's, still reach
stdout. One router on `sys.stdout` serves every thread running dbt, so steps in parallel threads may
start and finish in any order; a streamed build is routed only while it makes each event, not while
Dagster handles it. dbt's full log is also in `dbt.log` of each invocation's target directory.
"""

from __future__ import annotations

import io
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar, cast

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
T = TypeVar("T")


class _Lines:
    """Text written in pieces, passed on to `emit` a line at a time, without ANSI colours."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._partial = ""

    def write(self, text: str) -> None:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._send(line)

    def finish(self) -> None:
        """Pass on a last line that had no newline."""
        self._send(self._partial)
        self._partial = ""

    def _send(self, line: str) -> None:
        plain = _ANSI.sub("", line).rstrip()
        if plain:
            self._emit(plain)


class _ThreadRouter(io.TextIOBase):
    """A stdout that sends each routed thread's writes to its own `_Lines`, and every other thread's
    to the stdout it wraps. One router stands while any block is open, so blocks of several threads
    may open and close in any order."""

    def __init__(self, stdout: TextIO) -> None:
        self.wrapped = stdout
        self.routes: dict[int, _Lines] = {}

    @property
    def rich_proxied_file(self) -> TextIO:
        """The file under this one, for Rich: a console writing to stdout (a progress display's
        refresh) unwraps it as it unwraps its own stdout proxy, and writes to the terminal."""
        return getattr(self.wrapped, "rich_proxied_file", self.wrapped)

    def write(self, text: str) -> int:
        lines = self.routes.get(threading.get_ident())
        if lines is None:
            return self.wrapped.write(text)
        lines.write(text)
        return len(text)

    def flush(self) -> None:
        if threading.get_ident() not in self.routes:
            self.wrapped.flush()


_ROUTING = threading.Lock()


@contextmanager
def _routed(lines: _Lines) -> Iterator[None]:
    """This thread's stdout goes to `lines` while the block runs."""
    me = threading.get_ident()
    with _ROUTING:
        current = sys.stdout
        router = current if isinstance(current, _ThreadRouter) else _ThreadRouter(current)
        sys.stdout = router
        router.routes[me] = lines
    try:
        yield
    finally:
        with _ROUTING:
            router.routes.pop(me, None)
            if not router.routes and sys.stdout is router:
                sys.stdout = router.wrapped


@contextmanager
def dbt_console_to(emit: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, lines this thread writes to stdout go to `emit` (e.g. `context.log.debug`)."""
    lines = _Lines(emit)
    try:
        with _routed(lines):
            yield
    finally:
        lines.finish()


def dbt_events_to(events: Iterable[T], emit: Callable[[str], None]) -> Iterator[T]:
    """`events` (a dbt command's stream), with what this thread writes to stdout while producing each
    one going to `emit`. Routed only inside each step, not while the consumer holds an event: an
    asset that yields them does not route Dagster's own work between two events."""
    lines, iterator = _Lines(emit), iter(events)
    try:
        while True:
            with _routed(lines):
                event = next(iterator, _END)
            if event is _END:
                return
            yield cast(T, event)
    finally:
        lines.finish()


_END = object()
