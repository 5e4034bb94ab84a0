"""CPU seconds the machine spent over a stretch of work, by program (Python, PostgreSQL, the Kafka
broker's JVM), read from /proc.

A throughput figure on 2 cores says little on its own: the benchmark runs the broker and PostgreSQL
on the same cores as Metrify, so a drain that keeps both cores busy is bound by the CPU all three
spend, and the fewest seconds it could take is that CPU over the cores. Linux only (elsewhere the
figures are empty).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
# How a program's name in /proc/<pid>/stat begins (`python3.11` is Python), and what the figures call it.
PROGRAMS = {"python": "Python", "postgres": "PostgreSQL", "java": "Kafka broker (JVM)"}


def program(name: str) -> str | None:
    return next((label for prefix, label in PROGRAMS.items() if name.startswith(prefix)), None)


@dataclass
class CpuUse:
    """Filled in when the `with cpu_use()` block ends."""

    seconds: float = 0.0  # wall
    busy: float = 0.0  # CPU seconds of every process on the machine
    by_program: dict[str, float] = field(default_factory=dict)  # PROGRAMS' names, then "other"

    @property
    def busy_share(self) -> float:
        """How much of the cores the work kept busy (1.0: all of them all the time)."""
        cores = os.cpu_count() or 1
        return self.busy / (self.seconds * cores) if self.seconds > 0 else 0.0

    @property
    def floor_seconds(self) -> float:
        """The fewest seconds the same CPU work could take on this machine's cores."""
        return self.busy / (os.cpu_count() or 1)


def _ticks_per_second() -> int:
    return os.sysconf("SC_CLK_TCK")


def _machine_busy() -> int:
    """Clock ticks the cores spent running something since boot: user, nice, system, irq and softirq
    (not idle or I/O wait; not steal, another guest's time; not guest, already counted in user)."""
    fields = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[i] for i in (0, 1, 2, 5, 6))


def _processes() -> dict[int, tuple[str, int, int]]:
    """pid -> (program, clock ticks of it and its reaped children, parent pid)."""
    out: dict[int, tuple[str, int, int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while the directory was listed
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2 :].split()
        # utime stime cutime cstime; ppid
        out[int(entry.name)] = (name, sum(int(v) for v in rest[11:15]), int(rest[1]))
    return out


@contextmanager
def cpu_use() -> Iterator[CpuUse]:
    """`with cpu_use() as use:` ... then `use.busy`, `use.by_program`. A process that started and was
    reaped inside the block counts in its parent (its children's time); one that was reaped inside the
    block but started before it adds its whole life to its parent, so its time before the block is taken
    off its parent's program (a drain's pool connections: PostgreSQL backends reaped by the postmaster;
    a test's dbt subprocess reaped by Python); one
    that ended unreaped is missed, so "other" takes the difference to the machine's total. Every
    process on the machine counts, so nothing else should run beside the work measured."""
    use = CpuUse()
    if not (PROC / "stat").exists():
        yield use
        return
    before, busy_before, start = _processes(), _machine_busy(), time.perf_counter()
    yield use
    use.seconds = time.perf_counter() - start
    after, busy_after = _processes(), _machine_busy()
    ticks = _ticks_per_second()
    by_program: Counter[str] = Counter()
    for pid, (name, spent, _) in after.items():
        label = program(name)
        if label is not None:
            was = before.get(pid)
            by_program[label] += spent - (was[1] if was and was[0] == name else 0)
    for pid, (_, spent, parent) in before.items():
        if pid in after:
            continue
        # Reaped: its parent's count took its whole life, so its time before the block comes off the
        # parent's program (a dbt process reaped by a Python one counts as Python's, not as dbt's).
        reaper = after.get(parent) or before.get(parent)
        label = program(reaper[0]) if reaper else None
        if label is not None:
            by_program[label] -= spent
    use.busy = (busy_after - busy_before) / ticks
    use.by_program = {label: by_program[label] / ticks for label in PROGRAMS.values()}
    use.by_program["other"] = max(0.0, use.busy - sum(use.by_program.values()))
