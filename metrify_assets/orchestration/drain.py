"""`metrify kafka drain`: ingest everything in the topics now, through the sensor's planning and the
ingest job, executed in this process (like `catchup.ingest_files` for landing files).

It starts from the ingest group's committed offsets, so a second drain only takes what is new, and
replaying is harmless anyway (ranges are idempotent batches). With `workers` > 1 ranges run side by
side, each in a process forked from this one once it has imported what a run needs (as the warm run
launcher does for the daemon): a run is mostly Python, so threads would take turns. Ticks are
planned as workers free up, across the sources, as the daemon's sensors do. The backlog's last tick
is balanced over the workers (`kafka.ranges.balance_ranges`): a range that would run alone at the
end is cut between them.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from kafka.errors import KafkaError

from metrify_assets.contracts import CONTRACTS
from metrify_assets.ingestion.kafka.sensor import kafka_tick, unreachable
from metrify_assets.ingestion.sensors import BATCH_TAG, ingest_job_name
from metrify_assets.orchestration.instance import RunFailedError, execute_job
from metrify_assets.partitions import TRIGGER_TAG
from metrify_assets.resources import PostgresResource, kafka_kept
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.storage.writes import record_counts
from metrify_platform import alembic_scripts
from metrify_platform.event_log import TemplatedSqliteEventLogStorage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrainSummary:
    batches: int
    records: int
    accepted: int
    quarantined: int
    seconds: float
    failed: dict[str, str] = field(default_factory=dict)  # ranges whose runs failed: batch id -> error
    unread: dict[str, str] = field(default_factory=dict)  # sources whose brokers were unreachable -> error
    no_topic: list[str] = field(default_factory=list)  # topics that do not exist (nothing produced yet)

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def drain(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    kafka: KafkaResource,
    postgres: PostgresResource,
    sources: Iterable[str] = tuple(CONTRACTS),
    on_batch: Callable[[str], None] | None = None,
    workers: int = 1,
    trigger: str = "cli",
) -> DrainSummary:
    """Tick and run until every source's topic has no unplanned range; counts come from the ledger.

    A range whose run fails (after its step retries) does not stop the drain: the others are still
    ingested, and the failed ones are returned in `failed` (the next drain or sensor tick requests
    them again). When the brokers cannot be reached at a tick, no source is read on (one cluster
    holds their topics): the sources still being drained are returned in `unread` with the error; a
    topic that does not exist, in `no_topic`. `workers` runs that many ranges at once (processes;
    the instance must be a persistent one they can all write to). Runs are tagged with `trigger`,
    what asked for the drain."""
    if not kafka.configured:
        raise ValueError("Kafka is not configured: set KAFKA_BOOTSTRAP_SERVERS")
    if workers > 1 and not instance.is_persistent:
        raise ValueError("parallel drain workers need a persistent Dagster instance (DAGSTER_HOME)")
    started = time.monotonic()
    batch_ids: list[str] = []
    failed: dict[str, str] = {}  # batch id -> why its run failed (after its retries)
    planner = _Planner(list(sources), instance, kafka, postgres, failed, workers, trigger)
    with _runs(defs, instance, workers, planner.sources, kafka) as execute:
        for batch_id, error in execute(planner.next):
            if error is not None:  # the other ranges go on; this one is re-requested later
                failed[batch_id] = error
                continue
            batch_ids.append(batch_id)
            if on_batch:
                on_batch(batch_id)
    seconds = time.monotonic() - started
    with postgres.connect() as conn:
        counts = record_counts(conn, sorted(set(batch_ids))).values()
    return DrainSummary(
        len(set(batch_ids)),
        sum(c.records_in for c in counts),
        sum(c.accepted for c in counts),
        sum(c.quarantined for c in counts),
        seconds,
        failed,
        planner.unread,
        planner.no_topic,
    )


Job = tuple[str, dict[str, object], dict[str, str]]  # job name, run config, tags (BATCH_TAG among them)
Results = Iterator[tuple[str, str | None]]  # batch id, and why its run failed (None: it succeeded)
Plan = Callable[[], list[Job] | None]  # the next tick's runs; None when every topic is drained


class _Planner:
    """The sensor's ticks for each source in turn, from the ingest group's committed offsets: each
    tick plans the ranges after the previous tick's (its cursor), so ticks need not wait for runs."""

    def __init__(
        self,
        sources: list[str],
        instance: dg.DagsterInstance,
        kafka: KafkaResource,
        postgres: PostgresResource,
        failed: dict[str, str],
        workers: int,
        trigger: str,
    ) -> None:
        self.sources = sources
        self._instance, self._kafka, self._postgres, self._failed = instance, kafka, postgres, failed
        self._workers, self._trigger = workers, trigger
        self._cursors: dict[str, str | None] = {}
        self._active = list(sources)
        self.unread: dict[str, str] = {}
        self.no_topic: list[str] = []

    def next(self) -> list[Job] | None:
        while self._active:
            source = self._active.pop(0)
            try:
                tick = self._tick(source)
            except KafkaError as err:  # one cluster holds every topic: none is read on
                for name in [source, *self._active]:  # the summary names them; the command fails
                    self.unread[name] = unreachable(self._kafka, err)
                self._active.clear()
                return None
            if not isinstance(tick, dg.SensorResult):
                self.no_topic.append(self._kafka.topic(source))
                continue
            # a range that failed in this drain is not run again here: the next drain or tick retries it
            requests = [r for r in tick.run_requests or [] if r.tags[BATCH_TAG] not in self._failed]
            if not requests:
                continue  # this topic is drained
            self._cursors[source] = tick.cursor
            self._active.append(source)
            return [
                (ingest_job_name(source), dict(r.run_config), {**r.tags, TRIGGER_TAG: self._trigger})
                for r in requests
            ]
        return None

    def _tick(self, source: str) -> dg.SensorResult | dg.SkipReason:
        return kafka_tick(
            CONTRACTS[source],
            self._instance,
            self._cursors.get(source),
            self._kafka,
            self._postgres,
            None,  # a person's command: ranges whose runs failed before are requested again at once
            # Balanced only when no other source has ranges left to keep the workers busy.
            self._workers if not self._active else 1,
            from_committed=source not in self._cursors,  # the first tick starts where the group is
        )


