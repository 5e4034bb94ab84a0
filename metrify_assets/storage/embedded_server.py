"""The embedded PostgreSQL (pgserver) in a home's data directory: started on first use, shared by every
process of that home, stopped by `metrify db stop`. Without Dagster, so that the CLI's quick commands
stay quick."""

from __future__ import annotations

import signal
import threading
import time
import warnings
from functools import cache
from pathlib import Path

import psutil  # pgserver's own dependency: finds and waits for its postmaster
from platformdirs import RuntimeDirWarning  # pgserver's own dependency

# After a fast shutdown that did not finish in time: immediate shutdown, then SIGKILL, each given this long.
ESCALATION_WAIT_S = 10.0


_EMBEDDED_START = threading.Lock()  # pgserver's own lock is per process, its pid list unlocked


@cache
def embedded_postgres_url(data_dir: str) -> str:
    """Start (or attach to) the embedded PostgreSQL in `data_dir` and return its URL.

    pgserver shares one server between processes that use the same directory, so the CLI,
    `dagster dev` and tests attach to the same database. It is left running when they exit
    (`cleanup_mode=None`): `stop_embedded` (`metrify db stop`) stops it. Threads that ask at once
    (the archive's) attach one after another.
    """
    with _EMBEDDED_START:
        return _attach_embedded(data_dir)


def postgres_url(url: str | None, data_dir: str | Path) -> str:
    """`url` when one is configured, else the URL of the embedded server in `data_dir` (started if
    needed): the one rule for which database the resource and the CLI's quick commands open."""
    return url or embedded_postgres_url(str(Path(data_dir).resolve()))


def _attach_embedded(data_dir: str) -> str:
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime directory at import; without XDG_RUNTIME_DIR (a
        # container, a cron job, ssh without a login session) platformdirs warns and uses
        # /tmp/runtime-<uid>, which serves its lock file as well. The warning told users nothing.
        warnings.simplefilter("ignore", RuntimeDirWarning)
        import pgserver  # imported lazily: only embedded mode needs it

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    if embedded_pid(server.pgdata) != server.get_pid():
        # Stopped since this process attached: pgserver hands back its old handle, a new one restarts it.
        server = pgserver.PostgresServer(server.pgdata, cleanup_mode=None)
    return str(server.get_uri())


def _postmaster(data_dir: Path) -> psutil.Process | None:
    """The postmaster serving `data_dir`, by its `postmaster.pid`; None when there is no such file, or a
    stale one (the server died without removing it, or its pid now belongs to another process)."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):  # no server, or a file without a pid
        return None
    try:
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
    except psutil.NoSuchProcess:  # includes a zombie: that postmaster has exited
        return None
    if "-D" not in cmdline[:-1]:
        return None
    served = Path(cmdline[cmdline.index("-D") + 1])
    return proc if served.resolve() == data_dir.resolve() else None


def embedded_pid(data_dir: str | Path) -> int | None:
    """The pid of the embedded server running in `data_dir`, or None if none runs there."""
    proc = _postmaster(Path(data_dir))
    return None if proc is None else proc.pid


def _exited(proc: psutil.Process, timeout: float) -> bool:
    """Wait up to `timeout` s for `proc` to exit. Polls, as the postmaster is not our child (pg_ctl
    daemonises it); a zombie (exited, not yet reaped by init) counts as exited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def stop_embedded(data_dir: str | Path, timeout: float = 30.0) -> bool:
    """Stop the embedded server of `data_dir` if one runs there, and wait until its postmaster has
    exited; True if one was running.

    pgserver leaves the server running by design, so whoever is done with a home stops it here
    (tests, benchmarks, `metrify db stop`). Fast shutdown first (SIGINT: sessions are disconnected,
    open transactions rolled back), given `timeout` s; then immediate shutdown (SIGQUIT), then SIGKILL.
    Signalling works as root too, where pgserver runs postgres as the system user `pgserver`.
    """
    data_dir = Path(data_dir)
    embedded_postgres_url.cache_clear()  # this process must not hand out the URL of a stopped server
    proc = _postmaster(data_dir)
    if proc is None:
        return False
    for sig, wait in (
        (signal.SIGINT, timeout),
        (signal.SIGQUIT, ESCALATION_WAIT_S),
        (signal.SIGKILL, ESCALATION_WAIT_S),
    ):
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:  # exited between two checks
            break
        if _exited(proc, wait):
            break
    else:
        raise RuntimeError(
            f"the embedded PostgreSQL in {data_dir} (pid {proc.pid}) did not exit, even on SIGKILL"
        )
    if sig == signal.SIGKILL:  # its lock files are stale to a new postmaster only once init reaped it
        deadline = time.monotonic() + ESCALATION_WAIT_S
        while psutil.pid_exists(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    pid_file = data_dir / "postmaster.pid"
    try:  # left behind by SIGKILL; a server started since has its own pid in there
        stale = pid_file.read_text().split()[:1] == [str(proc.pid)]
    except FileNotFoundError:  # removed by the server's own shutdown
        stale = False
    if stale:
        pid_file.unlink(missing_ok=True)
    return True
