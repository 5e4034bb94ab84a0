"""A failed dbt build's message, from dbt's JSON log events (as `dbt build` writes them): which models
and tests failed, with dbt's words on each, and never dbt's command line. Pure: the real builds are
test_assets.py's (a run's failure) and test_rebuild.py's (`metrify warehouse rebuild`)."""

from __future__ import annotations

from typing import Any

from metrify_assets.warehouse.results import BuildReport, rows_written, words


def event(name: str, level: str = "info", msg: str = "", **data: Any) -> dict[str, Any]:
    return {"info": {"name": name, "level": level, "msg": msg}, "data": data}


def node(name: str, resource_type: str, status: str = "") -> dict[str, str]:
    return {"node_name": name, "resource_type": resource_type, "node_status": status}


OUT_OF_SYNC = """  Compilation Error in model fct_consumption_daily (models/marts/fct_consumption_daily.sql)

                The source and target schemas on this incremental model are out of sync!
                   Source columns not in target: [billing_ready]

  > in macro default__process_schema_changes (macros/materializations/models/incremental/on_schema_change.sql)
  > called by model fct_consumption_daily (models/marts/fct_consumption_daily.sql)"""

# A build where a model failed (and its downstream nodes were skipped) and a test failed.
FAILED_BUILD = [
    event(
        "LogModelResult",
        msg="1 of 4 OK created sql view model marts.dim_meter",
        node_info=node("dim_meter", "model", "success"),
    ),
    event(
        "LogModelResult",
        "error",
        "2 of 4 ERROR creating sql incremental model marts.fct_consumption_daily [ERROR in 0.2s]",
        node_info=node("fct_consumption_daily", "model", "error"),
        execution_time=0.2,
    ),
    event(
        "SkippingDetails",
        msg="3 of 4 SKIP relation marts.fct_billing",
        node_info=node("fct_billing", "model"),
    ),
    event(
        "LogTestResult",
        "error",
        "4 of 4 FAIL 1 dim_meter_unique_meter_id [FAIL 1 in 0.1s]",
        node_info=node("dim_meter_unique_meter_id", "test", "fail"),
    ),
    event("EndOfRunSummary", msg="Completed with 2 errors, 0 partial successes, and 0 warnings:"),
    event(
        "RunResultFailure",
        "error",
        "Failure in model fct_consumption_daily (models/marts/fct_consumption_daily.sql)",
        node_info=node("fct_consumption_daily", "model"),
    ),
    event("RunResultError", "error", OUT_OF_SYNC, node_info=node("fct_consumption_daily", "model")),
    event(
        "RunResultFailure",
        "error",
        "Failure in test dim_meter_unique_meter_id (models/marts/schema.yml)",
        node_info=node("dim_meter_unique_meter_id", "test"),
    ),
    event(
        "RunResultError",
        "error",
        "  Got 1 result, configured to fail if != 0",
        node_info=node("dim_meter_unique_meter_id", "test"),
    ),
    event("StatsLine", msg="Done. PASS=1 WARN=0 ERROR=2 SKIP=1 NO-OP=0 TOTAL=4"),
]


def report_of(events: list[dict[str, Any]]) -> BuildReport:
    report = BuildReport()
    for e in events:
        report.observe(e)
    return report


def test_a_failed_build_names_each_failed_node_with_dbts_words_and_what_it_skipped() -> None:
    report = report_of(FAILED_BUILD)
    assert [(r.name, r.status) for r in report.failed] == [
        ("fct_consumption_daily", "error"),
        ("dim_meter_unique_meter_id", "fail"),
    ]
    assert report.failure("build", 1) == (
        "dbt build failed: model fct_consumption_daily (error): Compilation Error in model "
        "fct_consumption_daily (models/marts/fct_consumption_daily.sql) The source and target schemas on "
        "this incremental model are out of sync! Source columns not in target: [billing_ready]; "
        "test dim_meter_unique_meter_id (fail): Got 1 result, configured to fail if != 0; "
        "1 downstream model or test skipped"
    )
    # `metrify warehouse rebuild` prints every one of dbt's failure lines, on one line each.
    assert report.details == [
        "Failure in model fct_consumption_daily (models/marts/fct_consumption_daily.sql)",
        words(OUT_OF_SYNC),
        "Failure in test dim_meter_unique_meter_id (models/marts/schema.yml)",
        "Got 1 result, configured to fail if != 0",
    ]


def test_a_build_that_built_nothing_says_dbts_error_or_its_exit_code() -> None:
    report = report_of(
        [
            event(
                "MainEncounteredError",
                "error",
                "Encountered an error:\nRuntime Error\n  'bogus' is not a valid method name",
            ),
            event("CommandCompleted", "debug", "Command `dbt build` failed"),
        ]
    )
    assert not report.failed
    assert report.failure("build", 2) == (
        "dbt build failed: Encountered an error: Runtime Error 'bogus' is not a valid method name"
    )
    assert report_of([]).failure("build", 2) == "dbt build failed: dbt exited with code 2 and logged no error"


def test_rows_written_is_the_databases_count_for_the_model() -> None:
    for status, rows in (
        ("INSERT 0 24", 24),  # PostgreSQL: an incremental mart's days
        ("SELECT 3", 3),  # PostgreSQL: a table built whole
        ("SUCCESS 5", 5),  # Snowflake
        ("CREATE VIEW", None),  # a view: no rows written
        ("ERROR", None),
    ):
        assert rows_written(event("LogModelResult", status=status)) == rows, status
    assert rows_written(event("LogTestResult", status="SELECT 1")) is None  # a test's query, not a write
