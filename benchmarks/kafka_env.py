"""A throwaway Kafka + PostgreSQL + lake environment for the Kafka cases (1 and 3).

Each case gets its own broker, embedded PostgreSQL and METRIFY_HOME/DAGSTER_HOME in a temporary
directory, so nothing measured depends on (or touches) a developer's `.metrify` state.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from metrify_assets.env import Settings, resolve_settings
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.build import kafka_resource, postgres_resource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.storage.embedded_server import stop_embedded
from metrify_assets.storage.migrate import migrate
from metrify_platform.kafka_broker import KafkaBroker


@dataclass(frozen=True)
class KafkaBench:
    home: Path
    settings: Settings
    kafka: KafkaResource
    postgres: PostgresResource


@contextmanager
def kafka_bench(prefix: str) -> Iterator[KafkaBench]:
    """Start a broker, point the environment at it and a fresh home, migrate `ops`, create the topics."""
    home = Path(tempfile.mkdtemp(prefix=f"metrify-bench-{prefix}-"))
    os.environ["METRIFY_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    with KafkaBroker() as broker:
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        try:
            settings = resolve_settings()
            kafka = kafka_resource(settings)
            kafka.ensure_topics(partitions=3)
            postgres = postgres_resource(settings)
            with postgres.connect() as conn:
                migrate(conn)
            yield KafkaBench(home, settings, kafka, postgres)
        finally:
            del os.environ["KAFKA_BOOTSTRAP_SERVERS"]
            stop_embedded(home / "pg")  # pgserver leaves it running on exit by design
            shutil.rmtree(home, ignore_errors=True)
