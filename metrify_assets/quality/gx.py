"""Great Expectations 1.x in process: validate a DataFrame against a suite from `expectations/`.

The JSON files under `expectations/` are the source of truth (versioned in git, one per guarded
asset). One ephemeral GX context per suite directory is built on first use and kept for the life of
the process, with its suites and validation definitions, so a validation costs only the metric
computation and GX's own bookkeeping (~0.1 s for 100,000 rows and ~10 expectations). Suites name
their natural-key columns in `meta.key_columns`; failing rows are reported by those keys.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # GX is imported on first validation: it takes ~8 s, which every process that
    import great_expectations as gx  # loads the definitions (code server, CLI) would otherwise pay

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"
SAMPLE_SIZE = 10


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, reduced to what a check result or a report shows."""

    expectation_type: str
    column: str | None  # compound expectations join their columns with ","
    success: bool
    unexpected_count: int | None  # None for table-level expectations
    unexpected_percent: float | None
    unexpected_sample: tuple[str, ...]  # up to SAMPLE_SIZE unexpected values
    failing_keys: tuple[str, ...]  # up to SAMPLE_SIZE natural keys ("a|b") of failing rows
    observed_value: str | None  # table-level and type expectations report an observation instead


@dataclass(frozen=True)
class SuiteResult:
    suite_name: str
    success: bool
    evaluated: int
    successful: int
    expectations: tuple[ExpectationOutcome, ...]
    element_count: int
    key_columns: tuple[str, ...]

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(e for e in self.expectations if not e.success)


def suite_names(directory: Path | None = None) -> list[str]:
    """The suites available in a directory (default: the repository's `expectations/`)."""
    return sorted(p.stem for p in (directory or EXPECTATIONS_DIR).glob("*.json"))


def load_suite(name: str, directory: Path | None = None) -> gx.ExpectationSuite:
    """Read `<directory>/<name>.json` into a suite; refuse a file GX would silently trim."""
    path = (directory or EXPECTATIONS_DIR) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no GX suite {name!r} at {path}")
    import great_expectations as gx

    data = json.loads(path.read_text())
    if data.get("name") != name:
        raise ValueError(f"{path} names suite {data.get('name')!r}, expected {name!r}")
    suite = gx.ExpectationSuite(**data)
    if len(suite.expectations) != len(data.get("expectations", [])):
        # GX logs and drops an invalid expectation instead of raising; a guard must not shrink.
        raise ValueError(f"{path}: some expectations are invalid for GX {gx.__version__}")
    return suite


class _SuiteRunner:
    """An ephemeral GX context for one suite directory, with its validation definitions."""

    def __init__(self, directory: Path) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.directory = directory
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = self.context.data_sources.add_pandas("metrify").add_dataframe_asset("frame")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
        self.definitions: dict[str, tuple[gx.ValidationDefinition, tuple[str, ...]]] = {}
        self.lock = threading.Lock()  # a GX context is not safe for concurrent use

    def definition(self, name: str) -> tuple[gx.ValidationDefinition, tuple[str, ...]]:
        if name not in self.definitions:
            import great_expectations as gx

            suite = self.context.suites.add(load_suite(name, self.directory))
            keys = tuple(suite.meta.get("key_columns", ()))
            vd = gx.ValidationDefinition(name=f"validate_{name}", data=self.batch_definition, suite=suite)
            self.definitions[name] = (self.context.validation_definitions.add(vd), keys)
        return self.definitions[name]

    def run(self, name: str, df: pd.DataFrame) -> SuiteResult:
        from great_expectations.validator.v1_validator import Validator

        with self.lock:
            vd, keys = self.definition(name)
            present_keys = [k for k in keys if k in df.columns]
            detail: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE}
            if present_keys:
                detail["unexpected_index_column_names"] = present_keys
            # Pass or fail first, which needs a fraction of the metrics; the counts, samples and
            # failing keys are computed only for a suite that failed (or one that tolerates failing
            # rows with `mostly`, whose counts matter when it passes). The Validator is called
            # directly: `ValidationDefinition.run` also keeps every result in the context's store,
            # which grew for the life of the process.
            plans = [detail] if _tolerant(vd.suite) else [{"result_format": "BOOLEAN_ONLY"}, detail]
            for result_format in plans:
                validator = Validator(
                    vd.batch_definition, result_format=result_format, batch_parameters={"dataframe": df}
                )
                with _configurations_built_once():
                    gx_result = validator.validate_expectation_suite(vd.suite)
                if gx_result.success:
                    break
        outcomes = tuple(_outcome(r.to_json_dict(), present_keys) for r in gx_result.results)
        return SuiteResult(
            suite_name=name,
            success=bool(gx_result.success),
            evaluated=len(outcomes),
            successful=sum(o.success for o in outcomes),
            expectations=outcomes,
            element_count=len(df),
            key_columns=tuple(keys),
        )


_built = threading.local()  # id(expectation) -> (expectation, configuration), while validating


