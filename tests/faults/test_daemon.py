"""The Dagster daemon SIGKILLed while a Kafka sensor tick is in flight, restarted, killed again.

The daemon runs as deployed locally (`dagster-daemon run`, queued run coordinator, warm run
launcher, run monitoring) on the benchmark's code location, whose meter-readings sensor runs by
itself every daemon pass. The code location is served by a code server of its own (`dagster api
grpc`), as a deployment runs it beside the daemon: the sensor only reads (offsets, the ledger) and
the tick's state is the daemon's to write, so a daemon restart need not pay for importing the code
location again. Records are produced in bursts; each time a tick is seen STARTED in the instance
(evaluating, or with its run ids reserved), the daemon's whole process group is killed.
After the last restart every record must be in `ops.meter_readings` once with the produced value,
the ledger's offset ranges must tile each partition exactly (nothing ingested twice under another
batch id, no hole), no range may have been requested twice, and the group's offsets reach the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest
from dagster._core.scheduler.instigation import InstigatorTick, InstigatorType, TickStatus
from dagster._grpc.client import DagsterGrpcClient

from benchmarks.cases.freshness import PROJECT_ROOT, SENSOR_INTERVAL_S, stop_daemon, warm_yaml
from benchmarks.freshness_location import SENSOR
from metrify_assets.contracts import METER_READINGS
from metrify_assets.ingestion.kafka.produce import produce
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.ingestion.sensors import BATCH_TAG
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.resources.kafka_offsets import topic_offsets
from metrify_platform.kafka_broker import KafkaBroker

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres]
SOURCE = METER_READINGS.source
KILLS = 2
BURST = 30
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"
STARTED = TickStatus.STARTED
PARENT_RUN_TAG = "dagster/parent_run_id"  # set on Dagster's automatic retry of a run that died
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def instance_yaml(home: Path) -> str:
    """The bench's warm instance, except that run monitoring checks runs every 5 s (15 s as deployed):
    a run the kill left STARTING is failed, and retried, as soon as its start timeout (90 s,
    unchanged) has passed."""
    return warm_yaml(home).replace("poll_interval_seconds: 15", "poll_interval_seconds: 5")


def reading(meter_id: str, i: int) -> tuple[tuple[str, pd.Timestamp], float, str]:
    """A valid reading of one of the last complete quarter hours: its key, value and message."""
    start = pd.Timestamp.now(tz="UTC").floor("15min") - pd.Timedelta(minutes=15 * (1 + i % 4))
    kwh = round(0.1 + i / 1000, 3)
    message = json.dumps(
        {"meter_id": meter_id, "reading_start": start.isoformat(), "interval_minutes": 15, "energy_kwh": kwh,
         "source": "fault-daemon"}
    )  # fmt: skip
    return (meter_id, start), kwh, message


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise TimeoutError(f"not within {timeout:.0f} s: {what}")


def sensor_ids(instance: dg.DagsterInstance) -> tuple[str, str] | None:
    """Origin and selector id of the bench sensor, once the daemon has stored its state."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == SENSOR:
            return state.instigator_origin_id, state.selector_id
    return None


def latest_tick(instance: dg.DagsterInstance, ids: tuple[str, str]) -> InstigatorTick | None:
    return next(iter(instance.get_ticks(ids[0], ids[1], limit=1)), None)


