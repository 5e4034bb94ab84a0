"""What a reviewer decides a flagged record from, beside its stored row (`review.show`'s `context`).

- `why`: each reason in words, with the figures of its rule (docs/quality.md): a spike's value against
  the meter's median in its batch (recomputed from that batch's readings still stored), a zero run's
  length in the stored series, a voltage, power factor or frequency against its band.
- `neighbours`: the records of the same meter (node, station) just before and after it, from its
  operational table, the flagged one marked; for meter readings with what the VEE series holds for
  each interval.
- `vee`: for a meter reading, its interval in the billing-grade series (`ops.vee_readings`): status,
  the value VEE bills, the original and how it was reached; None before VEE processed its day.
- `history`: the item's decisions and reopens from the audit log, oldest first, so a reviewer of an
  item pending again sees who decided it before, who took that back and why.

`flagged_values` gives the flagged value of each listed item for `metrify review list`, and
`replaced_by` the batch of a newer version stored instead of a pending item's flagged one (the list's
`pending (replaced)`, the API list's `replaced_by`). Reads only,
in plain SQL: the rules' thresholds are read from `RuleConfig` when a reason is explained (pandas is
imported then, not for `review list`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from metrify_assets.contracts import contract_for

if TYPE_CHECKING:
    from metrify_assets.quality.review import ReviewItem
    from metrify_assets.quality.rules import RuleConfig

NEIGHBOURS = 4  # records shown before and after the flagged one
# Per source, the measure a list shows first; a reason about another column shows that one too.
MAIN_MEASURE = {
    "meter_readings": "energy_kwh",
    "grid_status": "frequency_hz",
    "weather_observations": "temperature_c",
}
REASON_MEASURE = {
    ("meter_readings", "voltage_out_of_range"): "voltage_v",
    ("meter_readings", "power_factor_out_of_range"): "power_factor",
    ("grid_status", "voltage_out_of_range"): "voltage_v",
    ("grid_status", "frequency_out_of_range"): "frequency_hz",
}
UNITS = {
    "energy_kwh": "kWh",
    "voltage_v": "V",
    "power_factor": "pf",
    "frequency_hz": "Hz",
    "temperature_c": "°C",
}
# A zero run is looked for this far either side of the flagged interval (the rule's run is within one
# batch; a run reaching the edge of the window is "at least" that long).
ZERO_RUN_WINDOW = timedelta(days=2)


def num(value: float | None) -> str:
    """A measure as a reviewer reads it: 1.6358, 0.0404, 262 (four decimals at most), "-" for none."""
    return "-" if value is None else f"{round(float(value), 4):g}"


def measures(source: str, reasons: str) -> list[str]:
    """The columns a record's value is read from: the source's main measure, then each reason's."""
    wanted = [MAIN_MEASURE[source]]
    for code in reasons.split(","):
        column = REASON_MEASURE.get((source, code))
        if column is not None and column not in wanted:
            wanted.append(column)
    return wanted


def describe_values(source: str, reasons: str, row: dict[str, Any] | None) -> str:
    """The flagged values as a list shows them: "1.6358 kWh", "0.6 kWh, 262 V"; "" without a row."""
    if row is None:
        return ""
    return ", ".join(f"{num(row.get(c))} {UNITS[c]}" for c in measures(source, reasons))


def _by_key(
    conn: psycopg.Connection, source: str, wanted: list[tuple[str, int, str]], same_batch: bool
) -> list[tuple[Any, ...]]:
    """Per (batch_id, record_index, record_key) wanted: (batch_id, record_index, stored row as JSON)
    of the row stored under the item's key, when that batch stored it (`same_batch`) or when another
    batch did (not `same_batch`: a newer version replaced the flagged one)."""
    contract = contract_for(source)
    entity, at = contract.key
    query = sql.SQL(
        "SELECT w.b, w.i, to_jsonb(t) FROM unnest(%s::text[], %s::int[], %s::text[]) AS w(b, i, k) "
        "JOIN ops.{table} t ON t.{entity} = split_part(w.k, '|', 1) "
        "AND t.{at} = split_part(w.k, '|', 2)::timestamptz AND t.batch_id {compare} w.b"
    ).format(
        table=sql.Identifier(contract.table),
        entity=sql.Identifier(entity),
        at=sql.Identifier(at),
        compare=sql.SQL("=" if same_batch else "<>"),
    )
    batches, indexes, keys = (list(x) for x in zip(*wanted, strict=True))
    return conn.execute(query, (batches, indexes, keys)).fetchall()


