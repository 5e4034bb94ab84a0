"""The Prometheus rules (deploy/prometheus/rules.yml) and scrape config, checked by promtool.

`promtool test rules` runs the unit tests in deploy/prometheus/tests/; these tests also hold the
rules to their contract: every metric an expression names is exported (the catalogue) or recorded
by a rule, every alert has a case that fires it and one that does not, and its runbook entry exists
in docs/operations.md. promtool comes with Debian's `prometheus` package; in CI a missing promtool
fails, elsewhere it skips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from metrify_assets.observability.catalogue import exported_series
from tests.conftest import IN_CI

ROOT = Path(__file__).parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
# Series Prometheus makes itself for every target.
SYNTHETIC_SERIES = frozenset({"up"})

# PromQL words that look like metric names: keywords and aggregation operators (which may be
# followed by `by (...)` rather than a parenthesis).
_KEYWORDS = frozenset(
    {
        "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
        "group_right", "inf", "nan", "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
        "count_values", "bottomk", "topk", "quantile", "atan2",
    }
)  # fmt: skip
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers outside strings, label matchers,
    ranges and grouping clauses that are neither functions (followed by `(`) nor keywords."""
    bare = _STRING.sub('""', expr)
    bare = re.sub(r"\{[^}]*\}", " ", bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = _GROUPING.sub(" ", bare)
    return {name for name in _IDENTIFIER.findall(bare) if name not in _KEYWORDS}


def promtool() -> str:
    """The promtool binary: a failure in CI, a skip elsewhere, when it is not installed."""
    path = shutil.which("promtool")
    if path is None:
        msg = "promtool is not installed (apt-get install prometheus)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def run_promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def load_rules(path: Path = RULES) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def recorded_names() -> frozenset[str]:
    """The series the recording rules of rules.yml make."""
    return frozenset(rule["record"] for rule in load_rules() if "record" in rule)


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in load_rules() if "alert" in rule]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings (lowercase, punctuation dropped, spaces to -)."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def alert_cases() -> dict[str, list[list[dict[str, Any]]]]:
    """Per alert name, the expected alerts of each of its cases across the rule test files."""
    cases: dict[str, list[list[dict[str, Any]]]] = {}
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    return cases


def test_rules_pass_promtool_check() -> None:
    proc = run_promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in proc.stdout


def test_prometheus_config_passes_promtool_check() -> None:
    """The scrape config is valid and loads rules.yml; both jobs the rules select on are scraped."""
    proc = run_promtool("check", "config", "prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"metrify-pipeline", "metrify-api"}
    assert jobs["metrify-pipeline"]["static_configs"][0]["targets"][0].endswith(":9464")
    # metrify_pipeline_runs_total's own `job` label must survive the scrape.
    assert jobs["metrify-pipeline"]["honor_labels"] is True


def test_rule_unit_tests_pass() -> None:
    assert len(RULE_TESTS) >= 8
    proc = run_promtool("test", "rules", *(str(p) for p in RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases = alert_cases()
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), "alert names must be unique"
    assert not set(cases) - set(names), "a rule test names an alert rules.yml does not define"
    for name in names:
        assert any(cases.get(name, [])), f"no rule test fires {name}"
        assert any(not expected for expected in cases[name]), f"no rule test keeps {name} quiet"


def test_every_alert_is_labelled_and_documented() -> None:
    anchors = github_anchors(OPERATIONS_DOC.read_text())
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), f"{name} needs a `for:` duration"
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), name
        assert (
            "{{ $labels." in annotations["summary"] + annotations["description"] or "absent(" in rule["expr"]
        ), name
        if re.search(r"[<>]", rule["expr"]) and "absent(" not in rule["expr"]:
            assert "{{ $value" in annotations["description"], f"{name}: say the value against its threshold"
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/operations.md" and anchor == name.lower(), name
        assert anchor in anchors, f"docs/operations.md has no runbook entry for {name}"


def test_readme_states_the_rule_counts() -> None:
    """README says how many alerts and recording rules rules.yml holds (it once said 22 of 23)."""
    rules = load_rules()
    readme = " ".join((ROOT / "README.md").read_text().split())
    stated = re.search(
        r"`deploy/prometheus/rules\.yml` holds (\d+) alerts .*? on (\d+) recording rules", readme
    )
    assert stated is not None, "README no longer states the counts in the words this test reads"
    assert (int(stated[1]), int(stated[2])) == (len(alerts()), sum("record" in r for r in rules))


def test_rules_name_only_exported_or_recorded_series() -> None:
    allowed = exported_series() | recorded_names() | SYNTHETIC_SERIES
    for rule in load_rules():
        names = metric_names(rule["expr"])
        assert names, rule
        assert names <= allowed, f"{rule.get('alert') or rule.get('record')}: {names - allowed}"


def test_rule_tests_feed_only_exported_series() -> None:
    """The unit tests' input series are real exports, so the cases exercise what Prometheus scrapes."""
    allowed = exported_series() | SYNTHETIC_SERIES
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for series in test["input_series"]:
                name = series["series"].split("{", 1)[0]
                assert name in allowed, f"{path.name}: {name}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (source) (rate(metrify_records_received_total{source=~"a|b"}[5m]))', {"metrify_records_received_total"}),
        ("time() - max by (source) (x_seconds) offset 5m", {"x_seconds"}),
        ("a:b:rate5m / on (job) group_left (route) c and bool 1e3", {"a:b:rate5m", "c"}),
        ('absent(up{job="metrify-pipeline"}) and on () count(up == 1) > 0', {"up"}),
        ('deriv(lag[15m:1m]) > 0 unless sum(rate(x_total[$__rate_interval])) without (le)', {"lag", "x_total"}),
    ],
)  # fmt: skip
def test_metric_names_finds_the_selectors(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
