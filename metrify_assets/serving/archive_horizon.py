"""The newest day of each dataset that left PostgreSQL for the lake, as one API process knows it.

A meter's latest reading comes from Redis without touching PostgreSQL; saying which days from its day
on were archived (`archived_days`) would cost every such request a database round trip, though in the
usual case the lifecycle archived only days older than the reading. The horizon answers that case
from memory: it is reloaded (one indexed `max`) on the first request after `refresh_s`, so a day
archived meanwhile is named within `refresh_s`, as a revoked token is refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date

import psycopg

from metrify_assets.storage.days import newest_archived_day

HORIZON_REFRESH_S = 5.0


class ArchiveHorizon:
    """The newest archived day per dataset, reloaded at most every `refresh_s` when asked."""

    def __init__(
        self, refresh_s: float = HORIZON_REFRESH_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.refresh_s = refresh_s
        self._clock = clock
        self._known: dict[str, tuple[float, date | None]] = {}
        self._lock = threading.Lock()

    def newest(
        self, dataset: str, connect: Callable[[], AbstractContextManager[psycopg.Connection]]
    ) -> date | None:
        """The newest archived day of `dataset` (None: none), at most `refresh_s` old."""
        with self._lock:
            known = self._known.get(dataset)
        if known is not None and self._clock() - known[0] <= self.refresh_s:
            return known[1]
        with connect() as conn:
            newest = newest_archived_day(conn, dataset)
        with self._lock:
            self._known[dataset] = (self._clock(), newest)
        return newest