@contextmanager
def _configurations_built_once() -> Iterator[None]:
    """Within one validation on this thread, build each expectation's configuration once.

    GX 1.x rebuilds `Expectation.configuration` (a pydantic dump and a regex) every time it is
    read, about 75 times per expectation and validation: 40 % of a 100,000-row validation and
    most of a small batch's. Nothing changes an expectation while it is validated, so the first
    build is kept until the validation ends. The entry holds the expectation itself, so its id
    cannot be reused by another object meanwhile; other threads see GX's own property.
    """
    from great_expectations.expectations.expectation import Expectation

    prop = vars(Expectation).get("configuration")
    if not isinstance(prop, property) or prop.fget is None:  # another GX: validate as it does
        yield
        return
    if not getattr(prop.fget, "metrify_built_once", False):
        build = prop.fget

        def configuration(self: Expectation) -> Any:
            memo: dict[int, tuple[Expectation, Any]] | None = getattr(_built, "memo", None)
            if memo is None:
                return build(self)
            entry = memo.get(id(self))
            if entry is None:
                entry = memo[id(self)] = (self, build(self))
            return entry[1]

        configuration.metrify_built_once = True  # type: ignore[attr-defined]
        setattr(Expectation, "configuration", property(configuration))  # noqa: B010 (mypy: a property)
    _built.memo = {}
    try:
        yield
    finally:
        _built.memo = None


def _tolerant(suite: gx.ExpectationSuite) -> bool:
    """Whether an expectation of the suite passes with some failing rows (`mostly` below 1)."""
    return any(float(e.configuration.kwargs.get("mostly", 1)) < 1 for e in suite.expectations)


_runners: dict[Path, _SuiteRunner] = {}
_runners_lock = threading.Lock()


def _runner(directory: Path) -> _SuiteRunner:
    """The directory's runner, built once per process: a validation that comes while a warm-up thread
    builds it waits for that one instead of importing GX into a second context."""
    with _runners_lock:
        if directory not in _runners:
            _runners[directory] = _SuiteRunner(directory)
        return _runners[directory]


def warm_up(names: Sequence[str], directory: Path | None = None) -> None:
    """Import GX and prepare suites `names` now (seconds, once), e.g. before forking workers that
    would each pay it on their first validation."""
    runner = _runner((directory or EXPECTATIONS_DIR).resolve())
    with runner.lock:
        for name in names:
            runner.definition(name)


def warm_up_in_background(names: Sequence[str]) -> None:
    """`warm_up` on a daemon thread, started: a long-lived process (the API) answers what needs no
    validation meanwhile, and its first validation (a reviewer's first decision) does not pay the
    import, about 7 s on 2 cores."""
    threading.Thread(target=warm_up, args=(list(names),), name="gx-warm-up", daemon=True).start()


def validate(name: str, df: pd.DataFrame, directory: Path | None = None) -> SuiteResult:
    """Validate a frame against suite `name`; context and suite are cached process-wide."""
    return _runner((directory or EXPECTATIONS_DIR).resolve()).run(name, df)


def combined(results: Sequence[SuiteResult]) -> SuiteResult:
    """One suite's results over parts of a frame as the result over the whole: counts summed,
    samples and failing keys of the first parts that have them, and percentages of all the rows
    (GX's own are of a column's non-null rows, which a passing part does not report). Exact
    for row-wise expectations without `mostly` over parts whose natural keys do not overlap (an
    asset run in groups of meters), so uniqueness within each part is uniqueness over all."""
    first = results[0]
    rows = sum(r.element_count for r in results)
    outcomes = []
    for parts in zip(*(r.expectations for r in results), strict=True):
        counts = [p.unexpected_count for p in parts if p.unexpected_count is not None]
        count = sum(counts) if counts else None
        failing = [p for p in parts if not p.success]
        outcomes.append(
            ExpectationOutcome(
                expectation_type=parts[0].expectation_type,
                column=parts[0].column,
                success=not failing,
                unexpected_count=count,
                unexpected_percent=None if count is None else 100 * count / max(rows, 1),
                unexpected_sample=tuple(v for p in parts for v in p.unexpected_sample)[:SAMPLE_SIZE],
                failing_keys=tuple(k for p in parts for k in p.failing_keys)[:SAMPLE_SIZE],
                observed_value=(failing or list(parts))[0].observed_value,
            )
        )
    return SuiteResult(
        suite_name=first.suite_name,
        success=all(o.success for o in outcomes),
        evaluated=len(outcomes),
        successful=sum(o.success for o in outcomes),
        expectations=tuple(outcomes),
        element_count=rows,
        key_columns=first.key_columns,
    )


def _outcome(raw: dict[str, Any], key_columns: list[str]) -> ExpectationOutcome:
    config = raw["expectation_config"]
    kwargs = config.get("kwargs", {})
    result = raw.get("result") or {}
    column = kwargs.get("column") or ",".join(kwargs.get("column_list", [])) or None
    count = result.get("unexpected_count")
    percent = result.get("unexpected_percent")
    observed = result.get("observed_value")
    error = (raw.get("exception_info") or {}).get("exception_message")
    return ExpectationOutcome(
        expectation_type=str(config["type"]),
        column=column,
        success=bool(raw["success"]),
        unexpected_count=None if count is None else int(count),
        unexpected_percent=None if percent is None else float(percent),
        unexpected_sample=tuple(_text(v) for v in result.get("partial_unexpected_list", [])[:SAMPLE_SIZE]),
        failing_keys=_failing_keys(result.get("partial_unexpected_index_list", []), key_columns),
        observed_value=error or (None if observed is None else _text(observed)),
    )


def _failing_keys(index_list: list[Any], key_columns: list[str]) -> tuple[str, ...]:
    """Natural keys of failing rows, in first-seen order without repeats (duplicates list each row)."""
    keys: dict[str, None] = {}
    for entry in index_list:
        if isinstance(entry, dict) and key_columns:
            keys["|".join(_text(entry.get(k)) for k in key_columns)] = None
    return tuple(keys)[:SAMPLE_SIZE]


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return "|".join(_text(v) for v in value.values())
    if isinstance(value, list | tuple):
        return "|".join(_text(v) for v in value)
    return str(value)
