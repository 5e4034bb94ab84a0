"""The API's Kafka producer: one long-lived idempotent producer per process (the resource's settings),
a sender that waits for the broker's acknowledgement of every message of a request so a 202 means
they are all durable, and a readiness probe."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

from kafka.errors import KafkaError, MessageSizeTooLargeError

from metrify_assets.resources.kafka import KafkaResource

SEND_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0


class Delivery(NamedTuple):
    """Where the broker stored one message."""

    topic: str
    partition: int
    offset: int


class SendError(RuntimeError):
    """Kafka did not acknowledge every message of a request: the request is not accepted (no batch is
    recorded), and the client sends it again."""


class MessageTooLargeError(SendError):
    """The message is over the producer's (or broker's) size limit: retrying cannot help."""


class KafkaSender:
    def __init__(self, kafka: KafkaResource, producer: object) -> None:
        self._kafka = kafka
        self._producer = producer

    def __call__(self, source: str, messages: Sequence[tuple[bytes | None, bytes]]) -> list[Delivery]:
        """Send every message, then wait for each acknowledgement (one producer batch, one round trip,
        not one per message); raises when any is not acknowledged. Those that were stay in the topic:
        the client retries the whole request, and a re-sent record, at a newer offset of its owner's
        partition, replaces its equal earlier copy."""
        topic = self._kafka.topic(source)
        limit = self._producer.config["max_request_size"]  # type: ignore[attr-defined]
        largest = max(len(value) for _, value in messages)
        if largest > limit:  # checked before any is sent: a request too large writes nothing
            raise MessageTooLargeError(
                f"a message ({largest:,} bytes) is over Kafka's size limit ({limit:,})"
            )
        try:
            futures = [self._producer.send(topic, key=key, value=value) for key, value in messages]  # type: ignore[attr-defined]
            metas = [future.get(timeout=SEND_TIMEOUT_S) for future in futures]
        except MessageSizeTooLargeError as err:  # the broker's limit, or the record's overhead
            raise MessageTooLargeError(f"a message ({largest:,} bytes) is over Kafka's size limit") from err
        except KafkaError as err:
            raise SendError(f"Kafka did not acknowledge the message: {type(err).__name__}: {err}") from err
        return [Delivery(meta.topic, meta.partition, meta.offset) for meta in metas]

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
