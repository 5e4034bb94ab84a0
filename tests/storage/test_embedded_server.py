"""The embedded PostgreSQL is stopped for real: `stop_embedded` and `metrify db stop` leave no process.

pgserver leaves its server running when a process exits (the CLI, `dagster dev` and tests share it),
so every owner of a throwaway home stops it; here against real servers in temporary directories.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.storage import embedded_server
from metrify_assets.storage.embedded_server import embedded_pid, embedded_postgres_url, stop_embedded

pytestmark = pytest.mark.postgres


def gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped by init has, too)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory of this test's own; its server, if a test left one running, stopped after."""
    path = tmp_path / "pg"
    yield path
    stop_embedded(path)


def start(data_dir: Path) -> int:
    """Start the server of `data_dir`, check it answers, and return its postmaster's pid."""
    with psycopg.connect(embedded_postgres_url(str(data_dir))) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    pid = embedded_pid(data_dir)
    assert pid is not None
    return pid


def test_stop_embedded_stops_the_server_and_its_process_exits(data_dir: Path) -> None:
    pid = start(data_dir)
    session = psycopg.connect(embedded_postgres_url(str(data_dir)))
    session.execute("SELECT 1")  # an open transaction in a session does not hold the fast shutdown up
    assert stop_embedded(data_dir) is True
    session.close()
    assert gone(pid)
    assert embedded_pid(data_dir) is None
    assert not (data_dir / "postmaster.pid").exists()


def test_a_stopped_server_starts_again_in_the_same_process(data_dir: Path) -> None:
    first = start(data_dir)
    assert stop_embedded(data_dir)
    second = start(data_dir)  # not the URL of the stopped server, cached by this process
    assert second != first
    assert stop_embedded(data_dir) and gone(second)


def test_a_server_that_ignores_shutdown_is_killed(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_server, "ESCALATION_WAIT_S", 2.0)
    pid = start(data_dir)
    psutil.Process(pid).suspend()  # SIGSTOP: SIGINT and SIGQUIT stay pending, only SIGKILL acts
    assert stop_embedded(data_dir, timeout=1.0)
    assert gone(pid)
    assert not (data_dir / "postmaster.pid").exists(), "the stale pid file of a killed server is removed"
    start(data_dir)  # its leftover lock files do not keep a new server from starting


def test_stopping_when_nothing_runs_is_a_no_op(data_dir: Path) -> None:
    assert stop_embedded(data_dir) is False  # no directory at all
    data_dir.mkdir()
    assert stop_embedded(data_dir) is False  # no pid file
    dead = psutil.Popen(["true"])
    dead.wait()
    (data_dir / "postmaster.pid").write_text(f"{dead.pid}\n{data_dir}\n")
    assert stop_embedded(data_dir) is False  # a stale pid file: that server died
    (data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{data_dir}\n")
    assert stop_embedded(data_dir) is False  # its pid reused by a process that is no postmaster


def test_metrify_db_stop_stops_the_home_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.delenv("METRIFY_POSTGRES_URL", raising=False)
    runner = CliRunner()
    url = runner.invoke(app, ["db", "url"], catch_exceptions=False)
    assert url.exit_code == 0, url.output
    assert url.stdout.strip().startswith("postgresql://"), "stdout is the URL alone, for psql"
    assert "stop it with `metrify db stop`" in url.stderr
    pid = embedded_pid(tmp_path / "pg")
    assert pid is not None

    stopped = runner.invoke(app, ["db", "stop"], catch_exceptions=False)
    assert stopped.exit_code == 0, stopped.output
    assert f"stopped the embedded PostgreSQL in {tmp_path / 'pg'}" in stopped.stdout
    assert gone(pid)

    again = runner.invoke(app, ["db", "stop"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert "nothing to stop" in again.stdout


def test_metrify_db_url_without_a_runtime_dir_says_nothing_of_it(tmp_path: Path) -> None:
    """Without XDG_RUNTIME_DIR (cron, containers) pgserver's import made platformdirs warn on every
    command that opened the database."""
    env = {k: v for k, v in os.environ.items() if k not in {"XDG_RUNTIME_DIR", "METRIFY_POSTGRES_URL"}}
    env["METRIFY_HOME"] = str(tmp_path)
    metrify = str(Path(sys.executable).parent / "metrify")
    try:
        url = subprocess.run([metrify, "db", "url"], env=env, capture_output=True, text=True, timeout=120)
        assert url.returncode == 0, url.stderr
        assert url.stdout.startswith("postgresql://")
        assert "Warning" not in url.stderr, url.stderr
    finally:
        stop_embedded(tmp_path / "pg")


def test_metrify_db_stop_with_an_external_server_stops_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", "postgresql://metrify@db.internal/metrify")
    result = CliRunner().invoke(app, ["db", "stop"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "nothing embedded to stop" in result.stdout


def test_db_stop_has_help() -> None:
    result = CliRunner().invoke(app, ["db", "stop", "--help"])
    assert result.exit_code == 0
    assert "embedded PostgreSQL" in result.stdout


def test_sigkill_is_the_last_resort_not_the_first(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[int] = []
    send = psutil.Process.send_signal
    monkeypatch.setattr(psutil.Process, "send_signal", lambda self, sig: (sent.append(sig), send(self, sig)))
    start(data_dir)
    assert stop_embedded(data_dir)
    assert sent == [signal.SIGINT], "a responsive server gets a fast shutdown only"
