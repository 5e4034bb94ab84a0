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
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar, cast

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
T = TypeVar("T")
EMIT_EVERY_S = 2.0  # dbt lines gathered into one message of the run's log at most this long


class _Lines:
    """Text written in pieces, passed on to `emit` without ANSI colours, in messages of the lines
    gathered over `EMIT_EVERY_S`: each message is one event in the run's log, and a build's 900 lines
    one by one took 21 s of event-log writes on a SQLite test instance (one message of them: 0.02 s)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._partial = ""
        self._gathered: list[str] = []
        self._since = time.monotonic()

    def write(self, text: str) -> None:
        *lines, self._partial = (self._partial + text).split("\n")
        self._gathered += (plain for plain in map(_plain, lines) if plain)
        if self._gathered and time.monotonic() - self._since >= EMIT_EVERY_S:
            self._pass_on()

    def finish(self) -> None:
        """Pass on what is gathered, a last line without a newline included."""
        if plain := _plain(self._partial):
            self._gathered.append(plain)
        self._partial = ""
        if self._gathered:
            self._pass_on()

    def _pass_on(self) -> None:
        self._emit("\n".join(self._gathered))
        self._gathered = []
        self._since = time.monotonic()


def _plain(line: str) -> str:
    return _ANSI.sub("", line).rstrip()


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