def _key_rows(conn: psycopg.Connection, source: str, wanted: list[tuple[str, int, str]]) -> dict[Any, Any]:
    """Per (batch_id, record_index): the stored row of the item's key when that batch stored it."""
    return {(b, i): dict(row) for b, i, row in _by_key(conn, source, wanted, same_batch=True)}


def flagged_values(
    conn: psycopg.Connection, items: Sequence[ReviewItem]
) -> dict[tuple[str, int], dict[str, Any]]:
    """Per listed item: its flagged version's values (`measures`), from the row its batch stored or,
    for a rejected item, the row as quarantined; absent where neither is there (a newer version
    replaced it, or its day was archived)."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for source in sorted({i.source for i in items}):
        wanted = [(i.batch_id, i.record_index, i.record_key) for i in items if i.source == source]
        found.update(_key_rows(conn, source, wanted))
    rejected = [(i.batch_id, i.record_index) for i in items if i.status == "rejected"]
    if rejected:
        batches, indexes = (list(x) for x in zip(*rejected, strict=True))
        for b, i, payload in conn.execute(
            "SELECT q.batch_id, q.record_index, q.payload FROM ops.quarantine q "
            "JOIN unnest(%s::text[], %s::int[]) AS w(b, i) ON q.batch_id = w.b AND q.record_index = w.i",
            (batches, indexes),
        ).fetchall():
            found.setdefault((b, i), json.loads(payload))
    by_key = {(i.batch_id, i.record_index): i for i in items}
    return {
        key: {c: row.get(c) for c in measures(by_key[key].source, by_key[key].reasons)}
        for key, row in found.items()
    }


def replaced_by(conn: psycopg.Connection, items: Sequence[ReviewItem]) -> dict[tuple[str, int], str]:
    """Per listed pending item whose flagged version a newer one replaced: the batch of the version
    stored under its key now (`review.flagged_version`'s "batch B replaced the flagged version"; a
    decision on it closes it as superseded and changes nothing). Items whose key holds no version (an
    archived day) or the flagged one are absent, as are decided items."""
    found: dict[tuple[str, int], str] = {}
    pending = [i for i in items if i.status == "pending"]
    for source in sorted({i.source for i in pending}):
        wanted = [(i.batch_id, i.record_index, i.record_key) for i in pending if i.source == source]
        for b, i, row in _by_key(conn, source, wanted, same_batch=False):
            found[(b, i)] = row["batch_id"]
    return found


def _iso(value: datetime | str) -> str:
    """A time in UTC, ISO 8601 (the session's timezone may be another)."""
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else str(value)


def _neighbours(
    conn: psycopg.Connection,
    item: ReviewItem,
    keys: dict[str, str],
    flagged: dict[str, Any] | None,
    vee: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """Up to NEIGHBOURS stored records of the item's meter (node, station) either side of it, in time
    order, and the record under its key (the flagged one, marked; from the quarantine when a reject
    took it out); a meter reading's with its interval in the VEE series."""
    contract = contract_for(item.source)
    entity, at = contract.key
    columns = measures(item.source, item.reasons)
    meter = item.source == "meter_readings"
    shown = [at, *columns, "quality_flags", "batch_id"]
    if meter:
        shown.insert(1, "interval_minutes")
    picked: sql.Composable = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in shown)
    if meter:
        picked = sql.SQL("{}, v.status, v.energy_kwh").format(picked)
        source: sql.Composable = sql.SQL(
            "ops.meter_readings t LEFT JOIN ops.vee_readings v "
            "ON v.meter_id = t.meter_id AND v.reading_start = t.reading_start"
        )
    else:
        source = sql.SQL("ops.{} t").format(sql.Identifier(contract.table))
    part = "(SELECT {picked} FROM {source} WHERE t.{entity} = %(e)s AND t.{at} {op} %(t)s ORDER BY t.{at} {order} LIMIT {n})"
    parts = [
        sql.SQL(part).format(
            picked=picked,
            source=source,
            entity=sql.Identifier(entity),
            at=sql.Identifier(at),
            op=sql.SQL(op),
            order=sql.SQL(order),
            n=sql.Literal(NEIGHBOURS),
        )
        for op, order in (("<", "DESC"), ("=", "ASC"), (">", "ASC"))
    ]
    rows = conn.execute(sql.SQL(" UNION ALL ").join(parts), {"e": keys[entity], "t": keys[at]}).fetchall()
    names = [*shown, *(("vee_status", "vee_kwh") if meter else ())]
    records = sorted((dict(zip(names, r, strict=True)) for r in rows), key=lambda r: r[at])
    when = datetime.fromisoformat(keys[at].replace("Z", "+00:00"))
    out: list[dict[str, Any]] = []
    for record in records:
        record["flagged"] = record[at] == when
        record["stored"] = True
        out.append(record)
    if not any(r["flagged"] for r in out):  # not stored under its key: rejected, or its day archived
        ghost: dict[str, Any] = {c: None for c in names}
        ghost.update({c: flagged.get(c) for c in names if flagged and c in flagged and c != at})
        if vee is not None:
            ghost.update({"vee_status": vee["status"], "vee_kwh": vee["energy_kwh"]})
        ghost.update({at: when, "flagged": True, "stored": False})
        out.append(ghost)
        out.sort(key=lambda r: r[at])
    for record in out:
        record["at"] = _iso(record.pop(at))
    return out


def _vee(conn: psycopg.Connection, keys: dict[str, str]) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT status, energy_kwh, original_kwh, method, reasons, edited_by, batch_id, local_date, "
        "processed_at FROM ops.vee_readings WHERE meter_id = %s AND reading_start = %s",
        (keys["meter_id"], keys["reading_start"]),
    ).fetchone()
    if row is None:
        return None
    names = ("status", "energy_kwh", "original_kwh", "method", "reasons", "edited_by", "batch_id")
    found = dict(zip(names, row[:7], strict=True))
    found["local_date"] = row[7].isoformat()
    found["processed_at"] = row[8].isoformat()
    return found


