"""The CPU accounting that bounds case 1's drain: a child's work is counted, and by its program."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.cpu import PROGRAMS, cpu_use, program

# Spins 0.6 s of CPU, says so, and waits: still alive when the block ends, it is read as itself
# (a child reaped inside the block counts in its parent, here pytest).
SPIN = (
    "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\n"
    "print('spun', flush=True)\ntime.sleep(60)"
)


def test_a_python_child_spinning_is_counted_as_python() -> None:
    with cpu_use() as use:
        child = subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline() == "spun\n"
    child.kill()
    child.wait()
    assert use.seconds >= 0.6
    assert 0.55 <= use.by_program["Python"] <= use.busy + 0.05
    assert set(use.by_program) == {*PROGRAMS.values(), "other"}
    # /proc/stat counts 10 ms clock ticks per core, so a short block can read a few ticks over its wall time
    cores = os.cpu_count() or 1
    assert use.busy <= use.seconds * cores + 0.05 * cores
    assert use.floor_seconds == use.busy / (os.cpu_count() or 1)


def test_programs_are_told_by_their_names_beginning() -> None:
    assert [program(n) for n in ("python3.11", "postgres", "java", "bash")] == [
        "Python",
        "PostgreSQL",
        "Kafka broker (JVM)",
        None,
    ]
