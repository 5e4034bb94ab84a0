"""The pipeline's Prometheus metrics (catalogue.PIPELINE), computed at scrape time from the stores:
PostgreSQL (the ledger, quarantine, review queue, alerts, grid, VEE and anomaly tables), Kafka (the
ingest group's lag) and Dagster's run storage. Nothing is counted in memory, so the values are right
after a restart; what is kept between scrapes only makes the next one cheaper (`tally.py`).

Each part is a named collector; one that fails (Kafka down, a table missing) leaves its metrics out
of that scrape, counts in `metrify_metrics_collect_errors_total{collector}` and logs one warning
when it starts failing (and a line when it recovers), never breaking the scrape. Served by the data
API at `/metrics` and by `metrify metrics serve`; `metrify metrics show`, a one-shot scrape, exits
non-zero on the collectors in `PipelineCollector.failing` (docs/operations.md#metrics).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from functools import partial

import dagster as dg
import psycopg
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from psycopg.pq import TransactionStatus

from metrify_assets.observability.catalogue import PIPELINE
from metrify_assets.observability.families import counter, gauge, histogram
from metrify_assets.observability.kafka_metrics import lag_families, scrape_resource
from metrify_assets.observability.ledger_metrics import ledger_families, read_ledger, seed_ledger
from metrify_assets.observability.run_metrics import read_runs, run_families
from metrify_assets.observability.store_metrics import (
    StoreState,
    alert_families,
    backlog_families,
    grid_families,
    lifecycle_families,
    meter_families,
    source_families,
)
from metrify_assets.observability.tally import WindowedTally
from metrify_assets.resources.kafka import KafkaResource

log = logging.getLogger(__name__)

# Rows younger than this are read again on every scrape: a batch's transaction (its ledger row's
# `processed_at` is the transaction's start) or a run's last update commits within it.
LOOKBACK = timedelta(minutes=15)
STATEMENT_TIMEOUT_MS = 5000  # no one query may hold a scrape past Prometheus's 10 s timeout
DB_COLLECTORS = ("ledger", "sources", "backlog", "meters", "grid", "alerts", "lifecycle")
COLLECTORS = ("postgres", *DB_COLLECTORS, "kafka", "dagster")

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


def empty_family(name: str) -> Metric:
    kind = next(spec.kind for spec in PIPELINE if spec.name == name)
    return {"counter": counter, "gauge": gauge, "histogram": histogram}[kind](name)


class PipelineCollector:
    """A `prometheus_client` collector of every pipeline metric.

    `connect` opens a PostgreSQL connection per scrape (a pool's, or a new one); `kafka` is None
    when Kafka is not configured (no lag); `instance` opens the Dagster instance on the first scrape
    (None: no run counts). The database steps named in `skip` are left out (a one-off reader that
    needs no counters skips the ledger's, whose first scrape reads the whole ledger). Scrapes are
    serialised: they share the incremental state.
    """

    def __init__(
        self,
        connect: Connect,
        kafka: KafkaResource | None = None,
        instance: Callable[[], dg.DagsterInstance] | None = None,
        lookback: timedelta = LOOKBACK,
        statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
        skip: Collection[str] = (),
    ) -> None:
        self._connect = connect
        self._kafka = scrape_resource(kafka) if kafka is not None and kafka.configured else None
        self._open_instance = instance
        self._instance: dg.DagsterInstance | None = None
        self._lookback = lookback
        self._skip = frozenset(skip)
        self._timeout_ms = statement_timeout_ms
        self._ledger = WindowedTally()
        self._runs = WindowedTally()
        self._store = StoreState()
        self._errors: Counter[str] = Counter()
        self._failing: dict[str, Exception] = {}
        self._lock = threading.Lock()

    @property
    def failing(self) -> dict[str, Exception]:
        """The collectors whose latest attempt failed, with its error: a server only counts them, a
        one-shot scrape (`metrify metrics show`) must say so."""
        with self._lock:
            return dict(self._failing)

    def describe(self) -> Iterator[Metric]:
        """The catalogue's families, without querying anything (registration must not scrape)."""
        for spec in PIPELINE:
            yield empty_family(spec.name)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            started = time.perf_counter()
            families = [*self._database(), *self._kafka_lag(), *self._dagster_runs()]
            seconds = time.perf_counter() - started
        took = gauge("metrify_metrics_collect_seconds")
        took.add_metric([], seconds)
        errors = counter("metrify_metrics_collect_errors_total")
        for name in COLLECTORS:
            errors.add_metric([name], float(self._errors[name]))
        yield from families
        yield took
        yield errors

    def _run(self, name: str, step: Callable[[], list[Metric]]) -> list[Metric]:
        try:
            families = step()
        except Exception as err:  # noqa: BLE001 - any failure leaves out this collector's metrics only
            self._errors[name] += 1
            if name not in self._failing:
                log.warning("metrics collector %r failed, its metrics are left out: %s", name, err)
            self._failing[name] = err
            return []
        if self._failing.pop(name, None) is not None:
            log.info("metrics collector %r recovered", name)
        return families

    def _database(self) -> list[Metric]:
        steps: dict[str, Callable[[psycopg.Connection], list[Metric]]] = {
            "ledger": self._ledger_families,  # seeded first, in a transaction of its own
            "sources": partial(source_families, state=self._store),
            "backlog": backlog_families,
            "meters": partial(meter_families, state=self._store),
            "grid": grid_families,
            "alerts": alert_families,
            "lifecycle": lifecycle_families,
        }
        steps = {name: step for name, step in steps.items() if name not in self._skip}
        families: list[Metric] = []

        def each_step() -> list[Metric]:
            with self._connect() as conn:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.rollback()
                for name, step in steps.items():
                    families.extend(self._run(name, partial(self._step, conn, name, step)))
            return []

        self._run("postgres", each_step)
        return families

    def _step(
        self, conn: psycopg.Connection, name: str, step: Callable[[psycopg.Connection], list[Metric]]
    ) -> list[Metric]:
        if name == "ledger" and not self._ledger.seeded:
            # One pass over the whole ledger: its cost grows with the history, so no scrape timeout.
            _snapshot(conn, self._seed_ledger, timeout_ms=0)
        return _snapshot(conn, step, timeout_ms=self._timeout_ms)

    def _seed_ledger(self, conn: psycopg.Connection) -> list[Metric]:
        seed_ledger(conn, self._ledger, self._lookback)
        return []

    def _ledger_families(self, conn: psycopg.Connection) -> list[Metric]:
        read_ledger(conn, self._ledger, self._lookback)
        return ledger_families(self._ledger)

    def _kafka_lag(self) -> list[Metric]:
        kafka = self._kafka
        if kafka is None:
            return []
        return self._run("kafka", lambda: lag_families(kafka))

    def _dagster_runs(self) -> list[Metric]:
        if self._open_instance is None:
            return []

        def runs() -> list[Metric]:
            if self._instance is None and self._open_instance is not None:
                self._instance = self._open_instance()
            assert self._instance is not None
            read_runs(self._instance, self._runs, self._lookback)
            return run_families(self._runs)

        return self._run("dagster", runs)


def _snapshot(
    conn: psycopg.Connection, step: Callable[[psycopg.Connection], list[Metric]], timeout_ms: int
) -> list[Metric]:
    """Run `step` in its own read-only REPEATABLE READ transaction with a statement timeout (0: none,
    the ledger's seed): a step sees one snapshot, and a failing step's error does not abort the next
    one's transaction."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        return step(conn)


def pipeline_registry(collector: PipelineCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
