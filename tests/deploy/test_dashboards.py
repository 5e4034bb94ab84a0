"""The Grafana provisioning and dashboards in deploy/grafana/.

Structure and references are checked statically; every PromQL expression must parse (promtool
checks them all as recording rules, in one call) and name only exported or recorded series; every
SQL query is run, with Grafana's macros and variables substituted, against marts that one dbt build
makes from the warehouse tests' data set (tests/warehouse/test_dbt_build.py), and must return rows
with exactly the columns its panel names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from metrify_assets.contracts import CONTRACTS
from metrify_assets.observability.catalogue import ALL, exported_series
from metrify_assets.observability.store_metrics import backlog_families, grid_families
from metrify_assets.resources import PostgresResource
from tests.deploy.test_alert_rules import SYNTHETIC_SERIES, metric_names, recorded_names, run_promtool
from tests.warehouse.test_dbt_build import DAY0, build_marts, places

GRAFANA_DIR = Path(__file__).parents[2] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
PANEL_TYPES = frozenset({"timeseries", "stat", "table", "bargauge"})
PROMETHEUS = "prometheus"
POSTGRES = "grafana-postgresql-datasource"
# The range the SQL panels are run over: the warehouse data set's days and one either side.
TIME_FROM = DAY0 - timedelta(days=1)
TIME_TO = DAY0 + timedelta(days=3)
# Stand-ins for Grafana's interval variables in PromQL.
PROMQL_INTERVALS = {"__rate_interval": "2m", "__interval": "30s", "__range": "1h"}
NUMERIC_TYPES = frozenset({"int2", "int4", "int8", "float4", "float8", "numeric"})
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def dashboard(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def provisioned_datasources() -> dict[str, str]:
    """uid -> type of the provisioned datasources."""
    config = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "metrify.yml").read_text())
    return {ds["uid"]: ds["type"] for ds in config["datasources"]}


def targets(board: dict[str, Any], kind: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query of the dashboard on a datasource of `kind`."""
    for panel in board["panels"]:
        for target in panel["targets"]:
            if target["datasource"]["type"] == kind:
                yield panel, target


def promql(expr: str) -> str:
    """The expression as Grafana sends it: interval variables as durations, template variables
    (used in regex matchers) as `.*`."""

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[3]
        return PROMQL_INTERVALS.get(name, ".*")

    return _VARIABLE.sub(value, expr)


def grafana_sql(sql: str, variables: dict[str, list[str]]) -> str:
    """The query as Grafana's PostgreSQL datasource runs it: time macros over TIME_FROM..TIME_TO and
    multi-value variables as quoted, comma-separated lists (an unknown variable raises KeyError)."""
    start, end = (t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in (TIME_FROM, TIME_TO))
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN '{start}' AND '{end}'", sql)
    sql = sql.replace("$__timeFrom()", f"'{start}'").replace("$__timeTo()", f"'{end}'")

    def value(match: re.Match[str]) -> str:
        values = variables[match[1] or match[3]]
        return ", ".join("'" + v.replace("'", "''") + "'" for v in values)

    return _VARIABLE.sub(value, sql)


def query(conn: psycopg.Connection, sql: str) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
    """(column name, type name) pairs and rows of a query."""
    with conn.cursor() as cur:
        cur.execute(sql)
        assert cur.description is not None
        columns = []
        for col in cur.description:
            info = conn.adapters.types.get(col.type_code)
            columns.append((col.name, info.name if info else str(col.type_code)))
        return columns, cur.fetchall()


@pytest.fixture(scope="module")
def built(
    pg_resource: PostgresResource, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[psycopg.Connection, Path]]:
    """The warehouse tests' data set built into the marts the dashboards read and their parents
    (models, seeds and snapshots; dbt's data tests are the warehouse tests' business); with dbt's
    target directory (the compiled models)."""
    target = tmp_path_factory.mktemp("dashboards_dbt")
    used = sorted({m for p in DASHBOARDS for m in re.findall(r"\bmarts\.(\w+)", p.read_text())})
    build_marts(pg_resource, target, used)
    with pg_resource.connect(autocommit=True) as conn:
        yield conn, target


@pytest.fixture(scope="module")
def marts(built: tuple[psycopg.Connection, Path]) -> psycopg.Connection:
    return built[0]


