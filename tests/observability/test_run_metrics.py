"""`metrify_pipeline_runs_total`: a series at 0 for every status of every job of the definitions, from
the first scrape, so `increase()` sees a job's first failure even when its very first run fails."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from metrify_assets.observability.run_metrics import (
    DEFINED_JOBS,
    FINISHED,
    SCHEDULED_JOBS,
    read_runs,
    run_families,
)
from metrify_assets.observability.tally import WindowedTally
from metrify_assets.orchestration import status


class Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def runs_scrape(instance: dg.DagsterInstance, tally: WindowedTally) -> dict[tuple[str, str], float]:
    """One read of the run storage through the text exposition: (job, status) -> runs."""
    read_runs(instance, tally, timedelta(minutes=15))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families(run_families(tally)))
    text = generate_latest(registry).decode()
    return {
        (s.labels["job"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "metrify_pipeline_runs_total"
    }


@dg.op
def breaks() -> None:
    raise RuntimeError("expected")


def test_a_jobs_first_run_failing_is_an_increase_from_zero() -> None:
    """Before any run, every defined job has its series at 0; the first run of an ingest job fails:
    its failure series goes 0 -> 1, which `increase()` reads as 1 (a series born at 1 reads as 0)."""
    instance = dg.DagsterInstance.ephemeral()
    tally = WindowedTally()
    before = runs_scrape(instance, tally)
    assert before == {(job, state): 0.0 for job in DEFINED_JOBS for state in FINISHED.values()}

    job = "ingest_weather_observations_job"
    dg.GraphDefinition(job, node_defs=[breaks]).to_job().execute_in_process(
        instance=instance, raise_on_error=False
    )
    after = runs_scrape(instance, tally)
    assert after[(job, "failure")] == before[(job, "failure")] + 1 == 1
    assert after[(job, "success")] == 0
    # A job the definitions do not name (an older deployment's, a test's) is still counted once seen.
    dg.GraphDefinition("retired_job", node_defs=[breaks]).to_job().execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert runs_scrape(instance, tally)[("retired_job", "failure")] == 1


def test_the_defined_jobs_are_the_code_locations() -> None:
    """Named without importing the definitions (dbt's project, every asset): checked against them here,
    as are the downstream jobs `metrify status` shows."""
    from metrify_assets.definitions import defs

    assert sorted(DEFINED_JOBS) == sorted(job.name for job in defs().resolve_all_job_defs())
    assert set(status.JOBS) == set(SCHEDULED_JOBS)