def vee_words(vee: dict[str, Any] | None) -> str:
    """The interval in the billing-grade series, in words."""
    if vee is None:
        return "no VEE series for this interval yet (VEE processes its day with the refresh: metrify run)"
    status = vee["status"]
    words = f"{status} {num(vee['energy_kwh'])} kWh" if vee["energy_kwh"] is not None else status
    words += f" by {vee['method']}" if vee["method"] not in (None, "", "none", status) else ""
    if vee["original_kwh"] is not None and vee["original_kwh"] != vee["energy_kwh"]:
        words += f", original {num(vee['original_kwh'])} kWh"
    if vee["reasons"]:
        words += f" (VEE reasons: {vee['reasons']})"
    if vee["edited_by"]:
        words += f", edited by {vee['edited_by']}"
    return words + f"; local day {vee['local_date']}"


def _spike(
    conn: psycopg.Connection, item: ReviewItem, keys: dict[str, str], value: float | None, cfg: RuleConfig
) -> dict[str, Any]:
    """The rule: above spike_factor x the meter's median in its batch, and above spike_floor_kwh."""
    rows = conn.execute(
        "SELECT reading_start, energy_kwh FROM ops.meter_readings WHERE meter_id = %s AND batch_id = %s",
        (keys["meter_id"], item.batch_id),
    ).fetchall()
    when = datetime.fromisoformat(keys["reading_start"].replace("Z", "+00:00"))
    basis = [float(kwh) for at, kwh in rows if at != when]
    if value is not None:
        basis.append(float(value))  # the rule's median counts the flagged reading itself
    rule = f"the rule flags a reading above {num(cfg.spike_factor)} x that median and above {num(cfg.spike_floor_kwh)} kWh"
    figures: dict[str, Any] = {
        "value_kwh": value,
        "batch_median_kwh": median(basis) if basis else None,
        "batch_readings": len(basis),
        "spike_factor": cfg.spike_factor,
        "spike_floor_kwh": cfg.spike_floor_kwh,
    }
    mid = figures["batch_median_kwh"]
    if value is None or mid is None:
        text = f"spike: the flagged value is not stored; {rule}"
    else:
        times = f"{num(value / mid)} x" if mid > 0 else "above"
        text = (
            f"spike: {num(value)} kWh is {times} this meter's median in batch {item.batch_id} "
            f"({num(mid)} kWh over its {len(basis)} readings of that batch); {rule}"
        )
        figures["times_median"] = value / mid if mid > 0 else None
    return {"code": "spike", "text": text, "figures": figures}


