"""The API's Kafka producer: one long-lived idempotent producer per process (the resource's settings),
a sender that waits for the broker's acknowledgement so a 202 means the message is durable, and a
readiness probe."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from kafka.errors import KafkaError, MessageSizeTooLargeError

from metrify_assets.resources.kafka import KafkaResource

SEND_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0


class SendError(RuntimeError):
    """Kafka did not acknowledge the message: nothing was accepted."""


class MessageTooLargeError(SendError):
    """The message is over the producer's (or broker's) size limit: retrying cannot help."""


class KafkaSender:
    def __init__(self, kafka: KafkaResource, producer: object) -> None:
        self._kafka = kafka
        self._producer = producer

    def __call__(self, source: str, key: bytes | None, value: bytes) -> tuple[str, int, int]:
        try:
            future = self._producer.send(self._kafka.topic(source), key=key, value=value)  # type: ignore[attr-defined]
            meta = future.get(timeout=SEND_TIMEOUT_S)
        except MessageSizeTooLargeError as err:
            raise MessageTooLargeError(
                f"the message ({len(value):,} bytes) is over Kafka's size limit"
            ) from err
        except KafkaError as err:
            raise SendError(f"Kafka did not acknowledge the message: {type(err).__name__}: {err}") from err
        return meta.topic, meta.partition, meta.offset

    def probe(self) -> tuple[bool, str]:
        """Whether a bootstrap server accepts a connection now (the producer's own connections come
        and go, so its state says little about the next send)."""
        failures = []
        for server in self._kafka.bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S):
                    return True, f"{server.strip()} reachable"
            except (OSError, ValueError) as err:
                failures.append(f"{server.strip()}: {err}")
        return False, "; ".join(failures) or "no bootstrap servers"


@contextmanager
def kafka_sender(kafka: KafkaResource) -> Iterator[KafkaSender]:
    with kafka.producer() as producer:
        yield KafkaSender(kafka, producer)
