"""A real Redis server (Debian's `redis-server` binary) for development and tests.

The cache's tests run against the server production runs, not a fake: `make test` installs the
binary with apt when it is missing (README). Each server gets a free loopback port and a temporary
directory, and keeps nothing on disk (no RDB snapshots, no AOF), so parallel sessions never collide
and a stopped server forgets everything, as a restarted production cache does.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from metrify_platform.processes import log_tail, terminate

INSTALL_HINT = (
    "install Redis 7+ so that `redis-server` is on PATH (Debian/Ubuntu: `apt-get install redis-server`; "
    "`make test` does it on a machine with apt)"
)


class RedisServerError(RuntimeError):
    """The server could not be found or started (the message says which and why)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """Context manager: start `redis-server` on loopback, wait until it answers PING, stop it.

    `url` is valid between `start()` and `stop()`. The port is kept across a stop, so a test can stop
    the server (an outage) and start it again where its clients expect it. Stopping sends SIGTERM
    (Redis shuts down cleanly and, with persistence off, writes nothing), waits, then kills.
    """

    def __init__(self, port: int | None = None, start_timeout: float = 15.0) -> None:
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.data_dir = Path(tempfile.mkdtemp(prefix="metrify-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def command(self, binary: str) -> list[str]:
        """Loopback only, protected mode on, no persistence, logs to the data directory."""
        return [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--dir", str(self.data_dir), "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--logfile", str(self.log_path), "--loglevel", "warning",
        ]  # fmt: skip

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError(f"redis-server is not on PATH: {INSTALL_HINT}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            self.command(binary), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            self._await_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _await_ready(self) -> None:
        """Ready = PING answers (the port is bound and the dataset loaded)."""
        client = redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=1.0, socket_connect_timeout=1.0,
            retry=Retry(NoBackoff(), 0),
        )  # fmt: skip
        deadline = time.monotonic() + self.start_timeout
        last: Exception | None = None
        try:
            while time.monotonic() < deadline:
                if self._proc is not None and self._proc.poll() is not None:
                    raise RedisServerError(
                        f"redis-server exited with {self._proc.returncode}: {self._tail()}"
                    )
                try:
                    if client.ping():
                        return
                except RedisError as err:
                    last = err
                time.sleep(0.05)
        finally:
            client.close()
        raise RedisServerError(
            f"redis-server not ready after {self.start_timeout:.0f}s ({last}): {self._tail()}"
        )

    def _tail(self) -> str:
        return log_tail(self.log_path)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process; the port stays this server's, for a later `start()`."""
        proc, self._proc = self._proc, None
        terminate(proc, timeout)

    def close(self) -> None:
        """Stop and remove the temporary directory."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