def _zero_run(conn: psycopg.Connection, keys: dict[str, str], cfg: RuleConfig) -> dict[str, Any]:
    """The rule: a zero reading in a run of >= zero_run_length back-to-back intervals of one meter."""
    when = datetime.fromisoformat(keys["reading_start"].replace("Z", "+00:00"))
    rows = conn.execute(
        "SELECT reading_start, interval_minutes, energy_kwh FROM ops.meter_readings WHERE meter_id = %s "
        "AND reading_start BETWEEN %s AND %s ORDER BY reading_start",
        (keys["meter_id"], when - ZERO_RUN_WINDOW, when + ZERO_RUN_WINDOW),
    ).fetchall()
    at = next((n for n, r in enumerate(rows) if r[0] == when), None)
    rule = f"the rule flags zero readings in a run of {cfg.zero_run_length} or more back-to-back intervals (in one batch)"
    if at is None or rows[at][2] != 0:
        return {
            "code": "zero_run",
            "text": f"zero_run: the flagged zero reading is not stored; {rule}",
            "figures": {"run_length": None, "zero_run_length": cfg.zero_run_length},
        }

    def follows(a: Any, b: Any) -> bool:  # b starts where a ends, and both read 0
        return b[0] == a[0] + timedelta(minutes=a[1]) and a[2] == 0 and b[2] == 0

    first = last = at
    while first > 0 and follows(rows[first - 1], rows[first]):
        first -= 1
    while last < len(rows) - 1 and follows(rows[last], rows[last + 1]):
        last += 1
    length = last - first + 1
    # A run that reaches the window's edge may go on beyond it.
    edge = (
        rows[first][0] - timedelta(minutes=rows[first][1]) < when - ZERO_RUN_WINDOW
        or rows[last][0] + timedelta(minutes=rows[last][1]) > when + ZERO_RUN_WINDOW
    )
    end = rows[last][0] + timedelta(minutes=rows[last][1])
    text = (
        f"zero_run: 0 kWh, in a run of {'at least ' if edge else ''}{length} back-to-back zero intervals "
        f"({_iso(rows[first][0])} to {_iso(end)}) in the stored series; {rule}"
    )
    return {
        "code": "zero_run",
        "text": text,
        "figures": {
            "run_length": length,
            "run_from": _iso(rows[first][0]),
            "run_to": _iso(end),
            "zero_run_length": cfg.zero_run_length,
        },
    }


def _band(code: str, column: str, value: float | None, low: float, high: float, band: str) -> dict[str, Any]:
    unit = UNITS[column]
    name = {"voltage_v": "voltage", "frequency_hz": "frequency"}[column]
    shown = f"{num(value)} {unit}" if value is not None else "not stored"
    return {
        "code": code,
        "text": f"{code}: {name} {shown} is outside {num(low)}-{num(high)} {unit} ({band})",
        "figures": {
            column: value,
            "low": round(low, 6),
            "high": round(high, 6),
        },  # 253, not 253.00000000000003
    }


