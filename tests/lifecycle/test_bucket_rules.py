"""S3 bucket lifecycle rules from the policy: their values, S3's constraints, and applying them to S3
over HTTP (moto's server, which stores rules but never runs them)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from metrify_assets.cli.lifecycle import register
from metrify_assets.lifecycle.bucket_rules import (
    TAG_KEY,
    TAG_VALUE,
    BucketRulesError,
    apply_bucket_rules,
    bucket_lifecycle_rules,
    validate_rules,
)
from metrify_assets.lifecycle.policy import TIERED_DATASETS, Policy, RawRetention, TierAges
from metrify_assets.resources.lake import Lake

TAGS = [{"Key": "metrify-lifecycle", "Value": "tiered"}]


def by_id(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["ID"]: rule for rule in config["Rules"]}


def test_default_policy_rules() -> None:
    rules = by_id(bucket_lifecycle_rules(Policy()))
    assert list(rules) == [
        "metrify/tiers/meter_readings",
        "metrify/tiers/grid_status",
        "metrify/tiers/weather_observations",
        "metrify/raw",
        "metrify/reports",
        "metrify/housekeeping",
    ]
    for dataset in TIERED_DATASETS:
        # Ages 90 and 365 from the data's day; the object is written the day after: Days = age - 1.
        assert rules[f"metrify/tiers/{dataset}"] == {
            "ID": f"metrify/tiers/{dataset}",
            "Status": "Enabled",
            "Filter": {"And": {"Prefix": f"curated/{dataset}/", "Tags": TAGS}},
            "Transitions": [
                {"Days": 89, "StorageClass": "STANDARD_IA"},
                {"Days": 364, "StorageClass": "GLACIER"},
            ],
        }
    assert rules["metrify/raw"] == {
        "ID": "metrify/raw",
        "Status": "Enabled",
        "Filter": {"Prefix": "raw/"},
        # 30 - 1 = 29 is under S3's 30-day minimum for STANDARD_IA: raised to 30 (later, never earlier).
        "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],
        "Expiration": {"Days": 399},
    }
    assert rules["metrify/reports"] == {
        "ID": "metrify/reports",
        "Status": "Enabled",
        "Filter": {"Prefix": "reports/quality/dt="},
        "Expiration": {"Days": 89},
    }
    assert rules["metrify/housekeeping"] == {
        "ID": "metrify/housekeeping",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        "Expiration": {"ExpiredObjectDeleteMarker": True},
    }
    unversioned = by_id(bucket_lifecycle_rules(Policy(), versioned=False))["metrify/housekeeping"]
    assert unversioned == {
        "ID": "metrify/housekeeping",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }


def test_the_tag_is_the_one_tier_objects_are_written_with() -> None:
    from metrify_assets.lifecycle.tiers import TIER_TAG

    assert {TAG_KEY: TAG_VALUE} == TIER_TAG


def test_custom_policy_rules_under_a_lake_prefix() -> None:
    policy = Policy(
        ages={
            "meter_readings": TierAges(
                hot_days=14, warm_days=60, cold_days=200, archive_class="DEEP_ARCHIVE", expire_days=3650
            ),
            "grid_status": TierAges(hot_days=7, warm_days=120, cold_days=120),  # no cold tier
            "weather_observations": TierAges(hot_days=7, warm_days=20, cold_days=45),  # floors apply
        },
        raw=RawRetention(ia_days=None, days=60),
        reports_days=None,
    )
    rules = by_id(bucket_lifecycle_rules(policy, prefix="/lake/prod/"))
    base = "metrify@lake/prod"
    assert list(rules) == [
        f"{base}/tiers/meter_readings",
        f"{base}/tiers/grid_status",
        f"{base}/tiers/weather_observations",
        f"{base}/raw",
        f"{base}/housekeeping",
    ]
    meters = rules[f"{base}/tiers/meter_readings"]
    assert meters["Filter"] == {"And": {"Prefix": "lake/prod/curated/meter_readings/", "Tags": TAGS}}
    assert meters["Transitions"] == [
        {"Days": 59, "StorageClass": "STANDARD_IA"},
        {"Days": 199, "StorageClass": "DEEP_ARCHIVE"},
    ]
    assert meters["Expiration"] == {"Days": 3649}
    assert rules[f"{base}/tiers/grid_status"]["Transitions"] == [{"Days": 119, "StorageClass": "GLACIER"}]
    # STANDARD_IA raised from 19 to 30, the archive from 44 to 30 days after it.
    assert rules[f"{base}/tiers/weather_observations"]["Transitions"] == [
        {"Days": 30, "StorageClass": "STANDARD_IA"},
        {"Days": 60, "StorageClass": "GLACIER"},
    ]
    assert rules[f"{base}/raw"] == {
        "ID": f"{base}/raw",
        "Status": "Enabled",
        "Filter": {"Prefix": "lake/prod/raw/"},
        "Expiration": {"Days": 59},
    }
    assert rules[f"{base}/housekeeping"]["Filter"] == {"Prefix": "lake/prod/"}


@given(
    warm=st.integers(1, 800),
    cold_extra=st.integers(0, 800),
    expire_extra=st.one_of(st.none(), st.integers(1, 800)),
    archive_class=st.sampled_from(["GLACIER", "DEEP_ARCHIVE"]),
)
def test_rules_never_act_before_the_policy_and_floors_never_delay_an_expiration(
    warm: int, cold_extra: int, expire_extra: int | None, archive_class: str
) -> None:
    cold = warm + cold_extra
    expire = None if expire_extra is None else cold + expire_extra
    ages = TierAges(
        hot_days=1, warm_days=warm, cold_days=cold, archive_class=archive_class, expire_days=expire
    )
    policy = Policy(ages=dict.fromkeys(TIERED_DATASETS, ages))
    try:
        rules = by_id(bucket_lifecycle_rules(policy))
    except ValueError as err:
        # Only an expiration the S3 minimums pushed a transition past is refused.
        assert expire is not None and "expir" in str(err)
        return
    rule = rules["metrify/tiers/meter_readings"]
    days = {t["StorageClass"]: t["Days"] for t in rule["Transitions"]}
    if cold > warm:
        assert days["STANDARD_IA"] >= max(warm - 1, 30)
    assert days[archive_class] >= cold - 1
    if expire is not None:
        assert rule["Expiration"] == {"Days": expire - 1}


def test_policies_without_valid_s3_rules_are_refused() -> None:
    early_expiry = Policy().with_ages(
        "weather_observations", hot_days=5, warm_days=10, cold_days=20, expire_days=40
    )
    with pytest.raises(
        ValueError, match=r"weather_observations expire_days: expiring at 40 days .* before the last"
    ):
        bucket_lifecycle_rules(early_expiry)
    raw_expiry = Policy(raw=RawRetention(ia_days=10, days=20))
    with pytest.raises(
        ValueError, match=r"raw days: expiring at 20 days \(S3 Days 19\) .*at S3 Days 30 \(STANDARD_IA"
    ):
        bucket_lifecycle_rules(raw_expiry)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"Transitions": [{"Days": 10, "StorageClass": "STANDARD_IA"}]}, "at least 30 days after creation"),
        (
            {
                "Transitions": [
                    {"Days": 30, "StorageClass": "STANDARD_IA"},
                    {"Days": 45, "StorageClass": "GLACIER"},
                ]
            },
            "at least 30 days after the STANDARD_IA one",
        ),
        (
            {
                "Transitions": [
                    {"Days": 100, "StorageClass": "GLACIER"},
                    {"Days": 40, "StorageClass": "STANDARD_IA"},
                ]
            },
            "ascending",
        ),
        ({"Transitions": [{"Days": 40, "StorageClass": "STANDARD"}]}, "cannot transition to 'STANDARD'"),
        (
            {"Transitions": [{"Days": 40, "StorageClass": "STANDARD_IA"}], "Expiration": {"Days": 40}},
            "must come after the last transition",
        ),
        ({"Expiration": {"Days": 0}}, "expiration Days must be an integer >= 1"),
        (
            {
                "Filter": {"And": {"Prefix": "a/", "Tags": TAGS}},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            },
            "AbortIncompleteMultipartUpload cannot be used with a tag filter",
        ),
        ({"Expiration": {"ExpiredObjectDeleteMarker": True, "Days": 3}}, "cannot be combined with Days"),
        ({"Status": "On", "Expiration": {"Days": 3}}, "Status must be Enabled or Disabled"),
        ({"Filter": None, "Expiration": {"Days": 3}}, "a Filter is required"),
        ({}, "no action"),
    ],
)
def test_validate_rules_names_the_broken_constraint(rule: dict[str, Any], message: str) -> None:
    full = {"ID": "r1", "Status": "Enabled", "Filter": {"Prefix": "x/"}, **rule}
    with pytest.raises(ValueError, match=message):
        validate_rules({"Rules": [full]})


def test_validate_rules_rejects_duplicate_ids_and_empty_configurations() -> None:
    rule = {"ID": "same", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 3}}
    with pytest.raises(ValueError, match="duplicate rule ID"):
        validate_rules({"Rules": [rule, dict(rule)]})
    with pytest.raises(ValueError, match="non-empty list of Rules"):
        validate_rules({"Rules": []})


def test_a_local_lake_has_nothing_to_apply(tmp_path: Path) -> None:
    message = apply_bucket_rules(Lake(str(tmp_path / "lake")), bucket_lifecycle_rules(Policy()))
    assert "is a local directory: there are no bucket rules to apply" in message
    assert "pipeline performs the transitions" in message


def _bucket(object_lock: bool) -> str:
    name = f"rules-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
    return name


def _stored(bucket: str) -> dict[str, Any]:
    return by_id(boto3.client("s3").get_bucket_lifecycle_configuration(Bucket=bucket))


@pytest.mark.s3
def test_rules_applied_to_s3_read_back_equal_and_others_rules_kept(s3_endpoint: str) -> None:
    bucket = _bucket(object_lock=True)
    s3 = boto3.client("s3")
    foreign = {
        "ID": "team-x/logs",
        "Status": "Enabled",
        "Filter": {"Prefix": "logs/"},
        "Expiration": {"Days": 7},
    }
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [foreign]})
    lake = Lake(f"s3://{bucket}/lake")
    rules = bucket_lifecycle_rules(Policy(), prefix=lake.prefix)

    message = apply_bucket_rules(lake, rules)
    assert (
        f"applied 6 lifecycle rules to s3://{bucket} ({s3_endpoint})" in message and "team-x/logs" in message
    )
    stored = _stored(bucket)
    assert {k: v for k, v in stored.items() if k != "team-x/logs"} == by_id(rules)
    assert stored["team-x/logs"] == foreign

    # Applying a changed policy replaces Metrify's rules (none left behind), keeps the others.
    changed = bucket_lifecycle_rules(Policy(reports_days=None), prefix=lake.prefix)
    apply_bucket_rules(lake, changed)
    stored = _stored(bucket)
    assert set(stored) == {"team-x/logs", *by_id(changed)}
    assert "metrify@lake/reports" not in stored


@pytest.mark.s3
def test_expiring_rules_are_refused_on_a_bucket_without_object_lock(s3_endpoint: str) -> None:
    bucket = _bucket(object_lock=False)
    lake = Lake(f"s3://{bucket}")
    rules = bucket_lifecycle_rules(Policy(), versioned=False)
    with pytest.raises(BucketRulesError, match=r"no S3 Object Lock.*legal hold"):
        apply_bucket_rules(lake, rules)
    assert "applied 6 lifecycle rules" in apply_bucket_rules(lake, rules, require_object_lock=False)
    assert _stored(bucket) == by_id(rules)


@pytest.mark.s3
def test_a_missing_bucket_is_a_clear_error(s3_endpoint: str) -> None:
    lake = Lake("s3://no-such-bucket-for-rules")
    with pytest.raises(
        BucketRulesError,
        match=r"GetBucketLifecycleConfiguration on s3://no-such-bucket-for-rules at http://127\.0\.0\.1:\d+ .*NoSuchBucket",
    ):
        apply_bucket_rules(lake, bucket_lifecycle_rules(Policy()), require_object_lock=False)


class _NotImplemented(BaseHTTPRequestHandler):
    """An S3-compatible store without bucket lifecycle configuration: 501 NotImplemented to everything."""

    def _refuse(self) -> None:
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code>'
            b"<Message>A header you provided implies functionality that is not implemented</Message></Error>"
        )
        self.send_response(501)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = _refuse  # noqa: N815 - http.server's method names

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotImplemented)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield endpoint
    server.shutdown()
    server.server_close()


def test_an_endpoint_without_lifecycle_support_gives_a_clear_message(refusing_endpoint: str) -> None:
    lake = Lake("s3://metrify-lake")
    with pytest.raises(BucketRulesError) as caught:
        apply_bucket_rules(lake, bucket_lifecycle_rules(Policy()), require_object_lock=False)
    message = str(caught.value)
    assert f"s3://metrify-lake at {refusing_endpoint} refused: NotImplemented" in message
    assert "the pipeline performs the transitions itself" in message


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_rules_prints_the_configuration_and_a_local_lake_has_nothing_to_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.delenv("METRIFY_LAKE_URL", raising=False)
    result = CliRunner().invoke(_cli(), ["lifecycle", "rules", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == bucket_lifecycle_rules(Policy())
    table = CliRunner().invoke(_cli(), ["lifecycle", "rules", "--apply"])
    assert table.exit_code == 0, table.output
    assert "metrify/tiers/meter_readings" in table.output and "STANDARD_IA at 89 d" in table.output
    assert "local directory: there are no bucket rules to apply" in table.output


@pytest.mark.s3
def test_cli_rules_apply_on_s3(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    unlocked = _bucket(object_lock=False)
    monkeypatch.setenv("METRIFY_LAKE_URL", f"s3://{unlocked}/lake")
    refused = CliRunner().invoke(_cli(), ["lifecycle", "rules", "--apply"])
    assert refused.exit_code == 1 and "--without-object-lock" in refused.output
    assert "Traceback" not in refused.output

    locked = _bucket(object_lock=True)
    monkeypatch.setenv("METRIFY_LAKE_URL", f"s3://{locked}/lake")
    applied = CliRunner().invoke(_cli(), ["lifecycle", "rules", "--apply", "--json"])
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout) == bucket_lifecycle_rules(Policy(), prefix="lake")
    assert "read them back unchanged" in applied.stderr
    assert _stored(locked) == by_id(bucket_lifecycle_rules(Policy(), prefix="lake"))


@pytest.mark.s3
def test_cli_rules_apply_honours_a_dry_run_from_the_config_file_or_the_flag(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user who wrote `dry_run: true` expects nothing applied: `rules --apply --config` put the rules
    on the bucket all the same (the file's dry_run was dropped), and said nothing of it."""
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    locked = _bucket(object_lock=True)
    monkeypatch.setenv("METRIFY_LAKE_URL", f"s3://{locked}/lake")
    config = tmp_path / "lc.yaml"
    config.write_text("dry_run: true\nas_of: 2026-06-01\nraw_days: 500\n")
    planned = CliRunner().invoke(_cli(), ["lifecycle", "rules", "--apply", "--config", str(config), "--json"])
    assert planned.exit_code == 0, planned.output
    expected = bucket_lifecycle_rules(Policy(raw=RawRetention(ia_days=30, days=500)), prefix="lake")
    assert json.loads(planned.stdout) == expected  # the file's policy is printed
    said = " ".join(planned.stderr.split())
    assert f"dry run (from dry_run: true in {config}); policy from {config}" in said
    assert f"as_of 2026-06-01 in {config} is not used" in said
    assert f"dry run (from dry_run: true in {config}): would apply 6 lifecycle rules to s3://{locked}" in said
    assert "nothing was put on the bucket" in said
    with pytest.raises(boto3.client("s3").exceptions.ClientError, match="NoSuchLifecycleConfiguration"):
        boto3.client("s3").get_bucket_lifecycle_configuration(Bucket=locked)

    # --dry-run does the same, and still makes the checks the apply would fail on.
    unlocked = _bucket(object_lock=False)
    monkeypatch.setenv("METRIFY_LAKE_URL", f"s3://{unlocked}/lake")
    refused = CliRunner().invoke(_cli(), ["lifecycle", "rules", "--apply", "--dry-run"])
    assert refused.exit_code == 1 and "has no S3 Object Lock" in refused.output
    checked = CliRunner().invoke(
        _cli(), ["lifecycle", "rules", "--apply", "--dry-run", "--without-object-lock"]
    )
    assert checked.exit_code == 0, checked.output
    assert "dry run (from --dry-run): would apply 6 lifecycle rules" in " ".join(checked.output.split())
    with pytest.raises(boto3.client("s3").exceptions.ClientError, match="NoSuchLifecycleConfiguration"):
        boto3.client("s3").get_bucket_lifecycle_configuration(Bucket=unlocked)

    # A file without dry_run applies, and says so first.
    applying = tmp_path / "apply.yaml"
    applying.write_text("raw_days: 500\n")
    monkeypatch.setenv("METRIFY_LAKE_URL", f"s3://{locked}/lake")
    planned = CliRunner().invoke(
        _cli(), ["lifecycle", "rules", "--config", str(applying), "--json"]
    )  # without --apply: printed, nothing put either way
    assert planned.exit_code == 0, planned.output
    assert f"not a dry run; policy from {applying}" in planned.stderr
