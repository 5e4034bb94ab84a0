"""dbt's per-invocation target directories: the newest are kept, the rest removed; the parse
state handed from one invocation to the next; and the selection argument every invocation passes.

Every dbt command Metrify runs gets its own directory under the home's runs directory
(`Settings.dbt_runs_dir`, `$METRIFY_HOME/dbt/target`; named as dagster-dbt names its own:
`<op>-<run id>-<id>`, or `<id>` without a run), holding that command's manifest, artifacts and
`dbt.log`: about 8 MB each. They were in the installed project's `target/`, where every home's runs
met and each home's pruning removed the others'. Nothing removed them at first, so an hourly refresh
added some 190 MB a day for good (289 of them held 2.2 GB on a development machine). Each dbt step
removes all but the newest `KEEP_INVOCATIONS` once its own command is done: enough to read the logs of
the last day's runs.

Each such directory started from the parse state `make dbt-parse` left, parsed for no connection and
no vars, so every command parsed the project in full (6 s of a 6 s `dbt source freshness`). Metrify's
commands start from the state the last command with the same vars left (`parse_state-<vars>.msgpack`
beside the invocations, the newest `KEEP_STATES` kept): the source freshness check (no vars) and
every build (the project's vars; a run's days are not vars but environment variables the parse never
reads, warehouse/assets.py), whichever days it builds. dbt itself decides whether a state holds
(connection, files, version, vars).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

KEEP_INVOCATIONS = 30
KEEP_STATES = 8  # parse states of distinct vars (about 1.4 MB each)
PARSE_STATE = "partial_parse.msgpack"  # dbt's parse state, in an invocation's target directory
# `<op>-<7 hex of the run id>-<7 hex>` or `<7 hex>`: never `target/` itself nor a folder of ours.
INVOCATION_DIR = re.compile(r"(?:\w+-[0-9a-f]{7}-)?[0-9a-f]{7}")


def select_args(select: Iterable[str]) -> list[str]:
    """`--select` with one space-separated value: dagster-dbt takes the single value after the flag
    (and hands any others to dbt as stray arguments, which it refuses); dbt reads spaces as a union."""
    return ["--select", " ".join(select)]


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


def state_path(target_dir: Path, dbt_vars: Mapping[str, object]) -> Path:
    """Where the last parse state of a command with these vars is kept."""
    key = hashlib.sha256(repr(sorted(dbt_vars.items())).encode()).hexdigest()[:12]
    return target_dir / f"parse_state-{key}.msgpack"


def invocation_dir(target_dir: Path, op: str, run_id: str, dbt_vars: Mapping[str, object]) -> Path:
    """A new invocation directory for a dbt command of `op` in run `run_id`, named as dagster-dbt
    names its own (`prune_invocations` removes it in its turn), holding the parse state the last
    command with the same vars left, when there is one."""
    path = target_dir / f"{op}-{run_id[:7]}-{uuid.uuid4().hex[:7]}"
    path.mkdir(parents=True)
    if (last := state_path(target_dir, dbt_vars)).is_file():
        shutil.copyfile(last, path / PARSE_STATE)
    return path


def command_dir(target_dir: Path) -> Path:
    """A new directory for a dbt command outside a run (`metrify warehouse rebuild`), named as
    dagster-dbt names one (`prune_invocations` removes it in its turn)."""
    path = target_dir / uuid.uuid4().hex[:7]
    path.mkdir(parents=True)
    return path


def keep_parse_state(invocation: Path, target_dir: Path, dbt_vars: Mapping[str, object]) -> None:
    """The invocation's parse state as the next command's starting point: written under a name of its
    own, then renamed, so a command starting meanwhile reads the old state or the new, never half.
    The newest `KEEP_STATES` states are kept."""
    state = invocation / PARSE_STATE
    if not state.is_file():  # dbt did not get as far as parsing
        return
    partial_copy = target_dir / f".parse_state.{uuid.uuid4().hex[:7]}"
    shutil.copyfile(state, partial_copy)
    partial_copy.replace(state_path(target_dir, dbt_vars))
    states = sorted(target_dir.glob("parse_state-*.msgpack"), key=_mtime, reverse=True)
    for old in states[KEEP_STATES:]:
        old.unlink(missing_ok=True)  # another command may have removed it meanwhile


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed by another command meanwhile: the oldest
        return 0.0
