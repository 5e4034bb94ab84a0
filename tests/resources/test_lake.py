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


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_holding_names_the_keys_whose_bytes_the_lake_has(kind: str, tmp_path: Path, s3_endpoint: str) -> None:
    lake = Lake("s3://metrify-lake/holding" if kind == "s3" else str(tmp_path / "lake"))
    lake.put("docs/a.html", b"page a")
    lake.put("docs/b.html", b"page b")
    lake.put("docs/old.css", b"css")
    lake.set_storage_class("docs/old.css", "GLACIER")
    lake.put("other/c.html", b"page c")  # the same bytes under another key
    objects = {
        "docs/a.html": b"page a",  # as the lake holds it
        "docs/b.html": b"page B",  # changed, same size
        "docs/c.html": b"page c",  # new
        "docs/old.css": b"css",  # the same bytes, but archived: a reader could not read them
    }
    assert lake.holding(objects) == {"docs/a.html"}
    assert lake.holding({}) == set()
    lake.put("docs/b.html", b"page B")
    assert lake.holding(objects) == {"docs/a.html", "docs/b.html"}
