"""What the lifecycle keeps where, and for how long: tier ages per source and retention per dataset.

Ages count whole days from a day (the partition: the meter's local day, the UTC day for grid and
weather) to the lifecycle's clock. Defaults follow the platform's design: hot PostgreSQL to 30 days,
warm lake (S3 STANDARD) to 90, cold (STANDARD_IA) to 365, archive (GLACIER) beyond, kept forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from metrify_assets.resources.lake import ARCHIVE_CLASSES

TIERS = ("hot", "warm", "cold", "archive")
LAKE_TIERS = ("warm", "cold", "archive")
TIERED_DATASETS = ("meter_readings", "grid_status", "weather_observations")
# The tiered datasets whose rows name a meter (`tables.TABLES`' meter_column): a meter's legal hold
# keeps data of these only, never a grid or weather day.
METERED_DATASETS = ("meter_readings",)
# Datasets with a retention of their own (docs/lifecycle.md has what each covers).
RETAINED_DATASETS = ("raw", "quarantine", "reports", "ops")
DATASETS = TIERED_DATASETS + RETAINED_DATASETS
# Days a restored day stays hot before the hot window applies to it again (`metrify restore --keep-days`).
DEFAULT_KEEP_DAYS = 30
MAX_KEEP_DAYS = 3650  # ten years: a day wanted hot for longer belongs in the policy's hot window


@dataclass(frozen=True)
class TierAges:
    """A tiered dataset's ages in days: hot until `hot_days`, warm until `warm_days`, cold until
    `cold_days`, archive after; deleted from the archive after `expire_days` (None: never)."""

    hot_days: int = 30
    warm_days: int = 90
    cold_days: int = 365
    archive_class: str = "GLACIER"
    expire_days: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.hot_days <= self.warm_days <= self.cold_days:
            raise ValueError(
                f"tier ages must satisfy 1 <= hot_days <= warm_days <= cold_days, got "
                f"{self.hot_days}, {self.warm_days}, {self.cold_days}"
            )
        if self.archive_class not in ARCHIVE_CLASSES:
            raise ValueError(
                f"archive_class must be one of {', '.join(ARCHIVE_CLASSES)}, got {self.archive_class!r}"
            )
        if self.expire_days is not None and self.expire_days <= self.cold_days:
            raise ValueError(f"expire_days ({self.expire_days}) must be beyond cold_days ({self.cold_days})")

    def lake_tier(self, age_days: int) -> str:
        """The lake tier a day of this age belongs in (a day younger than `warm_days` is warm)."""
        if age_days < self.warm_days:
            return "warm"
        if age_days < self.cold_days:
            return "cold"
        return "archive"

    def storage_class(self, tier: str) -> str:
        return {"warm": "STANDARD", "cold": "STANDARD_IA", "archive": self.archive_class}[tier]

    def hot_expired(self, age_days: int) -> bool:
        return age_days >= self.hot_days

    def expired(self, age_days: int) -> bool:
        return self.expire_days is not None and age_days >= self.expire_days


@dataclass(frozen=True)
class RawRetention:
    """Raw batches (`raw/<source>/dt=<arrival day>/`): STANDARD_IA after `ia_days`, deleted after
    `days` (None: kept). A raw replay (`metrify restore --using raw`) reaches back as far as they do."""

    ia_days: int | None = 30
    days: int | None = 400

    def __post_init__(self) -> None:
        if self.ia_days is not None and self.days is not None and self.ia_days >= self.days:
            raise ValueError(f"raw ia_days ({self.ia_days}) must come before days ({self.days})")


@dataclass(frozen=True)
class Policy:
    """The whole lifecycle policy: tier ages per source, raw retention, and retention in days of the
    quarantine (rows), the lake's reports, the operational log tables and the landing directory's
    ingested files (None: kept)."""

    ages: dict[str, TierAges] = field(default_factory=lambda: {d: TierAges() for d in TIERED_DATASETS})
    raw: RawRetention = RawRetention()
    quarantine_days: int | None = 730
    reports_days: int | None = 90
    ops_days: int | None = 400
    landing_days: int | None = 7

    def __post_init__(self) -> None:
        unknown = set(self.ages) - set(TIERED_DATASETS)
        if unknown:
            raise ValueError(
                f"tier ages for unknown datasets {sorted(unknown)}; tiered: {', '.join(TIERED_DATASETS)}"
            )
        for name in ("quarantine_days", "reports_days", "ops_days", "landing_days"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 day (or None: kept), got {value}")
        if self.landing_days is not None and self.raw.days is not None and self.landing_days >= self.raw.days:
            # A landing file goes only while its raw copy is in the lake: the file is never the last copy.
            raise ValueError(
                f"landing_days ({self.landing_days}) must come before raw days ({self.raw.days})"
            )

    def tier_ages(self, dataset: str) -> TierAges:
        return self.ages.get(dataset, TierAges())

    def with_ages(self, dataset: str, **changes: object) -> Policy:
        ages = dict(self.ages)
        ages[dataset] = replace(self.tier_ages(dataset), **changes)  # type: ignore[arg-type]
        return replace(self, ages=ages)


def age_days(day: date, today: date) -> int:
    return (today - day).days


def day_span(day_prefix: str) -> tuple[date, date]:
    """The days a lake folder covers: `.../dt=2026-03-01/` is one day, `.../dt=2026-03-01_2026-03-07/`
    (a report over a range) its first to last day."""
    span = day_prefix.rstrip("/").rsplit("dt=", 1)[1]
    first, _, last = span.partition("_")
    return date.fromisoformat(first), date.fromisoformat(last or first)
