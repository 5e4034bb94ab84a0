"""The warm run worker: imports the code location once, then forks one child per run.

A run process started by Dagster's default launcher spends most of its life importing (Dagster, GX,
dbt, the Snowflake client: about 25 s on 2 cores) before it reads its first Kafka message. This
worker pays that once; each run is an `os.fork()` of it that executes `dagster api execute_run`
with the same arguments the default launcher would pass, so the run is indistinguishable in the
event log.

Protocol, one JSON object per line: stdin carries `{"args": <serialized ExecuteRunArgs>}`, stdout
answers `{"pid": <child pid>}` or `{"error": "..."}`. The first line on stdout, `{"ready": true}`,
says the preload finished. Everything else, the children included, writes to stderr.

Start: `python -m metrify_platform.launcher.worker MODULE [MODULE ...]`.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import sys
import traceback
from typing import IO

from dagster._cli.api import execute_run_command  # what `dagster api execute_run` runs

from metrify_platform import alembic_scripts


def _reap(_signum: int, _frame: object) -> None:
    """Collect every finished child so none lingers as a zombie."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _run_child(args_json: str) -> int:
    """In the forked child: detach, then run exactly what `dagster api execute_run ARGS` runs."""
    os.setsid()  # its own group: terminating the run does not touch the worker, and vice versa
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # subprocesses of the run (dbt) must be waitable
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # nothing the run prints may reach the protocol stream
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    try:
        execute_run_command.main(args=[args_json], standalone_mode=False)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child must report and exit, never return to the loop
        traceback.print_exc()
        return 1
    return 0


def preload(modules: list[str]) -> None:
    """Import each module and build its lazy `defs` once: forks inherit the imports and whatever the
    build cached (the dbt manifest), so a run only pays for executing."""
    for name in modules:
        module = importlib.import_module(name)
        defs = getattr(module, "defs", None)
        if callable(defs):
            defs()


def serve(modules: list[str], requests: IO[str], replies: IO[str]) -> None:
    preload(modules)
    alembic_scripts.warm()  # each run opens its instance: its schema checks read no scripts
    # What the preload built lives as long as the worker: kept out of the garbage collector's walks
    # in every forked run (a run's collections walked those ~600,000 objects each time), and out of
    # copy-on-write, since a walk writes to each object it visits.
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGCHLD, _reap)
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in requests:
        try:
            args_json = json.loads(line)["args"]
        except (ValueError, KeyError, TypeError) as err:
            replies.write(json.dumps({"error": f"bad request: {err}"}) + "\n")
            replies.flush()
            continue
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                replies.close()  # the launcher must see EOF when the worker dies, whatever runs live on
                code = _run_child(args_json)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m metrify_platform.launcher.worker MODULE [MODULE ...]")
    # The protocol gets its own descriptor; whatever else writes to stdout (a library at import, a
    # run) goes to stderr and cannot corrupt it.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.argv[1:], sys.stdin, replies)


if __name__ == "__main__":
    main()