def explain(
    conn: psycopg.Connection, item: ReviewItem, keys: dict[str, str], flagged: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Each of the item's reasons in words, with the figures its rule decides on (the rules' default
    thresholds, which the ingest applies: quality/rules.py's `RuleConfig`)."""
    from metrify_assets.quality.rules import RuleConfig  # pandas: only for `show`

    cfg = RuleConfig()
    row = flagged or {}
    why: list[dict[str, Any]] = []
    for code in item.reasons.split(","):
        if item.source == "meter_readings" and code == "spike":
            why.append(_spike(conn, item, keys, row.get("energy_kwh"), cfg))
        elif item.source == "meter_readings" and code == "zero_run":
            why.append(_zero_run(conn, keys, cfg))
        elif code == "voltage_out_of_range" and item.source in ("meter_readings", "grid_status"):
            nominal = (
                cfg.meter_nominal_voltage_v if item.source == "meter_readings" else cfg.grid_nominal_voltage_v
            )
            tol = cfg.voltage_tolerance
            words = f"{num(nominal)} V +/- {num(tol * 100)}%"
            low, high = nominal * (1 - tol), nominal * (1 + tol)
            why.append(_band(code, "voltage_v", row.get("voltage_v"), low, high, words))
        elif item.source == "grid_status" and code == "frequency_out_of_range":
            hz, width = cfg.grid_nominal_hz, cfg.frequency_statutory_hz
            words = f"{num(hz)} Hz +/- {num(width)} Hz, the statutory band"
            why.append(_band(code, "frequency_hz", row.get("frequency_hz"), hz - width, hz + width, words))
        elif item.source == "meter_readings" and code == "power_factor_out_of_range":
            pf = row.get("power_factor")
            text = f"{code}: power factor {num(pf) if pf is not None else 'not stored'}; "
            text += f"the rule flags |pf| below {num(cfg.power_factor_min_abs)}"
            figures = {"power_factor": pf, "min_abs": cfg.power_factor_min_abs}
            why.append({"code": code, "text": text, "figures": figures})
        else:
            why.append(
                {"code": code, "text": f"{code}: flagged by a record rule (docs/quality.md)", "figures": {}}
            )
    return why


def audit_target(batch_id: str, record_index: int) -> str:
    """The audit log's target of an item's decisions (`metrify audit --target`)."""
    return f"review:{batch_id}#{record_index}"


HISTORY_LIMIT = 100  # entries of one item's history shown (a reopen per decision: far more than any has)


def history(conn: psycopg.Connection, item: ReviewItem) -> list[dict[str, Any]]:
    """The item's `review.*` audit entries, oldest first (one read of `ops.audit_log`'s target index):
    `at`, `action` (approve, reject, reopen), `actor`, `account`, `channel`, `note`, `status` (the
    item's status after it) and for a reopen what it took back (`reopened`, `decided_by`,
    `decision_note`)."""
    rows = conn.execute(
        "SELECT at, action, actor, account, channel, details FROM ops.audit_log "
        "WHERE target = %s AND starts_with(action, 'review.') ORDER BY at, id LIMIT %s",
        (audit_target(item.batch_id, item.record_index), HISTORY_LIMIT),
    ).fetchall()
    return [
        {
            "at": at.isoformat(),
            "action": action.removeprefix("review."),
            "actor": actor,
            "account": account,
            "channel": channel,
            **{k: details.get(k) for k in ("note", "status", "reopened", "decided_by", "decision_note")},
        }
        for at, action, actor, account, channel, details in rows
    ]


def context(
    conn: psycopg.Connection, item: ReviewItem, keys: dict[str, str], flagged: dict[str, Any] | None
) -> dict[str, Any]:
    """`why`, `neighbours`, `vee` (None for grid and weather records, and before VEE ran) and
    `history` of an item whose natural key is `keys`; `flagged`: the flagged version's row (stored by
    its batch, or as a reject quarantined it), None when neither is there."""
    vee = _vee(conn, keys) if item.source == "meter_readings" else None
    return {
        "why": explain(conn, item, keys, flagged),
        "neighbours": _neighbours(conn, item, keys, flagged, vee),
        "vee": vee,
        "history": history(conn, item),
    }