def test_provisioning() -> None:
    """Two datasources with fixed uids, credentials from Grafana's environment, and a file provider."""
    config = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "metrify.yml").read_text())
    assert provisioned_datasources() == {"metrify-prometheus": PROMETHEUS, "metrify-postgres": POSTGRES}
    postgres = next(ds for ds in config["datasources"] if ds["type"] == POSTGRES)
    for value in (postgres["url"], postgres["user"], postgres["secureJsonData"]["password"]):
        assert re.fullmatch(r"\$\{METRIFY_GRAFANA_\w+\}", value)
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "metrify.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_dashboard_uids_and_titles_are_unique() -> None:
    boards = [dashboard(p) for p in DASHBOARDS]
    assert len(boards) == 5
    assert len({b["uid"] for b in boards}) == len(boards)
    assert len({b["title"] for b in boards}) == len(boards)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_structure(path: Path) -> None:
    board = dashboard(path)
    datasources = provisioned_datasources()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 39
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert panel["title"] and panel["description"]
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        panel_cells = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & panel_cells, f"{panel['title']} overlaps another panel"
        cells |= panel_cells
        assert datasources.get(panel["datasource"]["uid"]) == panel["datasource"]["type"], panel["title"]
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            assert target.get("expr") or target.get("rawSql"), panel["title"]
    for variable in board["templating"]["list"]:
        assert datasources.get(variable["datasource"]["uid"]) == variable["datasource"]["type"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_promql_names_only_exported_or_recorded_series(path: Path) -> None:
    allowed = exported_series() | recorded_names() | SYNTHETIC_SERIES
    board = dashboard(path)
    for _, target in targets(board, PROMETHEUS):
        names = metric_names(promql(target["expr"]))
        assert names and names <= allowed, f"{target['expr']}: {names - allowed}"
    labels = {spec.name: spec.labels for spec in ALL}
    for variable in board["templating"]["list"]:
        if variable["datasource"]["type"] == PROMETHEUS:
            match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"])
            assert match, variable["query"]
            assert match[2] in labels[match[1]], variable["query"]


def test_every_promql_expression_parses(tmp_path: Path) -> None:
    """All the dashboards' expressions as recording rules of one file: promtool parses each."""
    rules = [
        {"record": f"dashboard:check_{i}", "expr": promql(t["expr"])}
        for i, (_, t) in enumerate(t for p in DASHBOARDS for t in targets(dashboard(p), PROMETHEUS))
    ]
    assert len(rules) > 20
    path = tmp_path / "dashboard_exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = run_promtool("check", "rules", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sql_panels_use_only_sql_variables() -> None:
    """A SQL query can only be given variables whose values come from the database."""
    for path in DASHBOARDS:
        board = dashboard(path)
        sql_variables = {
            v["name"] for v in board["templating"]["list"] if v["datasource"]["type"] == POSTGRES
        }
        for panel, target in targets(board, POSTGRES):
            used = {m[1] or m[3] for m in _VARIABLE.finditer(target["rawSql"])} - {
                "__timeFilter",
                "__timeFrom",
                "__timeTo",
            }
            assert used <= sql_variables, f"{path.stem} / {panel['title']}: {used - sql_variables}"


@pytest.mark.postgres
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_sql_panels_run_against_the_marts(path: Path, marts: psycopg.Connection) -> None:
    """Each SQL variable lists values (all selected, as Grafana's default "All"); each SQL panel returns
    rows whose columns are exactly those its field overrides name (plus `time` and `metric` for a
    time series, with a timestamp time and numeric values)."""
    board = dashboard(path)
    variables: dict[str, list[str]] = {}
    for variable in board["templating"]["list"]:
        if variable["datasource"]["type"] == POSTGRES:
            _, rows = query(marts, grafana_sql(variable["query"], variables))
            variables[variable["name"]] = [str(row[0]) for row in rows]
            assert variables[variable["name"]], f"variable {variable['name']} lists no values"
    for panel, target in targets(board, POSTGRES):
        title = f"{path.stem} / {panel['title']}"
        columns, rows = query(marts, grafana_sql(target["rawSql"], variables))
        assert rows, f"{title} returned no rows"
        names = [name for name, _ in columns]
        named = [o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"]]
        if target["format"] == "time_series":
            assert names[0] == "time" and columns[0][1] == "timestamp", title
            assert all(isinstance(row[0], datetime) for row in rows), title
            values = [(n, t) for n, t in columns[1:] if n != "metric"]
            assert all(t in NUMERIC_TYPES for _, t in values), f"{title}: {columns}"
            assert sorted(n for n, _ in values) == sorted(named), title
        else:
            assert target["format"] == "table", title
            assert sorted(names) == sorted(named), title
            if panel["type"] in ("stat", "bargauge"):
                assert any(t in NUMERIC_TYPES for _, t in columns), f"{title} has nothing to show"


def unit(panel: dict[str, Any], column: str) -> str | None:
    """The unit the panel's field override gives `column`."""
    for override in panel["fieldConfig"]["overrides"]:
        if override["matcher"]["options"] == column:
            return next((p["value"] for p in override["properties"] if p["id"] == "unit"), None)
    return None


# Aggregates in doubles, as the panels wrote them before: sum(x) and avg(x), not in decimals.
_DECIMAL_AGGREGATE = re.compile(r"round\((avg\(\w+)::numeric\), \d+\)|::numeric")
# The marts whose floats panels add up or average: the column a copy of each row is filed under, and
# those floats.
SPREAD = {
    "fct_consumption_daily_by_region": (
        "region",
        ("kwh_import", "kwh_export", "net_kwh", "kwh_actual", "kwh_estimated"),
    ),
    "fct_consumption_hourly": ("region", ("kwh_import",)),
    "fct_grid_stability": ("grid_node_id", ("alert_minutes", "emergency_minutes")),
    "fct_weather_conditions": ("station_id", ("mean_wind_speed_ms", "precipitation_mm")),
    "fct_weather_impact": ("region", ("heating_degree_days", "cooling_degree_days")),
}


@pytest.mark.postgres
def test_sql_panels_show_no_binary_noise(marts: psycopg.Connection) -> None:
    """Panels that add up or average the marts' floats in doubles showed the noise of the arithmetic
    (on this data set "Hourly consumption by time-of-use period" returned 5.1762999999999995 kWh for
    5.1763, "Net consumption per day by region" 138.95839999999998). The panels add in decimals
    (`sum(x::numeric)`: exact, as the marts' `exact_sum`) and round a mean to its measure's decimals
    (`round(avg(x::numeric), 4)` for the weather measures, as the marts serve them), so no number a
    SQL panel returns has more than 6 decimals, the marts' finest but RoCoF's; shares (percentunit)
    are quotients, shown as computed. Each row of the aggregated marts is copied twice under another
    node, station or region, its floats 0.1 and 0.2 higher (added in decimals: the copies carry no
    noise of their own), so every aggregating panel has more than one value to add: each gives noise
    with its aggregates in doubles, none with them in decimals (all rolled back)."""
    checked = 0
    with marts.transaction(force_rollback=True):
        for mart, (key, columns) in SPREAD.items():
            for step in (1, 2):
                copy = f"spread_{mart}_{step}"
                marts.execute(
                    f"CREATE TEMP TABLE {copy} ON COMMIT DROP AS SELECT * FROM marts.{mart} "
                    f"WHERE coalesce({key}, '') NOT LIKE '%-spread-%'"
                )
                shifted = ", ".join(
                    f"{c} = (coalesce({c}, 0)::numeric + {step / 10})::float" for c in columns
                )
                marts.execute(
                    f"UPDATE {copy} SET {key} = coalesce({key}, 'unknown') || '-spread-{step}', {shifted}"
                )
                marts.execute(f"INSERT INTO marts.{mart} SELECT * FROM {copy}")
        for path in DASHBOARDS:
            board = dashboard(path)
            variables = all_values(marts, board)
            for panel, target in targets(board, POSTGRES):
                title = f"{path.stem} / {panel['title']}"
                sql = grafana_sql(target["rawSql"], variables)
                naive = _DECIMAL_AGGREGATE.sub(lambda m: m[1] + ")" if m[1] else "", sql)
                noisy = 0
                for query_sql, served in ((sql, True), (naive, False)) if naive != sql else ((sql, True),):
                    columns, rows = query(marts, query_sql)
                    for i, (name, type_name) in enumerate(columns):
                        if type_name not in NUMERIC_TYPES or unit(panel, name) == "percentunit":
                            continue
                        decimals = [places(float(row[i])) for row in rows if row[i] is not None]
                        if served:
                            assert all(n <= 6 for n in decimals), f"{title}: {name}"
                            checked += len(decimals)
                        else:
                            noisy += sum(n > 6 for n in decimals)
                assert naive == sql or noisy > 0, f"{title}: no noise to drop on this data set"
    assert checked > 200


def all_values(conn: psycopg.Connection, board: dict[str, Any]) -> dict[str, list[str]]:
    """Every SQL variable of the dashboard with all its values selected (Grafana's "All")."""
    variables: dict[str, list[str]] = {}
    for variable in board["templating"]["list"]:
        if variable["datasource"]["type"] == POSTGRES:
            _, rows = query(conn, grafana_sql(variable["query"], variables))
            variables[variable["name"]] = [str(row[0]) for row in rows]
    return variables


@pytest.mark.postgres
def test_mean_completeness_is_the_mean_over_meter_days(built: tuple[psycopg.Connection, Path]) -> None:
    """The Business panels' mean completeness, read from the region rollup (a mean per region, segment
    and day), is the mean over the meter-days of fct_consumption_daily: each rollup row weighted by
    its meters. Two more meters on one group's first day, with a quarter of its completeness, make the
    rows' plain mean differ (the rollup rebuilt from its compiled model; all rolled back)."""
    conn, target = built
    board = dashboard(GRAFANA_DIR / "dashboards" / "business.json")
    panels = {
        p["title"]: t["rawSql"] for p, t in targets(board, POSTGRES) if "avg_completeness" in t["rawSql"]
    }
    assert sorted(panels) == ["Actual and estimated energy", "Billing readiness"]
    rollup = next((target / "compiled").rglob("fct_consumption_daily_by_region.sql")).read_text()
    daily = "marts.fct_consumption_daily WHERE $__timeFilter(local_date)"
    group = "coalesce(region, 'unknown'), coalesce(segment, 'unknown')"
    with conn.transaction(force_rollback=True):
        conn.execute(
            "CREATE TEMP TABLE extra ON COMMIT DROP AS SELECT * FROM marts.fct_consumption_daily"
            " WHERE (region, segment, local_date) = (SELECT region, segment, min(local_date)"
            " FROM marts.fct_consumption_daily GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 1)"
        )
        conn.execute("UPDATE extra SET completeness = completeness / 4")
        for copy in ("b", "c"):
            conn.execute("UPDATE extra SET meter_id = meter_id || %s", [copy])
            conn.execute("INSERT INTO marts.fct_consumption_daily SELECT * FROM extra")
        conn.execute("DELETE FROM marts.fct_consumption_daily_by_region")
        conn.execute(f"INSERT INTO marts.fct_consumption_daily_by_region {rollup}")
        variables = all_values(conn, board)

        def one(sql: str) -> list[tuple[Any, ...]]:
            return query(conn, grafana_sql(sql, variables))[1]

        ((meter_days,),) = one(f"SELECT avg(completeness) FROM {daily}")
        ((rows_mean,),) = one(
            "SELECT avg(avg_completeness) FROM marts.fct_consumption_daily_by_region"
            " WHERE $__timeFilter(local_date)"
        )
        assert abs(rows_mean - meter_days) > 0.01, "the data set does not tell the two means apart"
        (readiness,) = one(panels["Billing readiness"])
        assert readiness[1] == pytest.approx(meter_days, abs=1e-12)
        per_group = dict(
            ((r, s), mean)
            for r, s, mean in one(f"SELECT {group}, avg(completeness) FROM {daily} GROUP BY 1, 2")
        )
        energy = {(row[0], row[1]): row[-1] for row in one(panels["Actual and estimated energy"])}
        assert energy.keys() == per_group.keys()
        for key, mean in per_group.items():
            assert energy[key] == pytest.approx(mean, abs=1e-12), key


def grafana_regex(values: list[str]) -> str:
    """A multi-value variable as Grafana's Prometheus datasource puts it into a regex matcher with
    "All" selected (no custom all value): its listed values, escaped, as one alternation."""
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", v) for v in values]
    return "(" + "|".join(escaped) + ")"


def evaluate(expr: str, series: dict[str, float], tmp_path: Path) -> float:
    """`expr` evaluated by promtool over constant `series` (name{labels} -> value): its one value."""
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": name, "values": f"{value:g}x3"} for name, value in series.items()
                ],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "2m", "exp_samples": [{"labels": "{}", "value": -1}]}
                ],
            }
        ],
    }
    path = tmp_path / "panel_test.yml"
    path.write_text(yaml.safe_dump(test))
    proc = run_promtool("test", "rules", str(path), cwd=tmp_path)
    got = re.search(
        r"got: \{\} (\S+)", proc.stdout + proc.stderr
    )  # -1 never holds: promtool says what it got
    assert got, proc.stdout + proc.stderr
    return float(got[1])


