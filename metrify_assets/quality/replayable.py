"""Which dead letters a replay can ever accept: not the duplicates (the stored version is kept), nor
what a reviewer rejected, nor a timestamp without an offset (a replay decodes the same payload: only
ingesting the file again with --timezone fixes it). Shared by the dead letters (ingestion/dead_letters.py), which the replay
takes, and the exporter's backlog gauge (observability/store_metrics.py), which counts only what a
replay could still clear; its SQL predicate is the one of migration 0030's partial index (a test
holds them equal)."""

from __future__ import annotations

from metrify_assets.quality.review import REJECT_REASON_PREFIX

# Reasons only ingesting the file again (with other options) fixes: a replay decodes the same payload.
REINGEST_ONLY = ("malformed:timestamp_without_offset",)
NOT_REPLAYABLE = ("duplicate_exact", "duplicate_conflict", REJECT_REASON_PREFIX, *REINGEST_ONLY)
# A reason code of `reasons` (comma-separated) that starts with one of NOT_REPLAYABLE.
NOT_REPLAYABLE_PATTERN = "(^|,)(" + "|".join(NOT_REPLAYABLE) + ")"
REPLAYABLE_UNRESOLVED = f"resolved_at IS NULL AND reasons !~ '{NOT_REPLAYABLE_PATTERN}'"


def replayable(reasons: str) -> bool:
    """Whether a replay could accept a record quarantined for `reasons` (once its rules allow it)."""
    return not any(code.startswith(NOT_REPLAYABLE) for code in reasons.split(","))
