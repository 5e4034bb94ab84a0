"""dbt's per-invocation target directories: the newest are kept, the rest removed.

dagster-dbt gives every dbt command of a run its own directory under the project's `target/`
(`<op>-<run id>-<id>`, or `<id>` without a run), holding that command's manifest, artifacts and
`dbt.log`: about 8 MB each. Nothing removed them, so an hourly refresh added some 190 MB a day for
good (289 of them held 2.2 GB on a development machine). Each dbt step removes all but the newest
`KEEP_INVOCATIONS` once its own command is done: enough to read the logs of the last day's runs.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

KEEP_INVOCATIONS = 30
# `<op>-<7 hex of the run id>-<7 hex>` or `<7 hex>`: never `target/` itself nor a folder of ours.
INVOCATION_DIR = re.compile(r"(?:\w+-[0-9a-f]{7}-)?[0-9a-f]{7}")


def prune_invocations(target_dir: Path, keep: int = KEEP_INVOCATIONS) -> list[Path]:
    """Remove the invocation directories of `target_dir` but the `keep` most recently changed; the
    removed ones, oldest last. A directory another process removes meanwhile is no error."""
    found = []
    for path in target_dir.iterdir() if target_dir.is_dir() else ():
        if path.is_dir() and INVOCATION_DIR.fullmatch(path.name):
            try:
                found.append((path.stat().st_mtime, path))
            except FileNotFoundError:
                continue
    stale = [path for _, path in sorted(found, reverse=True)[keep:]]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)  # a concurrent prune may have removed some of it
    return stale
