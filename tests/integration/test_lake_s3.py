"""The lake on S3 over HTTP (moto's server mode), through the same interface as a local directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from metrify_assets.resources.lake import Lake

from ..conftest import service_unavailable

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real HTTP S3 endpoint on loopback (moto server), with test credentials."""
    try:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
        server.start()
    except Exception as err:  # noqa: BLE001 - any start failure is reported the same way
        service_unavailable("s3 (moto server)", err)
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as mp:
        endpoint = f"http://{host}:{port}"
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        boto3.client("s3").create_bucket(Bucket="metrify-lake")
        yield endpoint
    server.stop()


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_lake_round_trip(kind: str, tmp_path: Path, s3_endpoint: str) -> None:
    lake = Lake("s3://metrify-lake/prefix" if kind == "s3" else str(tmp_path / "lake"))
    assert not lake.exists("raw/a/dt=2026-03-29/b1.jsonl.gz")
    uri = lake.put("raw/a/dt=2026-03-29/b1.jsonl.gz", b"one")
    lake.put("raw/a/dt=2026-03-30/b2.jsonl.gz", b"two")
    lake.put("reports/x.html", b"<html/>")
    assert lake.exists("raw/a/dt=2026-03-29/b1.jsonl.gz")
    assert lake.get("raw/a/dt=2026-03-30/b2.jsonl.gz") == b"two"
    assert lake.list("raw/") == ["raw/a/dt=2026-03-29/b1.jsonl.gz", "raw/a/dt=2026-03-30/b2.jsonl.gz"]
    assert uri.endswith("raw/a/dt=2026-03-29/b1.jsonl.gz")
    assert uri.startswith("s3://metrify-lake/prefix/" if kind == "s3" else "/")