@pytest.mark.postgres
def test_a_grid_node_only_the_operational_tables_know_is_counted_in_emergency(
    marts: psycopg.Connection, tmp_path: Path
) -> None:
    """Found in a user trial: the node list ("All") came from the grid marts, so a node new today, in
    emergency before the daily refresh built its mart rows, was left out of "Nodes in emergency", the
    very panel that should show it. The list now holds every node metrify_grid_state exports (the
    operational tables), and the stat panels, evaluated by promtool over the exporter's own series
    with "All" expanded as Grafana does, count it (all rolled back)."""
    board = dashboard(GRAFANA_DIR / "dashboards" / "grid.json")
    now = datetime.now(UTC)
    with marts.transaction(force_rollback=True):
        marts.execute(
            "INSERT INTO ops.grid_status (grid_node_id, measured_at, frequency_hz, voltage_v, load_mw, "
            "record_version, batch_id) VALUES ('GN-NEW', %s, 49.1, 230, 5, 1, 'B-new')",
            [now],
        )
        events = (
            "INSERT INTO ops.grid_state_events (grid_node_id, started_at, state, rule, area, start_day, "
            "peak_deviation_hz) VALUES (%s, %s, %s, 'test', 'test', %s, -0.9)"
        )
        marts.execute(events, ["GN-NEW", now, "emergency", now.date()])
        # An open alert of a node whose samples all left PostgreSQL: the exporter still reports it.
        marts.execute(events, ["GN-SILENT", now, "alert", now.date()])
        in_marts = {r[0] for r in marts.execute("SELECT DISTINCT grid_node_id FROM marts.fct_grid_stability")}
        assert in_marts and not in_marts & {"GN-NEW", "GN-SILENT"}
        nodes = all_values(marts, board)["grid_node"]
        [family] = grid_families(marts)
        exported = {s.labels["grid_node_id"] for s in family.samples}
        assert in_marts | exported <= set(nodes)  # the history, and every node exported now
        series = {
            f'{s.name}{{grid_node_id="{s.labels["grid_node_id"]}",state="{s.labels["state"]}"}}': s.value
            for s in family.samples
        }
        panels = {p["title"]: t["expr"] for p, t in targets(board, PROMETHEUS) if p["type"] == "stat"}
        for state, title in (("emergency", "Nodes in emergency"), ("alert", "Nodes in alert")):
            current = {
                s.labels["grid_node_id"] for s in family.samples if s.labels["state"] == state and s.value
            }
            assert {"emergency": "GN-NEW", "alert": "GN-SILENT"}[state] in current
            expr = panels[title].replace("$grid_node", grafana_regex(nodes))
            assert evaluate(expr, series, tmp_path) == len(current), title


