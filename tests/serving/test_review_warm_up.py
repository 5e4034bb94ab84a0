"""The API prepares GX for VEE's suite when it starts: a reviewer's first decision re-runs VEE, whose
series the GX suite guards, and paid the GX import (about 7 s on 2 cores) when nothing had validated
yet. Run in a fresh interpreter, where nothing imported GX before the app started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metrify_assets.resources import PostgresResource

pytestmark = [pytest.mark.postgres]

PROBE = """
import sys, time
from fastapi.testclient import TestClient
from metrify_assets.env import resolve_settings
from metrify_assets.meters.vee.store import SUITE
from metrify_assets.quality import gx
from metrify_assets.serving.app import create_app

env = {"METRIFY_HOME": sys.argv[1], "METRIFY_POSTGRES_URL": sys.argv[2],
       "METRIFY_API_JWT_SECRET": "test-secret-of-at-least-32-bytes-for-hs256"}
before = "great_expectations" in sys.modules
with TestClient(create_app(resolve_settings(env))) as client:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not any(SUITE in r.definitions for r in gx._runners.values()):
        time.sleep(0.2)  # no request: the startup alone prepares it
    print(before, any(SUITE in r.definitions for r in gx._runners.values()))
"""


def test_startup_prepares_the_vee_suite_without_a_request(
    pg_resource: PostgresResource, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path), pg_resource.get_url()],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