def catch_tick(
    instance: dg.DagsterInstance,
    ids: tuple[str, str],
    want_reserved: bool,
    burst: Callable[[int], None],
    timeout: float = 30,
) -> InstigatorTick:
    """The first tick seen STARTED after now (polled every 5 ms). With `want_reserved`, one whose run
    ids are reserved (runs and cursor written into the tick, not yet into the sensor's state): a tick
    that ends unseen is followed by a few more records, so the next one has runs to request; after
    half of `timeout`, any STARTED tick will do."""
    sent = time.time()
    deadline = time.monotonic() + timeout
    missed: set[int] = set()
    while time.monotonic() < deadline:
        tick = latest_tick(instance, ids)
        if tick is not None and tick.timestamp >= sent - 1:
            if tick.status == STARTED:
                if (
                    tick.tick_data.reserved_run_ids
                    or not want_reserved
                    or time.monotonic() > deadline - timeout / 2
                ):
                    return tick
            elif want_reserved and tick.tick_id not in missed:
                missed.add(tick.tick_id)
                burst(3)
        time.sleep(0.005)
    raise TimeoutError(f"no tick seen STARTED within {timeout:.0f} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_code_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    """The benchmark's code location (`benchmarks.freshness_location`) served over gRPC on `port`,
    in its own process group, with the daemon's environment; returns once it answers a ping."""
    environ = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "METRIFY_BENCH_SENSOR_INTERVAL": str(SENSOR_INTERVAL_S),
    }
    command = [str(Path(sys.executable).parent / "dagster"), "api", "grpc", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--module-name", "benchmarks.freshness_location", "--attribute", "defs"]
    command += ["--working-directory", str(PROJECT_ROOT), "--location-name", "metrify"]
    with (home / "code-server.log").open("wb") as log:
        proc = subprocess.Popen(
            command,
            env=environ,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = DagsterGrpcClient(port=port, host="127.0.0.1")

    def answers() -> bool:
        assert proc.poll() is None, (home / "code-server.log").read_text()
        try:
            return bool(client.ping("up"))
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    wait_for("the code server answers", answers, 180, every=0.5)
    return proc


def start_daemon(home: Path, port: int) -> subprocess.Popen[bytes]:
    """`dagster-daemon run` on the instance in `home`, its workspace the code server on `port`, in its
    own process group."""
    workspace = home / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n      location_name: metrify\n"
    )
    environ = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "METRIFY_BENCH_SENSOR_INTERVAL": str(SENSOR_INTERVAL_S),
    }
    with (home / "daemon.log").open("wb") as log:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
            env=environ,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the daemon's process group and wait until it is gone."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with contextlib.suppress(ProcessLookupError):
        wait_for("the daemon's group is gone", lambda: os.killpg(proc.pid, 0) is not None, 30)


def processes_of(home: Path) -> list[int]:
    """Pids of every process started for this instance (daemon, code server, run worker, runs):
    they all have DAGSTER_HOME=home."""
    marker = f"DAGSTER_HOME={home}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
    return pids


def ingested(conn: psycopg.Connection, prefix: str) -> dict[tuple[str, pd.Timestamp], float]:
    rows = conn.execute(
        "SELECT meter_id, reading_start, energy_kwh FROM ops.meter_readings WHERE meter_id LIKE %s",
        (f"{prefix}%",),
    ).fetchall()
    return {(m, pd.Timestamp(t).tz_convert("UTC")): float(v) for m, t, v in rows}


def ledger_ranges(conn: psycopg.Connection) -> list[tuple[OffsetRange, int, int, int]]:
    rows = conn.execute(
        "SELECT batch_id, records_in, accepted, quarantined FROM ops.ingest_ledger "
        "WHERE source = %s AND origin = 'kafka'",
        (SOURCE,),
    ).fetchall()
    return [(OffsetRange.parse(b), n, a, q) for b, n, a, q in rows]


def assert_ranges_tile(ranges: Sequence[OffsetRange], end: dict[int, int]) -> None:
    """Per partition, the ledger's ranges are [0, a), [a, b), ... [.., end): no overlap, no hole."""
    for partition, stop in end.items():
        mine = sorted(r for r in ranges if r.partition == partition)
        at = 0
        for r in mine:
            assert r.start == at, f"partition {partition}: {r.batch_id} after offset {at} ({mine})"
            at = r.end
        assert at == stop, f"partition {partition}: ledger reaches {at}, the topic {stop} ({mine})"