@pytest.mark.postgres
def test_a_station_no_current_meter_names_yet_is_in_the_weather_panels(marts: psycopg.Connection) -> None:
    """The station list came only from dim_meter (daily), so a station whose hourly weather is in
    fct_weather_conditions before the daily refresh maps a meter to it (or one no meter uses) was left
    out of every weather panel. It is listed now, whatever the regions selected (all rolled back)."""
    board = dashboard(GRAFANA_DIR / "dashboards" / "weather.json")
    temperature = next(
        t["rawSql"] for p, t in targets(board, POSTGRES) if p["title"] == "Temperature per station"
    )
    with marts.transaction(force_rollback=True):
        marts.execute(
            "CREATE TEMP TABLE new_station ON COMMIT DROP AS SELECT * FROM marts.fct_weather_conditions LIMIT 1"
        )
        marts.execute("UPDATE new_station SET station_id = 'WS-NEW'")
        marts.execute("INSERT INTO marts.fct_weather_conditions SELECT * FROM new_station")
        variables = all_values(marts, board)
        named = {  # the stations current meters of the selected regions name (other files' meters
            r[0]  # may be of regions without weather impact rows: not selectable, so not listed)
            for r in marts.execute(
                "SELECT weather_station_id FROM marts.dim_meter WHERE is_current AND region = ANY(%s)",
                (list(variables["region"]),),
            )
        }
        assert "WS-NEW" not in named and named - {None} <= set(variables["station"])
        assert "WS-NEW" in variables["station"]
        _, rows = query(marts, grafana_sql(temperature, variables))
        assert "WS-NEW" in {row[1] for row in rows}
        # One region selected: its stations, and still the station no meter names.
        station = next(v["query"] for v in board["templating"]["list"] if v["name"] == "station")
        _, one = query(marts, grafana_sql(station, {"region": variables["region"][:1]}))
        assert "WS-NEW" in {row[0] for row in one}


