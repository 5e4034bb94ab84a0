"""The benchmark harness's pure helpers: the README's results block is replaced, not appended to."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import README_BEGIN, README_END, CaseResult, _markdown, summary, update_readme

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
