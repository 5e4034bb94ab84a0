"""The benchmark harness's pure helpers: the README's results block, and a case's table under its own
markers, are replaced, not appended to; every case has a place in the parallel start order."""

from __future__ import annotations

from pathlib import Path

from benchmarks.__main__ import CASES, LONGEST_FIRST
from benchmarks.harness import (
    README_BEGIN,
    README_END,
    README_TABLE_BEGIN,
    README_TABLE_END,
    CaseResult,
    _markdown,
    case_tables,
    summary,
    update_readme,
)

INFO = {
    "cores": 2,
    "cpu": "test cpu",
    "memory_gib": 1.0,
    "python": "3.11",
    "system": "Linux",
    "versions": {"x": "1"},
}


def results(value: float) -> str:
    case = CaseResult(name="c", title="1. Case", figures={"speed": value}, rows=[{"a": 1}], seconds=2.0)
    return _markdown([case], INFO, "now", 1.0)


def test_summary_keeps_the_figures_table_and_drops_the_per_case_tables() -> None:
    text = summary(results(1.5))
    assert "| 1. Case | speed | 1.5 |" in text
    assert "| 1. Case | case wall time s | 2.0 |" in text
    assert "test cpu" in text and "x 1" in text
    assert "**1. Case**" not in text


def test_update_readme_replaces_the_block_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n\n{README_BEGIN}\nold\n{README_END}\n\n## Next\n")
    assert update_readme(results(1.5), readme)
    assert update_readme(results(2.5), readme)
    text = readme.read_text()
    assert "| speed | 2.5 |" in text and "1.5" not in text and "old" not in text
    assert text.startswith("# T\n") and text.endswith("\n## Next\n")
    assert text.count(README_BEGIN) == 1


def test_update_readme_without_markers_changes_nothing(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# T\n")
    assert not update_readme(results(1.0), readme)
    assert readme.read_text() == "# T\n"


def test_case_tables_are_each_cases_rows_under_the_measured_line() -> None:
    other = CaseResult(name="d", title="2. Other", rows=[{"b": 2}, {"b": 3, "c": "x"}])
    case = CaseResult(name="c", title="1. Case", figures={"speed": 1.0}, rows=[{"a": 1}])
    tables = case_tables(_markdown([case, other], INFO, "now", 1.0))
    assert list(tables) == ["1. Case", "2. Other"]
    assert tables["1. Case"].startswith("Measured now at scale 1.0 on 2 cores (test cpu)")
    assert tables["1. Case"].endswith("\n\n| a |\n|---|\n| 1 |\n")
    assert tables["2. Other"].endswith("| b | c |\n|---|---|\n| 2 |  |\n| 3 | x |\n")


def test_update_readme_replaces_a_case_table_between_its_own_markers(tmp_path: Path) -> None:
    begin, end = README_TABLE_BEGIN.format(title="1. Case"), README_TABLE_END.format(title="1. Case")
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# T\n\n{README_BEGIN}\nold\n{README_END}\n\n## Accuracy\n\n{begin}\nold rows\n{end}\n\n## Next\n"
    )
    assert update_readme(results(1.5), readme)
    text = readme.read_text()
    assert "old" not in text
    table = text.split(begin, 1)[1].split(end, 1)[0]
    assert "| a |\n|---|\n| 1 |" in table and "speed" not in table
    assert "| a |" not in text.split(README_END, 1)[0]  # the rows stay out of the Performance block
    assert text.endswith(f"{end}\n\n## Next\n") and text.count(begin) == 1


def test_every_case_has_a_place_in_the_parallel_start_order() -> None:
    assert sorted(LONGEST_FIRST) == sorted(CASES)
