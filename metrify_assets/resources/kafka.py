"""The Kafka resource: where the brokers are, how to authenticate, which topics and consumer group.

Clients are created per use (a sensor tick, a run) and closed after it: kafka-python clients hold
sockets and threads that must not outlive the tick or the run. A drain's processes, which run range
after range, keep the producer and the offsets consumer between their runs instead (`kafka_kept`).
Values are never deserialized here: the decoder in `ingestion.decode` turns bytes into records, so
undecodable messages reach quarantine.

kafka-python is imported when a client is made, not with the resource: `metrify status` and the
metrics exporter build it from the settings, and without brokers configured never make one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from metrify_assets.contracts import CONTRACTS
from metrify_assets.resources import kafka_kept

if TYPE_CHECKING:
    from kafka import KafkaConsumer, KafkaProducer

# Clients live for one tick or run, so kafka-python's default 100 ms backoff, paid on a fresh
# consumer's first poll and before the topic metadata that follows bootstrap, was most of their wait.
RETRY_BACKOFF_MS = 20


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def _prompt_metadata(cluster: Any) -> None:
    """A client's cluster metadata keeps kafka-python's 100 ms whatever the client is given: about
    0.1 s per client (a run has a consumer and, with rejects, a producer)."""
    cluster.config["retry_backoff_ms"] = RETRY_BACKOFF_MS


def _usable(producer: KafkaProducer) -> bool:
    """Whether no send was refused for good: then kafka-python's idempotent producer (its fatal
    state) refuses every later one."""
    manager = producer._transaction_manager
    return manager is None or not manager.has_error()


class KafkaResource(dg.ConfigurableResource):
    """Kafka brokers. `bootstrap_servers` empty means: Kafka is not configured (landing files only)."""

    bootstrap_servers: str = ""
    group_id: str = "metrify-ingest"
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    topics: dict[str, str] = Field(
        default_factory=dict, description="source -> topic (default: the contract's)"
    )
    timeout_ms: int = 10_000  # bootstrap and request timeout: keeps a sensor tick far below 60 s

    @property
    def configured(self) -> bool:
        return bool(self.bootstrap_servers)

    def topic(self, source: str) -> str:
        return self.topics.get(source) or CONTRACTS[source].topic

    def client_config(self) -> dict[str, Any]:
        """Connection and security settings shared by consumers, producers and the admin client."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.timeout_ms,
            "bootstrap_timeout_ms": self.timeout_ms,
            "retry_backoff_ms": RETRY_BACKOFF_MS,
        }
        if self.sasl_mechanism:
            config.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.ssl_cafile:
            config["ssl_cafile"] = self.ssl_cafile
        return config

    def _kept_key(self, kind: str) -> str:
        """Which kept clients a use may take: of its kind, with the same settings and group."""
        settings = {**self.client_config(), "group_id": self.group_id}
        return f"{kind}:{json.dumps(settings, sort_keys=True, default=str)}"

    @contextmanager
    def consumer(self) -> Iterator[KafkaConsumer]:
        """A consumer in the ingest group that never auto-commits: offsets are committed after the DB.

        It reads committed records only: a transactional producer's aborted records stay in the log,
        and an open transaction's may yet abort. Its end offsets are then the last stable offset, so
        a range never reaches into an open transaction (the run would wait on it). Made for this use
        and closed after it, even where clients are kept: a consumer that fetched records holds
        kafka-python's fetch state (a parsed batch's bounds, a prefetch in flight) that no public
        call clears, and it skipped the next range of a partition (tests/ingestion/kafka)."""
        consumer = self._new_consumer()
        try:
            yield consumer
        finally:
            consumer.close(autocommit=False)

    @contextmanager
    def offsets_consumer(self) -> Iterator[KafkaConsumer]:
        """A consumer for offsets only (partitions, beginning, end and committed offsets, commits), never
        for records: where the process keeps clients (`kafka_kept`), one is kept from use to use.
        A use that assigned it partitions, or subscribed it, gets it closed, not kept."""
        with kafka_kept.use(
            self._kept_key("offsets_consumer"),
            self._new_consumer,
            lambda consumer: consumer.close(autocommit=False),
            lambda consumer: not consumer.assignment() and not consumer.subscription(),
        ) as consumer:
            yield consumer

    def _new_consumer(self) -> KafkaConsumer:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            **self.client_config(),
            group_id=self.group_id,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=5000,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        _prompt_metadata(consumer._cluster)
        return consumer

    @contextmanager
    def producer(self) -> Iterator[KafkaProducer]:
        """Idempotent, batched, compressed: retries never duplicate and per-key order holds. Flushed
        at the end of the use; `send`'s futures say whether each message was stored. Kept from use to
        use where the process keeps clients (`kafka_kept`), unless a send failed for good."""
        with kafka_kept.use(
            self._kept_key("producer"), self._new_producer, lambda producer: producer.close(), _usable
        ) as producer:
            yield producer
            producer.flush()

    def _new_producer(self) -> KafkaProducer:
        from kafka import KafkaProducer

        producer = KafkaProducer(
            **self.client_config(),
            enable_idempotence=True,
            acks="all",
            linger_ms=20,
            batch_size=256 * 1024,
            compression_type="gzip",
        )
        _prompt_metadata(producer._metadata)
        return producer

    def ensure_topics(self, partitions: int = 3) -> None:
        """Create each source topic and its dead-letter topic when missing (existing ones are kept)."""
        from kafka import KafkaAdminClient
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(**self.client_config())
        try:
            existing = set(admin.list_topics())
            for source in CONTRACTS:
                for name in (self.topic(source), dlq_topic(self.topic(source))):
                    if name in existing:
                        continue
                    try:
                        admin.create_topics(
                            {name: {"num_partitions": partitions, "replication_factor": -1}},
                            wait_for_metadata=True,
                        )
                    except TopicAlreadyExistsError:
                        continue  # created concurrently by another process: what we wanted
        finally:
            admin.close()
