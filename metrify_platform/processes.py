"""What the local services (`kafka_broker.py`, `redis_server.py`) share about their processes."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path


def log_tail(path: Path, chars: int = 2000) -> str:
    """The end of a service's log, for an error message ('' when there is no log yet)."""
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if it has not exited within `timeout` seconds."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
