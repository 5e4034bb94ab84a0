"""Per-stage wall time of `process_batch`, by wrapping the functions it calls with timers.

Wrapping instead of cProfile: the profiler's per-call overhead inflates the Python-heavy stages
(decode, rules) against the C-heavy ones (COPY, gzip), so the shares it reports would be skewed.
The wrappers are installed only inside `timed_stages()` and always restored.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from types import ModuleType
from typing import Any

from metrify_assets.ingestion import batch
from metrify_assets.quality import alerts, gx, rules
from metrify_assets.storage import writes

# (module, function name, stage): the module attribute `process_batch` looks the function up through.
STAGES: tuple[tuple[ModuleType, str, str], ...] = (
    (batch, "write_raw", "lake write (raw batch, gzip)"),
    (batch, "decode", "decode (JSON -> frame)"),
    (gx, "validate", "GX suites (raw + validated)"),
    (rules, "evaluate", "record rules"),
    (batch, "_review_rejected", "review lookup"),
    (batch, "batch_quality", "quality score"),
    (writes, "upsert_rows", "upsert (COPY + merge)"),
    (writes, "record_days", "quarantine + review queue + ledger"),
    (batch, "quarantine", "quarantine + review queue + ledger"),
    (writes, "enqueue_review", "quarantine + review queue + ledger"),
    (writes, "record_batch", "quarantine + review queue + ledger"),
    (alerts, "sync", "quarantine + review queue + ledger"),
)


@contextmanager
def _wrapped(module: ModuleType, name: str, stage: str, totals: dict[str, float]) -> Iterator[None]:
    original: Callable[..., Any] = getattr(module, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[stage] += time.perf_counter() - start

    setattr(module, name, timed)
    try:
        yield
    finally:
        setattr(module, name, original)


@contextmanager
def timed_stages() -> Iterator[dict[str, float]]:
    """Yield a dict that fills with seconds per stage while `process_batch` runs inside the block."""
    totals: dict[str, float] = defaultdict(float)
    with ExitStack() as stack:
        for module, name, stage in STAGES:
            stack.enter_context(_wrapped(module, name, stage, totals))
        yield totals
