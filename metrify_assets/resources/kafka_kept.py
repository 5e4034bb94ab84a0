"""Kafka clients a process keeps between its runs: a drain's workers, which run range after range.

A run's three clients (the range's consumer, the dead-letter producer, the offset commit's consumer)
each cost a connection, a metadata fetch and, for the producer, an idempotent producer id; for the
commit, the group coordinator's lookup. Made fresh for every run that was 72-87 ms of a run and
about as much CPU again in the broker; kept, 24-26 ms (185 dead letters and a commit,
docs/decisions.md). Only a process that says so keeps them: the daemon's runs each get a process of
their own, and a sensor tick's client must not outlive it.

A client is kept only after a use that ended without an error (a consumer's assignment cleared, a
producer flushed); one whose use raised is closed, so a broken one is never handed out again.
Kept clients belong to the process that made them: a process forked meanwhile makes its own and
never touches its parent's (their sockets are the parent's too).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class KeptClients:
    """Idle clients by kind and configuration, taken for a use and given back after it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._idle: dict[str, list[tuple[Any, Callable[[], None]]]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> Any | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop()[0] if idle else None

    def give_back(self, key: str, client: Any, close: Callable[[], None]) -> None:
        """Keep `client` for the next use of `key`; `close` closes it when the keeping ends."""
        with self._lock:
            self._idle.setdefault(key, []).append((client, close))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for clients in idle.values():
            for _, close in clients:
                close()


_kept: KeptClients | None = None


def kept() -> KeptClients | None:
    """This process's kept clients, if it keeps them (not a parent's, inherited by a fork)."""
    return _kept if _kept is not None and _kept.pid == os.getpid() else None


def keep_for_this_process() -> None:
    """Keep clients until this process ends (a drain's worker: its clients close with it)."""
    global _kept
    if kept() is None:
        _kept = KeptClients()


@contextmanager
def keeping() -> Iterator[None]:
    """Keep clients within the block (a drain that runs its ranges in this process), then close
    them; a process that keeps them already goes on as it did."""
    global _kept
    if kept() is not None:
        yield
        return
    previous, _kept = _kept, KeptClients()
    try:
        yield
    finally:
        own, _kept = _kept, previous
        own.close()
