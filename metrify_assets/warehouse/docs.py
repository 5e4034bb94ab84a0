"""`dbt docs generate` into the lake's reports, next to the data-quality report.

dbt's static site (one self-contained HTML file, catalog included) is written to
`reports/dbt_docs/index.html`, so analysts find the marts' column docs where they find the reports.
Run with `make dbt-docs` (or `python -m metrify_assets.warehouse.docs`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from metrify_assets.env import resolve_settings
from metrify_assets.resources.build import postgres_resource
from metrify_assets.resources.lake import Lake
from metrify_assets.warehouse.connection import dbt_env, environment
from metrify_assets.warehouse.project import dbt_cli_resource

DOCS_KEY = "reports/dbt_docs/index.html"


def generate_docs(postgres_url: str, lake: Lake) -> str:
    """Generate the static docs site against the warehouse at `postgres_url`; returns its lake URI."""
    with tempfile.TemporaryDirectory() as target, environment(dbt_env(postgres_url)):
        dbt_cli_resource().cli(["docs", "generate", "--static"], target_path=Path(target)).wait()
        html = (Path(target) / "static_index.html").read_bytes()
    return lake.put(DOCS_KEY, html, content_type="text/html")


def main() -> None:
    settings = resolve_settings()
    print(generate_docs(postgres_resource(settings).get_url(), Lake(settings.lake_url)))


if __name__ == "__main__":
    main()