@contextmanager
def _runs(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    workers: int,
    sources: Sequence[str],
    kafka: KafkaResource,
) -> Iterator[Callable[[Plan], Results]]:
    """An executor of the planned ingest runs: in this process, tick after tick, or in `workers`
    forked processes, which inherit the imports and the GX suites warmed here first (GX's import
    alone is seconds) and make their Kafka clients while the first tick is planned. The pool plans
    the next tick as soon as a worker is free, so the last range of a tick does not leave the other
    cores idle until it ends."""
    if workers <= 1:

        def in_process(plan: Plan) -> Results:
            with frozen_heap(), kafka_kept.keeping():  # the runs' Kafka clients, from run to run
                while (jobs := plan()) is not None:
                    for job in jobs:
                        yield _run(defs, instance, job)

        yield in_process
        return
    from metrify_assets.quality import gx  # pandas and GX: for a drain's worker pool only

    gx.warm_up([f"{stage}_{source}" for source in sources for stage in ("raw", "validated")])
    alembic_scripts.warm()  # each worker opens the instance again: its schema checks read nothing
    for source in sources:  # built once here for every worker: the repository and the ingest jobs
        defs.resolve_job_def(ingest_job_name(source))
    event_log = instance.event_log_storage
    if isinstance(event_log, TemplatedSqliteEventLogStorage):  # made here once, not by each worker
        event_log.ensure_template()
    context = multiprocessing.get_context("fork")
    with (
        frozen_heap(),
        ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init, initargs=(defs, instance.get_ref(), kafka)
        ) as pool,
    ):
        # Fork the workers now (with fork they all start on the first submit): their initializer,
        # which opens the instance again and makes the Kafka clients, runs while the first tick is
        # planned.
        pool.submit(os.getpid)

        def pooled(plan: Plan) -> Results:
            running: set[Future[tuple[str, str | None]]] = set()
            planning = True
            while True:
                while planning and len(running) < workers:
                    jobs = plan()
                    if jobs is None:
                        planning = False
                    else:
                        running |= {pool.submit(_in_worker, job) for job in jobs}
                if not running:
                    return
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()

        yield pooled


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the garbage collector off what is imported already (Dagster, GX, pandas: about 600,000
    objects) while runs execute, here and in workers forked meanwhile.

    A run allocates millions of objects (Kafka records, decoded JSON), so collections are frequent,
    and the older ones walked that whole heap each time: about 0.4 s of a 30,000-message run.
    No collection first (a full one is 0.4 s on that heap, before the first run could start): the
    little garbage frozen with it is collectable again once unfrozen, afterwards."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


_worker: tuple[dg.Definitions, dg.DagsterInstance] | None = None  # in a forked worker: what it runs


def _init(defs: dg.Definitions, ref: InstanceRef, kafka: KafkaResource) -> None:
    """In a forked worker: the definitions as inherited, the instance opened again from its ref, and
    the Kafka clients of one run kept for the next (they close with the worker). The first run's
    are made here, so its dead letters and offset commit do not wait for them."""
    global _worker
    _worker = (defs, dg.DagsterInstance.from_ref(ref))
    kafka_kept.keep_for_this_process()
    try:
        with kafka.offsets_consumer(), kafka.producer():
            pass
    except KafkaError as err:  # the runs make their own, and fail as they would have, if they must
        log.info("drain worker %d: no Kafka clients made ahead (%s)", os.getpid(), err)


def _in_worker(job: Job) -> tuple[str, str | None]:
    if _worker is None:
        raise RuntimeError("drain worker used before its initializer ran")
    return _run(*_worker, job)


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, job: Job) -> tuple[str, str | None]:
    name, run_config, tags = job
    try:
        execute_job(defs, name, instance, run_config=run_config, tags=tags)
    except RunFailedError as err:
        return tags[BATCH_TAG], str(err)
    return tags[BATCH_TAG], None
