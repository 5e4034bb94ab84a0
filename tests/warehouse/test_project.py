"""The dbt resource: the two dagster-dbt costs it skips are still where it skips them, and what it
answers instead is what dbt would; a parse replaces the manifest whole."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

from dagster_dbt import DbtCliResource

from metrify_assets.warehouse.project import WarehouseDbtResource, dbt_cli_resource, dbt_project, parse


def test_the_version_is_the_one_dbt_reports() -> None:
    resource = dbt_cli_resource()
    assert isinstance(resource, WarehouseDbtResource)
    out = subprocess.run([resource.dbt_executable, "--version"], capture_output=True, text=True, check=True)
    installed = re.search(r"installed:\s+(\d+\.\d+\.\d+)", out.stdout)
    assert installed is not None, out.stdout
    assert str(resource._cli_version) == installed.group(1)


def test_another_dbt_is_asked_for_its_version(tmp_path: Path) -> None:
    other = tmp_path / "dbt"
    other.write_text("#!/bin/sh\necho 'Core:\n  - installed: 9.8.7'\n")
    other.chmod(0o755)
    (tmp_path / "dbt_project.yml").write_text("name: other\n")
    resource = WarehouseDbtResource(project_dir=str(tmp_path), dbt_executable=str(other))
    assert str(resource._cli_version) == "9.8.7"


def test_the_overridden_members_are_still_dagster_dbts() -> None:
    members = vars(DbtCliResource)
    assert isinstance(members["_cli_version"], cached_property)
    assert callable(members["_initialize_dbt_core_adapter"])
    source = inspect.getsource(DbtCliResource.cli)
    assert "self._cli_version" in source and "self._initialize_dbt_core_adapter(" in source


def test_a_parse_puts_the_manifest_in_place_in_one_rename() -> None:
    """Readers never see half a manifest while `dbt parse` runs (a code server under `metrify ui`
    re-parses on every load): the new file replaces the old one (a new inode), every read meanwhile
    is whole JSON, and no scratch folder is left."""
    manifest = dbt_project().manifest_path
    if not manifest.exists():
        parse()
    before = manifest.stat().st_ino
    reads, done = [0], threading.Event()

    def read_while_parsing() -> None:
        while not done.is_set():
            json.loads(manifest.read_bytes())  # a half-written file raises here
            reads[0] += 1

    reader = ThreadPoolExecutor(1).submit(read_while_parsing)
    try:
        assert parse() == manifest
    finally:
        done.set()
    reader.result()
    assert reads[0] > 0
    assert manifest.stat().st_ino != before
    assert json.loads(manifest.read_bytes())["metadata"]["dbt_version"]
    assert not list(manifest.parent.glob(".parse-*"))