@pytest.mark.postgres
def test_a_meter_without_master_data_counts_as_unknown_in_every_business_panel(
    marts: psycopg.Connection,
) -> None:
    """The region list comes from the daily rollup, which puts a meter without master data under
    region and segment `unknown`; the hourly and peak marts carry its region as NULL, which no list
    matched, so "Energy in range" counted its energy and the hourly and peak panels left it out. They
    match it as `unknown` now (all rolled back)."""
    board = dashboard(GRAFANA_DIR / "dashboards" / "business.json")
    panels = {p["title"]: t["rawSql"] for p, t in targets(board, POSTGRES)}
    with marts.transaction(force_rollback=True):
        for mart, key in (
            ("fct_consumption_hourly", "meter_id"),
            ("fct_peak_demand", "meter_id"),
            ("fct_consumption_daily_by_region", "region"),
        ):
            marts.execute(
                f"CREATE TEMP TABLE extra_{mart} ON COMMIT DROP AS SELECT * FROM marts.{mart} LIMIT 1"
            )
            blank = "NULL" if key == "meter_id" else "'unknown'"
            marts.execute(f"UPDATE extra_{mart} SET region = {blank}, segment = {blank}")
            if key == "meter_id":
                marts.execute(f"UPDATE extra_{mart} SET meter_id = 'M-NO-MASTER-DATA'")
            marts.execute(f"INSERT INTO marts.{mart} SELECT * FROM extra_{mart}")
        variables = all_values(marts, board)
        assert "unknown" in variables["region"] and "unknown" in variables["segment"]

        def rows(title: str) -> list[tuple[Any, ...]]:
            return query(marts, grafana_sql(panels[title], variables))[1]

        ((total,),) = query(
            marts,
            grafana_sql(
                "SELECT sum(kwh_import) FROM marts.fct_consumption_hourly WHERE $__timeFilter(hour_start_utc)",
                {},
            ),
        )[1]
        assert sum(float(r[2]) for r in rows("Hourly consumption by time-of-use period")) == pytest.approx(
            total
        )
        assert "unknown" in {r[1] for r in rows("Daily peak demand by region")}
        ((meter_days,),) = query(
            marts,
            grafana_sql("SELECT count(*) FROM marts.fct_peak_demand WHERE $__timeFilter(local_date)", {}),
        )[1]
        top = rows("Top peak demands")
        assert len(top) == min(20, meter_days) and all(r[1] is not None for r in top)


