"""What the data costs to keep, tier by tier, against keeping it all hot.

`measure` takes the footprint: the hot tables' size in PostgreSQL (tables + indexes + TOAST), the
lake's tier copies by storage class from `ops.lifecycle_days`, and the raw batches by storage class
from one listing of `raw/`. `cost_report` prices it with a `PriceTable` and estimates what the same
rows would cost if every one of them stayed in PostgreSQL (at the hot tier's measured bytes per row),
with the raw batches kept at STANDARD.

Storage only: requests, transitions, retrievals, early-deletion charges, database instance hours and
IOPS are not included. The lake's manifests (small STANDARD objects, one per day) are left out.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import psycopg

from metrify_assets.lifecycle.policy import TierAges
from metrify_assets.resources.lake import ARCHIVE_CLASSES, Lake

GIB = 2**30  # AWS bills storage per GB of 2^30 bytes
SMALL_OBJECT_BYTES = 128 * 1024  # STANDARD_IA's minimum billable object size, S3's lifecycle default minimum
ARCHIVE_OVERHEAD_BYTES = 32 * 1024  # per GLACIER / DEEP_ARCHIVE object, billed at the archive class's price
ARCHIVE_INDEX_BYTES = 8 * 1024  # per GLACIER / DEEP_ARCHIVE object, billed at STANDARD's price
HOT_TABLES = {
    "meter_readings": "ops.meter_readings",
    "grid_status": "ops.grid_status",
    "weather_observations": "ops.weather_observations",
}
# Above this many rows (planner statistics) a hot table's rows are estimated, not counted.
ESTIMATE_ROWS_ABOVE = 1_000_000
CLASS_TIER = {"STANDARD": "warm", "STANDARD_IA": "cold", "GLACIER": "archive", "DEEP_ARCHIVE": "archive"}
CLASS_ORDER = ("STANDARD", "STANDARD_IA", "GLACIER", "DEEP_ARCHIVE")
HOT_CLASS = "PostgreSQL"


@dataclass(frozen=True)
class PriceTable:
    """Storage prices in USD per GB-month (GB = 2^30 bytes, as AWS bills).

    Defaults: AWS us-east-1 list prices as published in 2026 (first 50 TB of STANDARD); configurable
    (`from_json`) for another region, a discount or another store. `hot_postgres` assumes Amazon RDS for
    PostgreSQL on gp3 storage, Multi-AZ: $0.115 per GB-month for the primary's volume and as much for
    the standby's (IOPS and throughput within gp3's baseline, backups within the free allowance).

    `ia_min_object`: STANDARD_IA bills an object under 128 KiB as 128 KiB. `archive_object_overhead`:
    S3 adds 32 KiB at the archive class's price and 8 KiB at STANDARD's to each GLACIER / DEEP_ARCHIVE
    object. Set both false for a store without them."""

    hot_postgres: float = 0.23
    standard: float = 0.023
    standard_ia: float = 0.0125
    glacier: float = 0.0036
    deep_archive: float = 0.00099
    ia_min_object: bool = True
    archive_object_overhead: bool = True
    as_of: str = "2026"
    source: str = "AWS us-east-1 list prices; hot: RDS PostgreSQL gp3 Multi-AZ (primary + standby)"

    def __post_init__(self) -> None:
        for name in ("hot_postgres", "standard", "standard_ia", "glacier", "deep_archive"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"price {name} must be a number >= 0 (USD per GB-month), got {value!r}")
        for name in ("ia_min_object", "archive_object_overhead"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("as_of", "source"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, got {getattr(self, name)!r}")

    def per_gb(self, storage_class: str) -> float:
        """The price of a storage class (`PostgreSQL` for the hot tier); KeyError for one without a price."""
        return {
            HOT_CLASS: self.hot_postgres,
            "STANDARD": self.standard,
            "STANDARD_IA": self.standard_ia,
            "GLACIER": self.glacier,
            "DEEP_ARCHIVE": self.deep_archive,
        }[storage_class]

    @classmethod
    def from_json(cls, path: str | Path) -> PriceTable:
        """Prices from a JSON object with any of the fields (the others keep their defaults); an unknown
        key or a wrong type is a `ValueError` naming it."""
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not JSON: {err}") from err
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of prices, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"{path}: unknown price key(s) {', '.join(unknown)}; known: {', '.join(known)}")
        try:
            return cls(**data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Stored:
    """Objects of one storage class: total bytes, count, those under 128 KiB, rows they hold (None:
    not known, e.g. raw batches)."""

    storage_class: str
    bytes: int = 0
    objects: int = 0
    small_objects: int = 0
    small_bytes: int = 0
    rows: int | None = None


@dataclass(frozen=True)
class HotTable:
    dataset: str
    table: str
    bytes: int  # pg_total_relation_size: heap, indexes, TOAST
    rows: int
    rows_estimated: bool  # from planner statistics (a large table), not counted


@dataclass(frozen=True)
class StorageFootprint:
    hot: tuple[HotTable, ...]
    lake: tuple[Stored, ...]  # tier copies by storage class (ops.lifecycle_days)
    raw: tuple[Stored, ...]  # raw batches by storage class (a listing of raw/)
    lake_only_rows: dict[str, int] = field(default_factory=dict)  # by dataset: rows no longer hot

    @property
    def hot_bytes(self) -> int:
        return sum(t.bytes for t in self.hot)

    @property
    def hot_rows(self) -> int:
        return sum(t.rows for t in self.hot)

    @property
    def raw_bytes(self) -> int:
        return sum(s.bytes for s in self.raw)


def _class_key(storage_class: str) -> tuple[int, str]:
    return (
        CLASS_ORDER.index(storage_class) if storage_class in CLASS_ORDER else len(CLASS_ORDER),
        storage_class,
    )


def _hot_table(conn: psycopg.Connection, dataset: str, table: str) -> HotTable:
    row = conn.execute(
        "SELECT pg_total_relation_size(c.oid), c.reltuples::bigint FROM pg_class c WHERE c.oid = %s::regclass",
        (table,),
    ).fetchone()
    assert row is not None
    size, estimate = int(row[0]), int(row[1])
    if estimate >= ESTIMATE_ROWS_ABOVE:  # -1: never analyzed
        return HotTable(dataset, table, size, estimate, True)
    counted = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # a fixed table name
    assert counted is not None
    return HotTable(dataset, table, size, int(counted[0]), False)


def measure(conn: psycopg.Connection, lake: Lake) -> StorageFootprint:
    """The footprint now: hot tables' sizes and rows, the lake's tier copies (as `ops.lifecycle_days`
    records them) and the raw batches (one listing of `raw/`, sizes and classes from it)."""
    hot = tuple(_hot_table(conn, dataset, table) for dataset, table in HOT_TABLES.items())
    rows = conn.execute(
        """
        SELECT dataset, storage_class, count(*), coalesce(sum(bytes), 0),
               count(*) FILTER (WHERE bytes < %(small)s), coalesce(sum(bytes) FILTER (WHERE bytes < %(small)s), 0),
               coalesce(sum(row_count), 0), coalesce(sum(row_count) FILTER (WHERE hot_deleted_at IS NOT NULL), 0)
        FROM ops.lifecycle_days GROUP BY dataset, storage_class
        """,
        {"small": SMALL_OBJECT_BYTES},
    ).fetchall()
    by_class: dict[str, Stored] = {}
    lake_only: dict[str, int] = {}
    for dataset, storage_class, objects, size, small, small_size, row_count, gone in rows:
        prev = by_class.get(storage_class, Stored(storage_class, rows=0))
        by_class[storage_class] = Stored(
            storage_class,
            prev.bytes + int(size),
            prev.objects + int(objects),
            prev.small_objects + int(small),
            prev.small_bytes + int(small_size),
            (prev.rows or 0) + int(row_count),
        )
        lake_only[dataset] = lake_only.get(dataset, 0) + int(gone)
    raw: dict[str, Stored] = {}
    for _key, size, storage_class in lake.list_sizes("raw/"):
        prev = raw.get(storage_class, Stored(storage_class))
        small = size < SMALL_OBJECT_BYTES
        raw[storage_class] = Stored(
            storage_class,
            prev.bytes + size,
            prev.objects + 1,
            prev.small_objects + int(small),
            prev.small_bytes + (size if small else 0),
        )
    return StorageFootprint(
        hot=hot,
        lake=tuple(sorted(by_class.values(), key=lambda s: _class_key(s.storage_class))),
        raw=tuple(sorted(raw.values(), key=lambda s: _class_key(s.storage_class))),
        lake_only_rows=lake_only,
    )


@dataclass(frozen=True)
class TierCost:
    tier: str  # hot, warm, cold, archive, raw
    storage_class: str  # PostgreSQL or an S3 storage class
    bytes: int
    objects: int | None
    rows: int | None
    monthly_usd: float


@dataclass(frozen=True)
class CostReport:
    lines: tuple[TierCost, ...]
    monthly_usd: float
    all_hot_bytes: int | None  # the hot rows and the lake's rows at the hot bytes per row
    all_hot_monthly_usd: float | None  # those bytes at the hot price, raw batches at STANDARD
    ratio: float | None  # monthly_usd / all_hot_monthly_usd
    prices: PriceTable
    notes: tuple[str, ...] = ()

    @property
    def savings_pct(self) -> float | None:
        return None if self.ratio is None else round(100 * (1 - self.ratio), 1)

    def rows(self) -> list[tuple[str, ...]]:
        """Display rows (tier, storage, bytes, objects, rows, USD/month), totals last: for a rich table."""
        out: list[tuple[str, ...]] = [
            (
                line.tier,
                line.storage_class,
                human_bytes(line.bytes),
                "-" if line.objects is None else f"{line.objects:,}",
                "-" if line.rows is None else f"{line.rows:,}",
                usd(line.monthly_usd),
            )
            for line in self.lines
        ]
        out.append(
            ("total", "", human_bytes(sum(x.bytes for x in self.lines)), "", "", usd(self.monthly_usd))
        )
        if self.all_hot_bytes is not None and self.all_hot_monthly_usd is not None:
            raw = sum(x.bytes for x in self.lines if x.tier == "raw")
            out.append(
                (
                    "all hot (estimate)",
                    f"{HOT_CLASS} + raw at STANDARD",
                    human_bytes(self.all_hot_bytes + raw),
                    "",
                    "",
                    usd(self.all_hot_monthly_usd),
                )
            )
        return out

    def summary(self) -> str:
        if self.ratio is None:
            return (
                f"{usd(self.monthly_usd)} USD/month; all-hot estimate not available (no hot rows to measure)"
            )
        return (
            f"{usd(self.monthly_usd)} USD/month, {self.ratio:.3f} x the all-hot estimate "
            f"({usd(self.all_hot_monthly_usd or 0.0)} USD/month): {self.savings_pct} % saved"
        )

    def markdown(self) -> str:
        header = ("tier", "storage", "bytes", "objects", "rows", "USD/month")
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        lines += ["", self.summary(), "", f"Prices: {self.prices.source} ({self.prices.as_of})."]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": [asdict(line) for line in self.lines],
            "monthly_usd": self.monthly_usd,
            "all_hot_bytes": self.all_hot_bytes,
            "all_hot_monthly_usd": self.all_hot_monthly_usd,
            "ratio": self.ratio,
            "savings_pct": self.savings_pct,
            "prices": self.prices.as_dict(),
            "notes": list(self.notes),
        }


def usd(amount: float) -> str:
    """Dollars for display: cents from 1 USD, three significant digits below (a small lake's cost)."""
    if amount >= 1 or amount == 0:
        return f"{amount:,.2f}"
    return f"{amount:.3g}"


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def stored_monthly_usd(stored: Stored, prices: PriceTable) -> float:
    """A storage class's objects per month: bytes at the class's price, with S3's per-object minimums
    (when the price table has them)."""
    price = prices.per_gb(stored.storage_class)
    billable = stored.bytes
    if stored.storage_class == "STANDARD_IA" and prices.ia_min_object:
        billable += stored.small_objects * SMALL_OBJECT_BYTES - stored.small_bytes
    cost = billable / GIB * price
    if stored.storage_class in ARCHIVE_CLASSES and prices.archive_object_overhead:
        cost += (
            stored.objects * (ARCHIVE_OVERHEAD_BYTES * price + ARCHIVE_INDEX_BYTES * prices.standard) / GIB
        )
    return cost


def _all_hot_bytes(footprint: StorageFootprint) -> int | None:
    total_rows = footprint.hot_rows
    overall = footprint.hot_bytes / total_rows if total_rows else None
    estimate = 0.0
    for table in footprint.hot:
        lake_rows = footprint.lake_only_rows.get(table.dataset, 0)
        per_row = table.bytes / table.rows if table.rows else overall
        if lake_rows and per_row is None:
            return None
        estimate += table.bytes + (per_row or 0.0) * lake_rows
    return round(estimate)


def cost_report(footprint: StorageFootprint, prices: PriceTable | None = None) -> CostReport:
    """Price the footprint tier by tier and against the all-hot estimate: each dataset's rows that left
    PostgreSQL at that dataset's hot bytes per row (all datasets' when it has no hot rows), added to the
    hot tables, at the hot price; raw batches at STANDARD."""
    prices = prices or PriceTable()
    notes: list[str] = []
    lines = [
        TierCost(
            "hot",
            HOT_CLASS,
            footprint.hot_bytes,
            None,
            footprint.hot_rows,
            footprint.hot_bytes / GIB * prices.hot_postgres,
        )
    ]
    if any(t.rows_estimated for t in footprint.hot):
        notes.append("hot rows of large tables are the planner's estimate (pg_class.reltuples), not a count")
    for tier, group in (("lake", footprint.lake), ("raw", footprint.raw)):
        for stored in group:
            try:
                usd = stored_monthly_usd(stored, prices)
            except KeyError:
                usd = stored_monthly_usd(Stored("STANDARD", stored.bytes, stored.objects), prices)
                notes.append(f"{stored.storage_class} has no price in the table: priced as STANDARD")
            name = CLASS_TIER.get(stored.storage_class, "lake") if tier == "lake" else "raw"
            lines.append(TierCost(name, stored.storage_class, stored.bytes, stored.objects, stored.rows, usd))
            if stored.storage_class == "STANDARD_IA" and stored.small_objects and prices.ia_min_object:
                notes.append(
                    f"{tier}: {stored.small_objects:,} STANDARD_IA object(s) under 128 KiB are billed as 128 KiB "
                    "each (S3 bucket rules leave such objects in STANDARD by default)"
                )
    monthly = sum(line.monthly_usd for line in lines)
    all_hot_bytes = _all_hot_bytes(footprint)
    all_hot_usd = None
    ratio = None
    if all_hot_bytes is not None and footprint.hot_rows:
        all_hot_usd = all_hot_bytes / GIB * prices.hot_postgres + footprint.raw_bytes / GIB * prices.standard
        ratio = monthly / all_hot_usd if all_hot_usd else None
    else:
        notes.append("no hot rows to measure bytes per row: the all-hot estimate is not available")
    if footprint.lake and not footprint.lake_only_rows:
        notes.append("no day has left the hot tier yet: the lake holds copies of hot days only")
    return CostReport(
        tuple(lines), monthly, all_hot_bytes, all_hot_usd, ratio, prices, tuple(dict.fromkeys(notes))
    )


def steady_state_days(ages: TierAges, days_of_data: int) -> dict[str, int]:
    """Days of data in each tier once `days_of_data` days have accumulated under `ages` (expired days
    left out): hot up to `hot_days`; warm (STANDARD) up to `warm_days`, which includes the copies of
    the hot days; cold (STANDARD_IA) from `warm_days` to `cold_days`; archive beyond."""
    end = min(days_of_data, ages.expire_days) if ages.expire_days is not None else days_of_data
    return {
        "hot": min(ages.hot_days, end),
        "warm": min(ages.warm_days, end),
        "cold": max(min(ages.cold_days, end) - ages.warm_days, 0),
        "archive": max(end - ages.cold_days, 0),
    }
