"""A real single-node Apache Kafka (KRaft, broker + controller in one JVM) for development and tests.

The server jars come from Maven Central through `deploy/kafka/pom.xml` into a project-local cache
(`.cache/kafka/<version>/libs`), fetched once and reused: tests and `metrify kafka broker` run the
same Kafka the production clusters run, not a fake. Each broker gets a fresh data directory, a
generated cluster id and free loopback ports, so parallel sessions never collide.
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from metrify_platform.processes import log_tail, terminate

KAFKA_VERSION = "4.1.1"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
POM = PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"


class BrokerError(RuntimeError):
    """The broker could not be fetched, formatted or started (the message says which and why)."""


def libs_dir(version: str = KAFKA_VERSION, cache: Path | None = None) -> Path:
    return (cache or PROJECT_ROOT / ".cache" / "kafka") / version / "libs"


def ensure_jars(version: str = KAFKA_VERSION, cache: Path | None = None) -> Path:
    """The directory of Kafka's server jars, fetched with Maven unless already cached."""
    libs = libs_dir(version, cache)
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is not on PATH: it fetches the Kafka jars from Maven Central")
    cmd = [
        mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-Dkafka.version={version}", f"-DoutputDirectory={libs}",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BrokerError(f"fetching Kafka {version} jars failed: {(done.stdout + done.stderr)[-2000:]}")
    marker.touch()
    return libs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (as `kafka-storage random-uuid`)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    """One node that is both broker and controller, with a static one-voter quorum; RF 1 everywhere."""
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={data_dir / 'logs'}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=3",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "",
        ]
    )


class KafkaBroker:
    """Context manager: fetch jars, format storage, start the JVM, wait until it answers metadata.

    `bootstrap_servers` is valid inside the `with` block. Stopping sends SIGTERM (Kafka's controlled
    shutdown), waits, then kills. Without `data_dir` the data lives in a temporary directory removed
    on stop (tests); with one it is kept and reused (`metrify kafka broker`), because batch ids are
    offset ranges and a fresh cluster would reuse them for different records.
    """

    def __init__(
        self,
        version: str = KAFKA_VERSION,
        port: int | None = None,
        data_dir: Path | None = None,
        start_timeout: float = 90.0,
    ) -> None:
        self.version = version
        self.port = port or free_port()
        self.controller_port = free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="metrify-kafka-"))
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.out"

    def _java(self, libs: Path, main: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("Java (17+) is not on PATH: Kafka runs on the JVM")
        log4j = self.data_dir / "log4j2.properties"
        return [
            java, "-Xms256m", "-Xmx1g", f"-Dlog4j2.configurationFile={log4j}",
            "-cp", f"{libs}/*", main, *args,
        ]  # fmt: skip

    def start(self) -> KafkaBroker:
        libs = ensure_jars(self.version)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text(server_properties(self.data_dir, self.port, self.controller_port))
        (self.data_dir / "log4j2.properties").write_text(
            "rootLogger.level=WARN\nrootLogger.appenderRef.out.ref=OUT\n"
            "appender.out.type=Console\nappender.out.name=OUT\n"
            "appender.out.layout.type=PatternLayout\nappender.out.layout.pattern=[%d] %p %m (%c)%n\n"
        )
        if not (self.data_dir / "logs" / "meta.properties").exists():  # a kept data dir is reused
            self._format(libs, props)
        with self.log_path.open("wb") as out:
            self._proc = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(props)), stdout=out, stderr=subprocess.STDOUT
            )
        try:
            self._await_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _format(self, libs: Path, props: Path) -> None:
        fmt = subprocess.run(
            self._java(
                libs, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id()}", "-c", str(props)
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            raise BrokerError(f"kafka-storage format failed: {(fmt.stdout + fmt.stderr)[-2000:]}")

    def _await_ready(self) -> None:
        """Ready = the broker answers a metadata request (controller elected, broker registered)."""
        from kafka import KafkaAdminClient  # here: `metrify kafka --help` shows KAFKA_VERSION without it
        from kafka.errors import KafkaError

        deadline = time.monotonic() + self.start_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise BrokerError(f"Kafka exited with {self._proc.returncode}: {self._tail()}")
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=5000)
            except KafkaError as err:
                last = err
                time.sleep(0.5)
                continue
            try:
                if admin.describe_cluster().get("brokers"):
                    return
            except KafkaError as err:
                last = err
            finally:
                admin.close()
            time.sleep(0.5)
        raise BrokerError(f"Kafka not ready after {self.start_timeout:.0f}s ({last}): {self._tail()}")

    def _tail(self) -> str:
        return log_tail(self.log_path)

    def stop(self, timeout: float = 30.0) -> None:
        proc, self._proc = self._proc, None
        terminate(proc, timeout)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