def test_daemon_killed_mid_tick_loses_and_doubles_nothing(
    kafka_broker: KafkaBroker,
    pg_resource: PostgresResource,
    pg: psycopg.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault_log: Callable[[str, str, float, Sequence[str]], None],
) -> None:
    group = f"fault-daemon-{uuid.uuid4().hex[:8]}"
    prefix = f"DKILL-{uuid.uuid4().hex[:6]}-"
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_broker.bootstrap_servers)
    monkeypatch.setenv("METRIFY_KAFKA_GROUP_ID", group)
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    kafka = KafkaResource(bootstrap_servers=kafka_broker.bootstrap_servers, group_id=group)
    kafka.ensure_topics(partitions=3)
    topic = kafka.topic(SOURCE)  # the default name: the only one the daemon's location can use
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml(home))
    pg.autocommit = True

    expected: dict[tuple[str, pd.Timestamp], float] = {}

    def burst(n: int) -> None:
        messages = []
        for _ in range(n):
            key, kwh, message = reading(f"{prefix}{len(expected):04d}", len(expected))
            expected[key] = kwh
            messages.append(message)
        produce(kafka, {SOURCE: messages})

    caught: list[str] = []
    first_kill: float | None = None
    daemon: subprocess.Popen[bytes] | None = None
    code_server: subprocess.Popen[bytes] | None = None
    port = free_port()
    try:
        code_server = start_code_server(home, port)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            for attempt in range(KILLS):
                daemon = start_daemon(home, port)
                restarted = time.time()
                wait_for("the sensor's state is stored", lambda: sensor_ids(instance) is not None, 180)
                ids = sensor_ids(instance)
                assert ids is not None

                def ticked_since(since: float, ids: tuple[str, str] = ids) -> bool:
                    tick = latest_tick(instance, ids)
                    return tick is not None and tick.timestamp > since and tick.status != STARTED

                wait_for("a tick of the restarted daemon", lambda since=restarted: ticked_since(since), 180)
                burst(BURST)
                victim = catch_tick(instance, ids, want_reserved=attempt > 0, burst=burst)
                kill_group(daemon)
                first_kill = first_kill or time.monotonic()
                reserved = len(victim.tick_data.reserved_run_ids or [])
                caught.append(f"tick {victim.tick_id}: {reserved} run ids reserved")
                (home / "daemon.log").rename(home / f"daemon-{attempt}.log")
                burst(10)  # records arriving while the daemon is down

            daemon = start_daemon(home, port)
            assert first_kill is not None
            end: dict[int, int] = {}

            pending: list[str] = []

            def settled() -> bool:
                nonlocal end
                _, end, _ = topic_offsets(kafka, topic)
                busy = instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS), limit=1)
                committed = topic_offsets(kafka, topic).committed
                missing = len(expected.keys() - ingested(pg, prefix).keys())
                in_ledger = sum(r.end - r.start for r, *_ in ledger_ranges(pg))
                # What is still not done, for the timeout's message.
                pending[:] = [
                    *([f"run {busy[0].run_id} {busy[0].status.value}"] if busy else []),
                    *([f"{missing} records missing"] if missing else []),
                    *([f"offsets committed {committed}, end {end}"] if committed != end else []),
                    *(
                        [f"ledger covers {in_ledger} of {sum(end.values())}"]
                        if in_ledger < sum(end.values())
                        else []
                    ),
                ]
                return not pending

            try:
                wait_for(f"all {len(expected)} records ingested ({caught})", settled, 180, every=1)
            except TimeoutError as err:
                raise TimeoutError(f"{err}; still pending: {pending}") from err
            recovery = time.monotonic() - first_kill
            runs = instance.get_runs(filters=dg.RunsFilter(tags={SENSOR_NAME_TAG: SENSOR}))
    finally:
        for proc in (daemon, code_server):
            if proc is not None:
                stop_daemon(proc)
        leftovers = processes_of(home)
        with contextlib.suppress(TimeoutError):  # runs still finishing are given a moment
            wait_for("no process of the instance left", lambda: not processes_of(home), 60, every=1)
        for pid in processes_of(home):  # ours, and still there: reported below, never left running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    assert not processes_of(home), leftovers
    # Every record once, with the value produced.
    rows = ingested(pg, prefix)
    assert len(rows) == len(expected)
    assert rows == expected
    # The ledger: each batch balances, the ranges tile every partition exactly.
    ledger = ledger_ranges(pg)
    assert all(n == a + q for _, n, a, q in ledger), ledger
    assert {r.topic for r, *_ in ledger} == {topic}
    assert_ranges_tile([r for r, *_ in ledger], end)
    assert sum(n for _, n, _, _ in ledger) == sum(end.values())
    # No range requested twice: each run key once, one original request per batch id.
    requested = [r for r in runs if PARENT_RUN_TAG not in r.tags]
    keys = [r.tags.get(RUN_KEY_TAG) for r in requested]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if k and keys.count(k) > 1)
    originals = [r.tags[BATCH_TAG] for r in requested if r.tags.get(RUN_KEY_TAG) == r.tags.get(BATCH_TAG)]
    assert len(originals) == len(set(originals))
    assert {r.batch_id for r, *_ in ledger} <= set(originals)
    assert topic_offsets(kafka, topic).committed == end

    retried = len(runs) - len(originals)
    fault_log(
        f"dagster daemon SIGKILLed mid sensor tick x{KILLS} ({'; '.join(caught)})",
        f"restart: interrupted ticks resumed or re-evaluated, {len(originals)} ranges, {retried} retried runs",
        recovery,
        [
            f"{len(expected)} records in ops.meter_readings once, values as produced",
            "ledger in = accepted + quarantined per batch",
            "ledger ranges tile [0, end) of every partition",
            "no run key requested twice",
            "group offsets committed to the end",
            "no process left",
        ],
    )
