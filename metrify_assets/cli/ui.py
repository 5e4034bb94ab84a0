"""The Dagster UI and its daemon (`dagster dev`) on this home's instance.

`metrify ui` runs `dagster dev` with this home's `DAGSTER_HOME`, and stops it with all its processes
on SIGTERM as on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from metrify_assets.env import resolve_settings

log = logging.getLogger(__name__)

# The project's workspace (one code location, `metrify`): the name runs and sensor states are kept
# under, so the UI finds the CLI's runs and the sensors' cursors whatever started it.
WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"
# Seconds `dagster dev` and its processes (webserver, daemon, code server) have to exit after a stop
# signal before what is left of them is killed; a clean stop takes a few seconds.
STOP_GRACE = 30.0
# What stops `metrify ui`: a service manager's stop (SIGTERM), Ctrl-C (SIGINT), a closed terminal
# (SIGHUP, unless started under nohup).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Supervisor:
    """`dagster dev` in its own process group, stopped as a terminal's Ctrl-C stops it: SIGINT to the
    whole group (dagster dev, the webserver, the daemon, the code server), then SIGKILL to what is
    left after `grace` seconds or on a second stop signal.

    `dagster dev` makes SIGTERM do what SIGINT does, so one started with SIGINT ignored (a shell
    script's `metrify ui &`, some supervisors) ignored SIGTERM too and ran on with its processes
    until SIGKILL, which left them behind. Here the group starts with both signals at their defaults,
    and nothing of it outlives `metrify ui` but for a SIGKILL of `metrify ui` itself."""

    def __init__(self, grace: float = STOP_GRACE) -> None:
        self.grace = grace
        self.stop_signal: int | None = None
        self.stop_at: float | None = None
        self.group: int | None = None
        self.child_pid: int | None = None

    def running(self) -> bool:
        """Whether a process of dagster dev's group still runs. Its exited children are zombies until
        reaped: those orphaned when dagster dev exits go to PID 1 (or to this process, a subreaper on
        Linux, which reaps them here), and `killpg` counts a zombie as a member. A container's PID 1
        that is slow to reap (or never does) kept `metrify ui` waiting up to the 30 s grace after every
        process had exited: 15-35 s in the new-user trial, 24.6 s measured under load."""
        if self.group is None:
            return False
        import psutil

        found = False
        for proc in psutil.process_iter(["status"]):
            try:
                if os.getpgid(proc.pid) != self.group:
                    continue
            except (ProcessLookupError, PermissionError):
                continue
            if proc.info["status"] != psutil.STATUS_ZOMBIE:
                found = True
            elif proc.pid != self.child_pid:  # an orphan given to this process: reap it
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(proc.pid, os.WNOHANG)
        return found

    def signal_group(self, signum: int) -> bool:
        """Send `signum` to dagster dev's process group; False when none of it is left."""
        if self.group is None:
            return True
        try:
            os.killpg(self.group, signum)
        except ProcessLookupError:
            return False
        return True

    def on_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal, self.stop_at = signum, time.monotonic()
            self.signal_group(signal.SIGINT)
        else:  # asked twice: stop now
            self.signal_group(signal.SIGKILL)

    def run(self, argv: Sequence[str], env: Mapping[str, str]) -> int:
        """Run `argv` until it exits or a stop signal. The exit status: 0 for a stop that ended every
        process within the grace, 1 when some had to be killed; else dagster dev's own (128 + N when
        killed by signal N)."""
        for signum in STOP_SIGNALS:
            # Before the child starts: a caught signal is at its default in the child, an ignored one
            # (SIGINT under `&`) would stay ignored. SIGHUP stays ignored under nohup.
            if signum != signal.SIGHUP or signal.getsignal(signum) != signal.SIG_IGN:
                signal.signal(signum, self.on_stop)
        become_subreaper()
        child = subprocess.Popen(argv, env=env, start_new_session=True)
        self.group = self.child_pid = child.pid
        if self.stop_signal is not None:  # a signal before the group existed
            self.signal_group(signal.SIGINT)
        while child.poll() is None:
            if self.stop_at is not None and time.monotonic() > self.stop_at + self.grace:
                break
            time.sleep(0.1)
        if self.stop_signal is None and self.running():
            # dagster dev ended on its own (e.g. the port was taken): what it leaves is stopped too.
            self.stop_at = time.monotonic()
            self.signal_group(signal.SIGINT)
        deadline = (self.stop_at or time.monotonic()) + self.grace
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)  # the code server exits a moment after dagster dev
        killed = self.running() and self.signal_group(signal.SIGKILL)
        if killed:
            log.warning("dagster dev's processes had not exited %.0f s after the stop: killed", self.grace)
        status = child.wait()
        if self.stop_signal is not None or (killed and status == 0):
            return 1 if killed else 0
        return 128 - status if status < 0 else status


def become_subreaper() -> None:
    """On Linux, make this process the reaper of its orphaned descendants (prctl
    PR_SET_CHILD_SUBREAPER): dagster dev's children, orphaned when it exits first, come to
    `metrify ui`, which reaps them (`Supervisor.running`), instead of waiting as zombies for PID 1."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def register(app: typer.Typer) -> None:
    @app.command("ui")
    def ui(
        host: Annotated[str, typer.Option(help="Address the webserver listens on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port of the webserver.")] = 3000,
    ) -> None:
        """The Dagster UI on http://HOST:PORT, with its daemon (sensors, schedules, queued runs), on the
        instance the CLI writes to (HOME/dagster, or DAGSTER_HOME), until Ctrl-C or SIGTERM: either
        stops the webserver, the daemon and the code server (killing what is left after 30 s)."""
        from metrify_assets.orchestration.instance import prepare_local_home

        if not WORKSPACE.exists():
            typer.echo(
                f"error: no workspace file at {WORKSPACE} (metrify ui runs from a project checkout)", err=True
            )
            raise typer.Exit(code=2)
        home = prepare_local_home(resolve_settings())
        dagster = str(Path(sys.executable).parent / "dagster")
        argv = [dagster, "dev", "-w", str(WORKSPACE), "--host", host, "--port", str(port)]
        typer.echo(f"Dagster UI on http://{host}:{port}, instance {home}", err=True)
        raise typer.Exit(code=Supervisor().run(argv, {**os.environ, "DAGSTER_HOME": str(home)}))
