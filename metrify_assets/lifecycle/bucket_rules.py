"""S3 bucket lifecycle rules that mirror the lifecycle policy, for a lake on a real S3 bucket.

The pipeline performs every transition itself (`Lake.set_storage_class`), on S3 and on a local
directory alike, so tests and non-AWS stores behave the same and nothing here is required. On AWS the
bucket rules are a second line: should the pipeline stop running, S3 still moves and expires the
lake's objects on the policy's schedule (never before it, see the day offset below).

What the rules select:

- the tier objects of each tiered dataset: prefix `curated/<dataset>/` AND tag
  `metrify-lifecycle=tiered` (the data objects carry the tag, the manifests beside them do not, so
  manifests stay STANDARD and readable); STANDARD_IA at `warm_days`, the archive class at
  `cold_days`, expired at `expire_days` when set;
- raw batches, `raw/`: STANDARD_IA at `raw.ia_days`, expired at `raw.days`;
- dated quality reports, `reports/quality/dt=`: expired at `reports_days` (as the pipeline's retention:
  `reports/quality/latest.html` and the site-wide docs under `reports/` are rebuilt, not expired);
- housekeeping, the whole lake prefix: incomplete multipart uploads aborted after 7 days and, on a
  versioned (Object Lock) bucket, noncurrent versions expired 1 day after they became noncurrent and
  expired delete markers removed.

Day offset. Metrify's ages count whole days from the data's day (a partition's `dt=`); an S3 rule's
`Days` count from the object's creation, and S3 rounds creation + Days up to the next midnight UTC. A
day's tier object is written the day after its day (a raw batch on its arrival day), so
`Days = age - 1`: an object written on its day or later reaches `Days` at the policy's age or after
it, never before (a day's curated object, written the next day, moves one day after the pipeline
would have moved it; S3 also runs its rules asynchronously, within about a day). Rewriting or moving
an object (CopyObject) starts its S3 clock again, which can only make a rule later, not earlier.

Floors. AWS rejects a configuration whose STANDARD_IA transition comes before 30 days or whose archive
transition comes less than 30 days after the STANDARD_IA one (PutBucketLifecycleConfiguration,
InvalidArgument). The generated `Days` are raised to those minimums (later than the policy, so still
never early); expirations are never moved later (that would keep data longer than the policy allows):
an expiration the floors push past a transition is a `ValueError`. The generated configuration is then
checked by `validate_rules`, which a hand-written configuration can use too.

Since September 2024 S3 by default transitions no object under 128 KB
(`TransitionDefaultMinimumObjectSize` = `all_storage_classes_128K`): small daily objects (a small
fleet's day, weather, grid) stay STANDARD under these rules. That is cheaper for them (STANDARD_IA
bills at least 128 KB an object, GLACIER adds 40 KB of index per object) and the pipeline still moves
them; `apply_bucket_rules` keeps whatever the bucket has configured.

Legal holds: on an Object Lock bucket S3 cannot delete a version under a legal hold, so an expiration
there only places a delete marker (the held version stays, noncurrent, until the hold is lifted).
On a bucket without Object Lock an expiration deletes outright, holds or not: `apply_bucket_rules`
refuses rules that expire anything there unless told otherwise.
"""

from __future__ import annotations

from typing import Any

from metrify_assets.lifecycle.policy import TIERED_DATASETS, Policy, TierAges
from metrify_assets.resources.lake import ARCHIVE_CLASSES, Lake

TAG_KEY = "metrify-lifecycle"
TAG_VALUE = "tiered"
IA_CLASSES = ("STANDARD_IA", "ONEZONE_IA")
TRANSITION_CLASSES = (*IA_CLASSES, "INTELLIGENT_TIERING", "GLACIER_IR", *ARCHIVE_CLASSES)
IA_MIN_DAYS = 30  # a STANDARD_IA / ONEZONE_IA transition: at least 30 days after creation
IA_TO_ARCHIVE_DAYS = 30  # an archive transition: at least 30 days after the STANDARD_IA one
NONCURRENT_DAYS = 1
ABORT_MULTIPART_DAYS = 7
DATED_REPORTS_PREFIX = "reports/quality/dt="  # the dated reports the pipeline's retention expires
MAX_RULES = 1000  # per bucket
MAX_ID_LENGTH = 255
# Errors from endpoints that do not serve bucket lifecycle configuration (or not to this caller).
_REFUSED = ("NotImplemented", "MethodNotAllowed", "AccessDenied", "XNotImplemented", "InvalidRequest")


