"""The benchmark harness: run cases, describe the machine, write results as JSON and Markdown.

Figures are measured in one run next to their ceilings or baselines, so ratios hold even on a noisy
machine; absolute numbers are for the machine described in the same file.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"
README = Path(__file__).resolve().parents[1] / "README.md"
README_BEGIN = "<!-- bench:latest begin (written by `make bench`) -->"
README_END = "<!-- bench:latest end -->"
# A case's table of rows goes between these markers, where the README has them for its title.
README_TABLE_BEGIN = "<!-- bench:table {title} begin (written by `make bench`) -->"
README_TABLE_END = "<!-- bench:table {title} end -->"


@dataclass
class CaseResult:
    """One case's figures (name -> value) and an optional table of rows (e.g. per fault kind)."""

    name: str
    title: str
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


Case = Callable[[float], CaseResult]


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """`with stopwatch() as elapsed:` ... `elapsed()` seconds since the block began."""
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    mem_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0]
        mem_kib = int(first.split()[1])
    versions = {}
    for pkg in ("dagster", "great-expectations", "pandas", "pyarrow", "kafka-python", "dbt-core", "psycopg"):
        versions[pkg] = version(pkg)
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "versions": versions,
    }


def run_cases(cases: dict[str, Case], scale: float) -> list[CaseResult]:
    """Run each case; a case that fails is recorded with its error and the others still run."""
    results = []
    for name, case in cases.items():
        print(f"== {name} (scale {scale})", flush=True)
        with stopwatch() as elapsed:
            try:
                result = case(scale)
            except Exception as err:  # noqa: BLE001 - a failed case is reported, not fatal to the run
                result = CaseResult(name=name, title=name, error=f"{type(err).__name__}: {err}")
        result.seconds = round(elapsed(), 1)
        for key, value in result.figures.items():
            print(f"   {key}: {value}", flush=True)
        if result.error:
            print(f"   ERROR {result.error}", flush=True)
        results.append(result)
    return results


def run_cases_in_processes(names: list[str], scale: float, jobs: int) -> list[CaseResult]:
    """Each case in its own `python -m benchmarks` process, `jobs` at a time, output shown per case
    when it ends. For smoke runs: concurrent cases share the cores, so their figures disturb each
    other; `make bench` runs one case at a time."""

    def run_one(name: str, workdir: Path) -> CaseResult:
        out = workdir / f"{name}.json"
        log = workdir / f"{name}.log"
        with log.open("wb") as sink:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks",
                    "--only",
                    name,
                    "--scale",
                    str(scale),
                    "--case-json",
                    str(out),
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                check=False,
            )
        print(log.read_text(errors="replace"), end="", flush=True)
        if done.returncode != 0 or not out.exists():
            return CaseResult(
                name=name, title=name, error=f"the case's process exited with {done.returncode}"
            )
        return CaseResult(**json.loads(out.read_text())[0])

    with tempfile.TemporaryDirectory(prefix="metrify-bench-cases-") as tmp, ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(run_one, name, Path(tmp)) for name in names]
        return [f.result() for f in futures]


def write_case_json(results: list[CaseResult], path: Path) -> None:
    """Raw results of a case process, read back by `run_cases_in_processes`."""
    path.write_text(json.dumps([asdict(r) for r in results], default=str))


def _markdown(results: list[CaseResult], info: dict[str, Any], when: str, scale: float) -> str:
    versions = ", ".join(f"{pkg} {v}" for pkg, v in info["versions"].items())
    lines = [
        f"Measured {when} at scale {scale} on {info['cores']} cores ({info['cpu']}), "
        f"{info['memory_gib']} GiB, Python {info['python']} ({info['system']}); {versions}.",
        "",
        "| case | figure | value |",
        "|---|---|---|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {r.title} | error | {r.error} |")
        for key, value in r.figures.items():
            shown = (
                ("yes" if value else "no")
                if isinstance(value, bool)
                else f"{value:,.3f}".rstrip("0").rstrip(".")
                if isinstance(value, float)
                else f"{value:,}"
                if isinstance(value, int)
                else value
            )
            lines.append(f"| {r.title} | {key} | {shown} |")
        lines.append(f"| {r.title} | case wall time s | {r.seconds:,.1f} |")
    for r in results:
        if r.rows:
            cols = list(dict.fromkeys(c for row in r.rows for c in row))  # rows of several shapes
            lines += ["", f"**{r.title}**", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(str(row.get(c, "")) for c in cols) + " |" for row in r.rows]
    return "\n".join(lines) + "\n"


def summary(markdown: str) -> str:
    """The first paragraph and the figures table of a results file (up to the per-case tables)."""
    return markdown.split("\n\n**", 1)[0].rstrip() + "\n"


def case_tables(markdown: str) -> dict[str, str]:
    """The per-case tables of a results file by case title, each under the file's first line (when
    and where it was measured)."""
    measured = markdown.split("\n", 1)[0]
    tables = {}
    for part in markdown.split("\n\n**")[1:]:
        title, _, table = part.partition("**\n\n")
        tables[title] = f"{measured}\n\n{table.strip()}\n"
    return tables


def _replace_between(text: str, begin: str, end: str, body: str) -> str | None:
    if begin not in text or end not in text:
        return None
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    return f"{head}{begin}\n{body}{end}{tail}"


def update_readme(markdown: str, readme: Path = README) -> bool:
    """Put a full run's summary between the README's bench markers, and each case table whose title
    has markers there (README_TABLE_BEGIN/END) between those; False when the bench markers are
    missing."""
    text = _replace_between(readme.read_text(), README_BEGIN, README_END, summary(markdown))
    if text is None:
        return False
    for title, table in case_tables(markdown).items():
        begin, end = README_TABLE_BEGIN.format(title=title), README_TABLE_END.format(title=title)
        text = _replace_between(text, begin, end, table) or text
    readme.write_text(text)
    return True


def write_results(results: list[CaseResult], scale: float, name: str = "latest") -> tuple[Path, Path]:
    """Write `<name>.json` and `<name>.md` under benchmarks/results/."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    info = machine()
    when = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    payload = {"measured_at": when, "scale": scale, "machine": info, "cases": [asdict(r) for r in results]}
    json_path = RESULTS_DIR / f"{name}.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md_path = RESULTS_DIR / f"{name}.md"
    md_path.write_text(_markdown(results, info, when, scale))
    return json_path, md_path
