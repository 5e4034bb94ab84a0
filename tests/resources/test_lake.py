"""The lake on S3 over HTTP (moto's server mode), through the same interface as a local directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from metrify_assets.resources.lake import Lake

pytestmark = pytest.mark.s3


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
