"""The lifecycle's own Failures are not retried: a policy naming unknown sources fails the same way on
each attempt (tests/lifecycle/test_assets.py checks the same for days that could not be copied)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from metrify_assets.lifecycle.assets import cold_tier
from metrify_assets.partitions import partition_range_tags
from metrify_assets.resources import LakeResource, PostgresResource
from tests.lifecycle.conftest import DAYS, FIRST_DAY

pytestmark = [pytest.mark.postgres]

LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)


def failed_once(result: dg.ExecuteInProcessResult) -> str:
    """The failed step's message, after checking that the step ran once (no retry)."""
    assert not result.success
    restarts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
    assert restarts == []
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_failure_data.error is not None
    return failure.step_failure_data.error.message


def test_a_policy_for_unknown_sources_fails_without_retries(
    pg_resource: PostgresResource, tmp_path: Path
) -> None:
    result = dg.materialize(
        [cold_tier],
        resources={"postgres": pg_resource, "lake": LakeResource(url=str(tmp_path / "lake"))},
        tags=partition_range_tags(FIRST_DAY, LAST_DAY),
        run_config={"ops": {"cold_tier": {"config": {"ages": {"solar_panels": {}}}}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert "unknown sources ['solar_panels']" in failed_once(result)
