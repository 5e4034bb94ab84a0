"""Kafka clients a process keeps between its runs: a drain's workers, which run range after range.

A run's dead-letter producer (an idempotent producer asks the broker for an id) and the consumer that
commits its offset (a lookup of the group's coordinator) each cost a connection and a metadata
fetch. Made fresh for every run they took 72-87 ms of it and about as much CPU again in the broker;
kept, 24-26 ms (185 dead letters and a commit, docs/decisions.md). The consumer that reads a range is
never kept (`KafkaResource.consumer`). Only a process that says so keeps clients: the daemon's runs
each get a process of their own, and a sensor tick's client must not outlive it.

A client is kept only after a use that ended without an error: a producer flushed, with no send the
broker refused for good; an offsets consumer with no partitions assigned or subscribed (`use`). One
whose use raised is closed, so a broken one is not handed out again.
Kept clients belong to the process that made them: a process forked meanwhile makes its own and
never touches its parent's (their sockets are the parent's too).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

C = TypeVar("C")
log = logging.getLogger(__name__)


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
            for client, close in clients:
                try:
                    close()
                except Exception as err:  # noqa: BLE001 - the others are closed still
                    log.warning("closing a kept Kafka client %r failed: %s", client, err)


_kept: KeptClients | None = None
# A parent's kept clients, inherited by a fork that then keeps its own: held, never used or closed (a
# producer closes itself when collected, on sockets the parent still uses).
_inherited: list[KeptClients] = []


def kept() -> KeptClients | None:
    """This process's kept clients, if it keeps them (not a parent's, inherited by a fork)."""
    return _kept if _kept is not None and _kept.pid == os.getpid() else None


def keep_for_this_process() -> None:
    """Keep clients until this process ends (a drain's worker: its clients close with it)."""
    global _kept
    if kept() is None:
        if _kept is not None:
            _inherited.append(_kept)
        _kept = KeptClients()


@contextmanager
def keeping() -> Iterator[None]:
    """Keep clients within the block (a drain that runs its ranges in this process), then close
    them; a process that keeps them already goes on as it did."""
    global _kept
    if kept() is not None:
        yield
        return
    previous, _kept = _kept, KeptClients()  # a parent's, if any, stays referenced here
    try:
        yield
    finally:
        own, _kept = _kept, previous
        own.close()


@contextmanager
def use(
    key: str, make: Callable[[], C], close: Callable[[C], None], reusable: Callable[[C], bool]
) -> Iterator[C]:
    """A client for one use: a kept one of `key` where this process keeps them, else `make`'s. After a
    use that ended without an error it is kept if `reusable` says so, else closed; one whose use
    raised is closed."""
    keeper = kept()
    client = (keeper.take(key) if keeper else None) or make()
    try:
        yield client
    except BaseException:
        close(client)
        raise
    if keeper is not None and reusable(client):
        keeper.give_back(key, client, lambda: close(client))
    else:
        close(client)