@pytest.mark.postgres
def test_the_quality_source_list_is_every_exported_source(marts: psycopg.Connection) -> None:
    """The Data quality dashboard's sources ("All") are those the exporter labels its series with,
    whether or not a mart has a row of them yet (its Prometheus panels: the dead-letter backlog...)."""
    board = dashboard(GRAFANA_DIR / "dashboards" / "quality.json")
    sources = all_values(marts, board)["source"]
    exported = {s.labels["source"] for f in backlog_families(marts) for s in f.samples}
    assert sources == sorted(CONTRACTS) and exported == set(sources)


def test_grafana_sql_substitutes_macros_and_variables() -> None:
    sql = grafana_sql(
        "SELECT 1 WHERE $__timeFilter(t) AND r IN ($region) AND s IN (${segment:sqlstring}) AND t < $__timeTo()",
        {"region": ["north", "o'hara"], "segment": ["residential"]},
    )
    assert sql == (
        "SELECT 1 WHERE t BETWEEN '2026-03-27T00:00:00Z' AND '2026-03-31T00:00:00Z' AND r IN ('north', 'o''hara')"
        " AND s IN ('residential') AND t < '2026-03-31T00:00:00Z'"
    )
    with pytest.raises(KeyError):
        grafana_sql("SELECT $unknown", {})
    assert TIME_FROM.tzinfo is UTC