class BucketRulesError(RuntimeError):
    """Applying or reading back the bucket's lifecycle configuration failed; the message says why."""


def s3_days(age_days: int) -> int:
    """An S3 rule's `Days` for a Metrify age (see the module's day offset): `age - 1`, at least 0."""
    return max(age_days - 1, 0)


def rule_id_base(prefix: str = "") -> str:
    """The prefix of every rule ID Metrify owns in a bucket (one per lake prefix, so two lakes in one
    bucket keep their own rules): `metrify`, or `metrify@<prefix>`."""
    prefix = prefix.strip("/")
    return f"metrify@{prefix}" if prefix else "metrify"


def _key_prefix(prefix: str, key: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key


def _tier_transitions(ages: TierAges) -> list[dict[str, Any]]:
    transitions: list[dict[str, Any]] = []
    ia_days: int | None = None
    if ages.cold_days > ages.warm_days:  # equal ages: the cold tier is empty, warm goes to archive
        ia_days = max(s3_days(ages.warm_days), IA_MIN_DAYS)
        transitions.append({"Days": ia_days, "StorageClass": "STANDARD_IA"})
    archive_days = s3_days(ages.cold_days)
    if ia_days is not None:
        archive_days = max(archive_days, ia_days + IA_TO_ARCHIVE_DAYS)
    transitions.append({"Days": archive_days, "StorageClass": ages.archive_class})
    return transitions


def _expiration(what: str, age_days: int, transitions: list[dict[str, Any]]) -> dict[str, int]:
    days = max(s3_days(age_days), 1)
    last = max((t["Days"] for t in transitions), default=0)
    if transitions and days <= last:
        raise ValueError(
            f"{what}: expiring at {age_days} days (S3 Days {days}) would come before the last transition "
            f"at S3 Days {last} ({transitions[-1]['StorageClass']}; S3's minimums raised it): expire later, "
            "or drop the transition"
        )
    return {"Days": days}


def bucket_lifecycle_rules(policy: Policy, prefix: str = "", versioned: bool = True) -> dict[str, Any]:
    """The `LifecycleConfiguration` (`{"Rules": [...]}`) for `policy`, on a lake under the key prefix
    `prefix` (the `s3://bucket/<prefix>` of the lake URL). `versioned`: the bucket keeps versions
    (Object Lock buckets do, and legal holds need Object Lock); adds the noncurrent-version cleanup.

    Rule IDs are stable: `<base>/tiers/<dataset>`, `<base>/raw`, `<base>/reports`,
    `<base>/housekeeping`, with `<base>` from `rule_id_base(prefix)`. `ValueError` when the policy has
    no valid S3 equivalent (see the module docstring)."""
    base = rule_id_base(prefix)
    rules: list[dict[str, Any]] = []
    for dataset in TIERED_DATASETS:
        ages = policy.tier_ages(dataset)
        transitions = _tier_transitions(ages)
        rule: dict[str, Any] = {
            "ID": f"{base}/tiers/{dataset}",
            "Status": "Enabled",
            "Filter": {
                "And": {
                    "Prefix": _key_prefix(prefix, f"curated/{dataset}/"),
                    "Tags": [{"Key": TAG_KEY, "Value": TAG_VALUE}],
                }
            },
            "Transitions": transitions,
        }
        if ages.expire_days is not None:
            rule["Expiration"] = _expiration(f"{dataset} expire_days", ages.expire_days, transitions)
        rules.append(rule)

    raw = policy.raw
    if raw.ia_days is not None or raw.days is not None:
        rule = {"ID": f"{base}/raw", "Status": "Enabled", "Filter": {"Prefix": _key_prefix(prefix, "raw/")}}
        raw_transitions: list[dict[str, Any]] = []
        if raw.ia_days is not None:
            raw_transitions.append(
                {"Days": max(s3_days(raw.ia_days), IA_MIN_DAYS), "StorageClass": "STANDARD_IA"}
            )
            rule["Transitions"] = raw_transitions
        if raw.days is not None:
            rule["Expiration"] = _expiration("raw days", raw.days, raw_transitions)
        rules.append(rule)

    if policy.reports_days is not None:
        rules.append(
            {
                "ID": f"{base}/reports",
                "Status": "Enabled",
                "Filter": {"Prefix": _key_prefix(prefix, DATED_REPORTS_PREFIX)},
                "Expiration": _expiration("reports_days", policy.reports_days, []),
            }
        )

    housekeeping: dict[str, Any] = {
        "ID": f"{base}/housekeeping",
        "Status": "Enabled",
        "Filter": {"Prefix": _key_prefix(prefix, "")},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
    }
    if versioned:
        housekeeping["NoncurrentVersionExpiration"] = {"NoncurrentDays": NONCURRENT_DAYS}
        housekeeping["Expiration"] = {"ExpiredObjectDeleteMarker": True}
    rules.append(housekeeping)

    config = {"Rules": rules}
    validate_rules(config)
    return config


def _has_tags(rule_filter: dict[str, Any]) -> bool:
    return "Tag" in rule_filter or bool(rule_filter.get("And", {}).get("Tags"))


def validate_rules(config: dict[str, Any]) -> None:
    """Check a `LifecycleConfiguration` against the constraints S3 enforces (PutBucketLifecycleConfiguration
    answers InvalidArgument / MalformedXML otherwise); `ValueError` naming the rule and the constraint.

    Checked: 1-1000 rules with unique IDs of at most 255 characters; a filter and at least one action
    per rule; transition Days >= 0, >= 30 for STANDARD_IA / ONEZONE_IA, ascending, and an archive class
    at least 30 days after a STANDARD_IA one; expiration Days >= 1 and after every transition;
    ExpiredObjectDeleteMarker without Days; no tag filter with AbortIncompleteMultipartUpload or
    ExpiredObjectDeleteMarker; NoncurrentDays >= 1."""
    rules = config.get("Rules")
    if not isinstance(rules, list) or not rules:
        raise ValueError("a lifecycle configuration needs a non-empty list of Rules")
    if len(rules) > MAX_RULES:
        raise ValueError(f"{len(rules)} rules: S3 allows at most {MAX_RULES} per bucket")
    seen: set[str] = set()
    for rule in rules:
        rid = str(rule.get("ID", ""))
        where = f"rule {rid!r}"
        if not rid or len(rid) > MAX_ID_LENGTH:
            raise ValueError(f"{where}: an ID of 1 to {MAX_ID_LENGTH} characters is required")
        if rid in seen:
            raise ValueError(f"{where}: duplicate rule ID")
        seen.add(rid)
        if rule.get("Status") not in ("Enabled", "Disabled"):
            raise ValueError(f"{where}: Status must be Enabled or Disabled")
        rule_filter = rule.get("Filter")
        if not isinstance(rule_filter, dict):
            raise ValueError(f"{where}: a Filter is required (an empty Prefix selects the whole bucket)")
        actions = (
            "Transitions",
            "Expiration",
            "NoncurrentVersionTransitions",
            "NoncurrentVersionExpiration",
            "AbortIncompleteMultipartUpload",
        )
        if not any(rule.get(a) for a in actions):
            raise ValueError(f"{where}: no action (transition, expiration, noncurrent or multipart cleanup)")

        last_days = -1
        ia_days: int | None = None
        for transition in rule.get("Transitions", []):
            days, storage_class = transition.get("Days"), transition.get("StorageClass")
            if storage_class not in TRANSITION_CLASSES:
                raise ValueError(f"{where}: cannot transition to {storage_class!r}")
            if not isinstance(days, int) or days < 0:
                raise ValueError(f"{where}: transition Days must be an integer >= 0, got {days!r}")
            if storage_class in IA_CLASSES:
                if days < IA_MIN_DAYS:
                    raise ValueError(
                        f"{where}: a {storage_class} transition must be at least {IA_MIN_DAYS} days after "
                        f"creation, got {days}"
                    )
                ia_days = days
            if days <= last_days:
                raise ValueError(
                    f"{where}: transitions must be in ascending Days, got {days} after {last_days}"
                )
            if (
                storage_class in ARCHIVE_CLASSES
                and ia_days is not None
                and days < ia_days + IA_TO_ARCHIVE_DAYS
            ):
                raise ValueError(
                    f"{where}: the {storage_class} transition (Days {days}) must come at least "
                    f"{IA_TO_ARCHIVE_DAYS} days after the STANDARD_IA one (Days {ia_days})"
                )
            last_days = days

        expiration = rule.get("Expiration")
        if expiration:
            if expiration.get("ExpiredObjectDeleteMarker"):
                if "Days" in expiration or "Date" in expiration:
                    raise ValueError(
                        f"{where}: ExpiredObjectDeleteMarker cannot be combined with Days or Date"
                    )
                if _has_tags(rule_filter):
                    raise ValueError(f"{where}: ExpiredObjectDeleteMarker cannot be used with a tag filter")
            elif "Days" in expiration:
                days = expiration["Days"]
                if not isinstance(days, int) or days < 1:
                    raise ValueError(f"{where}: expiration Days must be an integer >= 1, got {days!r}")
                if days <= last_days:
                    raise ValueError(
                        f"{where}: expiration (Days {days}) must come after the last transition (Days {last_days})"
                    )
        noncurrent = rule.get("NoncurrentVersionExpiration")
        if noncurrent and int(noncurrent.get("NoncurrentDays", 0)) < 1:
            raise ValueError(f"{where}: NoncurrentDays must be >= 1")
        if rule.get("AbortIncompleteMultipartUpload") and _has_tags(rule_filter):
            raise ValueError(f"{where}: AbortIncompleteMultipartUpload cannot be used with a tag filter")


def expires_anything(config: dict[str, Any]) -> bool:
    """Whether a rule deletes current objects (an expiration with Days or a Date)."""
    return any(
        "Days" in (r.get("Expiration") or {}) or "Date" in (r.get("Expiration") or {})
        for r in config.get("Rules", [])
        if r.get("Status") == "Enabled"
    )


def _canonical(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule without empty values, for comparing what was sent with what S3 stored."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            # An empty Prefix and no Prefix select the same objects (S3 may return either).
            return {k: clean(v) for k, v in sorted(value.items()) if v not in (None, "", [], {})}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    canonical = clean(rule)
    assert isinstance(canonical, dict)
    return canonical


def _refused(action: str, lake: Lake, err: Exception) -> BucketRulesError:
    from botocore.exceptions import ClientError

    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", "")
        hint = (
            " (this endpoint or these credentials do not serve bucket lifecycle configuration: the "
            "pipeline performs the transitions itself, so the lake works without bucket rules)"
            if code in _REFUSED
            else ""
        )
        return BucketRulesError(
            f"{action} on s3://{lake.bucket} at {lake.endpoint} refused: {code}: {message}{hint}"
        )
    return BucketRulesError(
        f"{action} on s3://{lake.bucket} at {lake.endpoint} failed: {type(err).__name__}: {err}"
    )


def object_lock_enabled(lake: Lake) -> bool | None:
    """Whether the lake's bucket has S3 Object Lock enabled; None when the endpoint does not say."""
    from botocore.exceptions import ClientError

    try:
        answer = lake._s3.get_object_lock_configuration(Bucket=lake.bucket)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code == "ObjectLockConfigurationNotFoundError":
            return False
        return None
    return bool(answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")


def bucket_versioned(lake: Lake) -> bool:
    """Whether the lake's bucket keeps versions (Enabled or Suspended)."""
    status = lake._s3.get_bucket_versioning(Bucket=lake.bucket).get("Status")
    return status in ("Enabled", "Suspended")


def apply_bucket_rules(
    lake: Lake, rules: dict[str, Any], require_object_lock: bool = True, dry_run: bool = False
) -> str:
    """Put `rules` on the lake's bucket and read the configuration back to confirm; returns what was done.
    With `dry_run`, every check and read happens (versioning, Object Lock, the bucket's rules and
    S3's limit) and nothing is put: returns what would be done.

    S3's call replaces the bucket's whole configuration: rules of other owners (IDs not under this
    lake's `rule_id_base`) are kept, Metrify's own are replaced, and the bucket's
    `TransitionDefaultMinimumObjectSize` is kept. A local lake: nothing to apply (the pipeline moves its
    objects itself). `require_object_lock`: refuse rules that expire objects on a bucket without
    Object Lock, where they would delete data under a legal hold. Raises `BucketRulesError` (a clear
    message) when the endpoint refuses or the read-back differs, `ValueError` for invalid rules."""
    if not lake.is_s3:
        return (
            f"{lake.url} is a local directory: there are no bucket rules to apply; the lifecycle "
            "pipeline performs the transitions and expirations itself"
        )
    validate_rules(rules)
    from botocore.exceptions import BotoCoreError, ClientError

    if require_object_lock and expires_anything(rules):
        try:
            locked = object_lock_enabled(lake)
        except (BotoCoreError, ClientError) as err:
            raise _refused("GetObjectLockConfiguration", lake, err) from err
        if locked is not True:
            raise BucketRulesError(
                f"s3://{lake.bucket} has no S3 Object Lock{'' if locked is False else ' (or does not say)'}: "
                "its expiration rules would delete objects under a legal hold. Use a bucket created with "
                "Object Lock, or apply without that check (CLI: --without-object-lock) if no hold will "
                "ever be needed"
            )

    base = rule_id_base(lake.prefix)
    ours = {r["ID"] for r in rules["Rules"]}
    try:
        current = lake._s3.get_bucket_lifecycle_configuration(Bucket=lake.bucket)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
            raise _refused("GetBucketLifecycleConfiguration", lake, err) from err
        current = {}
    except BotoCoreError as err:
        raise _refused("GetBucketLifecycleConfiguration", lake, err) from err
    kept = [
        r
        for r in current.get("Rules", [])
        if r.get("ID") not in ours and not str(r.get("ID", "")).startswith(f"{base}/")
    ]
    merged = {"Rules": kept + list(rules["Rules"])}
    if len(merged["Rules"]) > MAX_RULES:  # the others' rules are theirs to validate, not ours
        raise BucketRulesError(
            f"s3://{lake.bucket} would have {len(merged['Rules'])} lifecycle rules with {len(kept)} of "
            f"others kept: S3 allows at most {MAX_RULES}"
        )
    note = (
        f"; kept {len(kept)} rule(s) of others: {', '.join(str(r.get('ID')) for r in kept)}" if kept else ""
    )
    if dry_run:
        return (
            f"would apply {len(rules['Rules'])} lifecycle rules to s3://{lake.bucket} ({lake.endpoint}){note}; "
            "nothing was put on the bucket"
        )
    extra: dict[str, Any] = {}
    if current.get("TransitionDefaultMinimumObjectSize"):
        extra["TransitionDefaultMinimumObjectSize"] = current["TransitionDefaultMinimumObjectSize"]
    try:
        lake._s3.put_bucket_lifecycle_configuration(
            Bucket=lake.bucket, LifecycleConfiguration=merged, **extra
        )
        stored = lake._s3.get_bucket_lifecycle_configuration(Bucket=lake.bucket)
    except (BotoCoreError, ClientError) as err:
        raise _refused("PutBucketLifecycleConfiguration", lake, err) from err

    stored_by_id = {r.get("ID"): _canonical(r) for r in stored.get("Rules", [])}
    differing = [r["ID"] for r in rules["Rules"] if stored_by_id.get(r["ID"]) != _canonical(r)]
    if differing:
        raise BucketRulesError(
            f"s3://{lake.bucket} at {lake.endpoint} accepted the rules but reads back different ones for "
            f"{', '.join(differing)}"
        )
    minimum = stored.get("TransitionDefaultMinimumObjectSize")
    return (
        f"applied {len(rules['Rules'])} lifecycle rules to s3://{lake.bucket} ({lake.endpoint}) and read them "
        f"back unchanged{note}" + (f"; transition minimum object size: {minimum}" if minimum else "")
    )
