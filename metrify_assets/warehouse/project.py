"""Where the dbt project lives, which target it runs against, and how its manifest is made.

The target comes from `metrify_assets.env` and is read when the project is first asked for, never at
import, so tests and the CLI can set `METRIFY_DBT_TARGET` first.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from functools import cache, cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliResource, DbtProject
from packaging import version

from metrify_assets.env import resolve_settings
from metrify_assets.warehouse.paths import DBT_PROJECT_DIR


@cache
def dbt_project() -> DbtProject:
    """The dbt project, its profiles.yml beside it, on the configured target."""
    return DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=DBT_PROJECT_DIR,
        target=resolve_settings().dbt_target,
    )


# The dbt of this environment (the locked venv): its version is the installed dbt-core package's.
OWN_DBT = Path(sys.executable).parent / "dbt"


def dbt_executable() -> str:
    """The dbt beside this interpreter, else the one on PATH.

    Dagster may run without the venv's bin/ on PATH, and dagster-dbt looks up plain `dbt`.
    """
    return str(OWN_DBT) if OWN_DBT.exists() else shutil.which("dbt") or "dbt"


class WarehouseDbtResource(DbtCliResource):
    """dagster-dbt's dbt resource without two costs that bought Metrify nothing, paid by every run
    that invokes dbt (measured in `metrify run`: 26 of its 155 s):

    - dagster-dbt learns dbt's version by running `dbt --version`, which imports dbt and asks PyPI for
      the latest releases (8-9 s here, longer where PyPI cannot be reached). When the executable is
      this environment's own dbt, its version is the installed dbt-core package's.
    - It opens a dbt adapter in the run's process (about 2.5 s) for `fetch_row_counts` and
      `fetch_column_metadata`, which Metrify does not call (without an adapter they would add
      nothing).

    Both override private members; `tests/warehouse/test_project.py` fails if dagster-dbt renames them.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) == OWN_DBT:
            return version.parse(metadata.version("dbt-core"))
        return DbtCliResource._cli_version.func(self)  # type: ignore[attr-defined]

    def _initialize_dbt_core_adapter(self, args: Any) -> Any:
        return None


def dbt_cli_resource() -> WarehouseDbtResource:
    """The dbt resource for the project on its configured target."""
    project = dbt_project()
    return WarehouseDbtResource(
        project_dir=str(project.project_dir),
        profiles_dir=str(project.profiles_dir),
        target=project.target,
        dbt_executable=dbt_executable(),
    )


# dbt's partial-parse state, which speeds the next parse; a parse leaves it in target/ beside the manifest.
PARTIAL_PARSE = "partial_parse.msgpack"


def parse() -> Path:
    """Run `dbt parse` and return the path of target/manifest.json.

    dbt writes the manifest in place, and other processes read it meanwhile: a code server that
    `dagster dev` (`metrify ui`) starts re-parses on every load while runs and CLI commands load the
    code location. So dbt parses into a scratch folder inside target/ and the manifest is moved into
    place in one rename: a reader gets the old file or the new one, never half of one (a test worker
    read 1.5 MB of a manifest being written and failed on it)."""
    project = dbt_project()
    target = project.manifest_path.parent
    target.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".parse-", dir=target))
    try:
        if (target / PARTIAL_PARSE).exists():
            shutil.copy2(target / PARTIAL_PARSE, scratch / PARTIAL_PARSE)
        dbt_cli_resource().cli(["parse", "--quiet"], target_path=scratch).wait()
        for name in (PARTIAL_PARSE, project.manifest_path.name):  # the manifest last: its state is there
            (scratch / name).replace(target / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return project.manifest_path


def prepare_if_dev() -> None:
    """Re-parse the project under `dagster dev`, so model edits show up on reload."""
    if dbt_project().preparer.using_dagster_dev():
        parse()


def manifest_is_stale(project: DbtProject) -> bool:
    """Whether manifest.json is missing or older than any file of the project it was parsed from."""
    manifest = project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [project.project_dir / "dbt_project.yml"]
    for folder in ("models", "macros", "tests", "seeds", "snapshots"):
        sources.extend(p for p in (project.project_dir / folder).rglob("*") if p.is_file())
    return any(p.stat().st_mtime > built for p in sources)


def ensure_manifest() -> Path:
    """Return the path of a current manifest.json, running `dbt parse` when it is missing or stale.

    A fresh checkout has no manifest (target/ is not in git), `@dbt_assets` needs one to load, and
    a manifest older than the models would make runs fail on nodes it does not know.
    """
    prepare_if_dev()
    project = dbt_project()
    return parse() if manifest_is_stale(project) else project.manifest_path
