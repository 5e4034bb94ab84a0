"""The audit log on a real PostgreSQL: every action that changes data writes exactly one entry, in the
change's transaction, through the CLI and the API; the table refuses to be rewritten.

`ops.audit_log` is append-only, so `truncate_ops` keeps it across tests: each test looks at the
entries after its own starting id.
"""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from metrify_assets.alerts import store
from metrify_assets.cli.main import app
from metrify_assets.contracts import METER_READINGS
from metrify_assets.env import Settings, resolve_settings
from metrify_assets.ingestion.assets import landing_spec
from metrify_assets.ingestion.batch import process_batch
from metrify_assets.ingestion.landing import land_lines
from metrify_assets.lifecycle import retention
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.lifecycle.tiers import copy_to_warm
from metrify_assets.observability import audit
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake
from metrify_assets.serving.app import create_app
from metrify_assets.serving.auth import token_id_of
from metrify_assets.storage.audit import Caller, record
from metrify_assets.storage.migrate import truncate_ops
from tests.lifecycle.conftest import FIRST_DAY, seed_hot_days
from tests.serving.test_api import SECRET, token

pytestmark = pytest.mark.postgres

NOW = pd.Timestamp("2026-04-01T00:00:00Z")
DAY = "2026-03-29"
HOST = socket.gethostname()
# Unique to this test: the audit log is append-only, so other tests' entries stay in the session.
REVIEWER = "ana.audit-test"


def reading(meter: str, start: str, kwh: float, **extra: object) -> str:
    return json.dumps(
        {"meter_id": meter, "reading_start": start, "interval_minutes": 15, "energy_kwh": kwh, **extra}
    )


MESSAGES = [
    reading("M1", f"{DAY}T00:00:00Z", 0.5, voltage_v=231.0),
    reading("M1", f"{DAY}T00:15:00Z", 0.6, voltage_v=262.0),  # flagged: voltage_out_of_range
    reading("M1", f"{DAY}T00:30:00Z", 0.7, voltage_v=263.0),  # flagged too
    reading("M1", "2026-04-05T00:00:00Z", 0.4),  # rejected: in the future (NOW); replayable later
]


def ingest(conn: psycopg.Connection, settings: Settings) -> str:
    """Land MESSAGES and process them as the landing sensor's run does; returns the batch id."""
    landed = land_lines(settings.landing_dir, METER_READINGS.source, MESSAGES, seq=1)
    messages = landed.path.read_text().splitlines()
    spec = landing_spec(METER_READINGS, landed)
    lake = Lake(settings.lake_url)
    process_batch(spec, messages, [landed.seq] * len(messages), lake, conn, NOW, received_at=NOW)
    conn.commit()
    return spec.batch_id


def watermark(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(id), 0) FROM ops.audit_log").fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def after(conn: psycopg.Connection, start: int) -> list[audit.AuditEntry]:
    """The entries written after `start`, oldest first."""
    found = [e for e in audit.entries(conn, limit=1000) if e.id > start]
    conn.commit()
    return sorted(found, key=lambda e: e.id)


def summary(entries: list[audit.AuditEntry]) -> list[tuple[object, ...]]:
    return [(e.actor, e.action, e.target, e.channel, e.origin, e.affected) for e in entries]


@pytest.fixture
def settings(tmp_path: Path, pg_resource: PostgresResource, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI on the test database, with a temporary home, lake and Dagster instance."""
    env = {
        "METRIFY_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "METRIFY_POSTGRES_URL": pg_resource.get_url(),
        "METRIFY_LAKE_URL": str(tmp_path / "lake"),
        "COLUMNS": "200",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    return resolve_settings()


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def test_the_log_is_append_only_and_a_rolled_back_change_leaves_no_entry(pg: psycopg.Connection) -> None:
    start = watermark(pg)
    first = record(pg, "auditor", "test.entry", "test:1", {"why": "proof"}, "cli", HOST, 0)
    pg.commit()
    for statement in (
        "UPDATE ops.audit_log SET actor = 'mallory'",
        "DELETE FROM ops.audit_log WHERE id = %s",
        "DELETE FROM ops.audit_log WHERE false",  # refused even when it would match nothing
        "TRUNCATE ops.audit_log",
    ):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            pg.execute(statement, (first,) if "%s" in statement else None)
        pg.rollback()
    # Neither the lifecycle's retention nor the test helper that empties `ops` sweeps it.
    assert "ops.audit_log" not in {table for table, _, _ in retention.OPS_TABLES}
    truncate_ops(pg)
    assert summary(after(pg, start)) == [("auditor", "test.entry", "test:1", "cli", HOST, 0)]

    raised = store.raise_alert(pg, store.Alert("quality", "warning", "meter_readings", "q:1", "score low"))
    pg.commit()
    caller = Caller("ops1", "cli", HOST)
    with pytest.raises(RuntimeError), pg.transaction():
        store.acknowledge(pg, raised.alert_id, "ops1", caller=caller)
        raise RuntimeError("the change fails after its entry was written")
    assert store.get(pg, raised.alert_id).acked_by is None
    assert [e.action for e in after(pg, start)] == ["test.entry"]
    store.acknowledge(pg, raised.alert_id, "ops1", caller=caller)
    pg.commit()
    assert summary(after(pg, start))[1:] == [
        ("ops1", "alert.ack", f"alert:{raised.alert_id}", "cli", HOST, 1)
    ]


def test_every_cli_action_writes_one_entry_and_metrify_audit_lists_them(
    pg: psycopg.Connection, settings: Settings
) -> None:
    batch = ingest(pg, settings)
    start = watermark(pg)
    me = getpass.getuser()

    # Review decisions: one entry each, and one for the VEE edit each becomes.
    invoke("review", "approve", batch, "1", "--by", REVIEWER, "--reason", "tap change")
    invoke("review", "reject", batch, "2", "--by", REVIEWER, "--reason", "bad CT")
    invoke("review", "approve", batch, "2", "--by", REVIEWER, "--reason", "oops", code=1)  # refused: no entry
    assert summary(after(pg, start)) == [
        (REVIEWER, "review.approve", f"review:{batch}#1", "cli", HOST, 1),
        (REVIEWER, "vee.edit", "meter:M1", "cli", HOST, 1),
        (REVIEWER, "review.reject", f"review:{batch}#2", "cli", HOST, 1),  # the stored reading deleted
        (REVIEWER, "vee.edit", "meter:M1", "cli", HOST, 1),
    ]
    decision = after(pg, start)[2]
    assert decision.details == {
        "source": "meter_readings",
        "record_key": f"M1|{DAY}T00:30:00Z",
        "status": "rejected",
        "note": "bad CT",
    }

    # A dead-letter replay (as the OS user): the future reading is accepted now.
    mark = watermark(pg)
    invoke("dlq", "replay", "--batch", batch, "--no-materialise")
    ((actor, action, target, channel, origin, affected),) = summary(after(pg, mark))
    assert (actor, action, channel, origin, affected) == (me, "dlq.replay", "cli", HOST, 1)
    assert target.startswith("batch:replay-meter_readings-")

    # A rollback from raw: one entry; its dry run changes nothing and writes none.
    mark = watermark(pg)
    invoke("restore", "--using", "raw", "--from", DAY, "--dry-run")
    assert after(pg, mark) == []
    invoke("restore", "--using", "raw", "--from", DAY)
    (rebuilt,) = after(pg, mark)
    assert (rebuilt.actor, rebuilt.action, rebuilt.target) == (
        me,
        "rollback.rebuild",
        f"meter_readings:{DAY}..{DAY}",
    )
    assert rebuilt.details["batches_read"] == 1 and rebuilt.affected == 0  # raw holds what was stored

    # Legal holds: place, release, unlock.
    mark = watermark(pg)
    invoke("holds", "add", "--reason", "case 17", "--from", DAY, "--by", "legal@x")
    (hold_id,) = [h["hold_id"] for h in json.loads(invoke("holds", "list", "--json"))]
    invoke("holds", "release", str(hold_id), "--by", "legal@x", "--note", "closed")
    invoke("holds", "unlock", str(hold_id))
    assert summary(after(pg, mark)) == [
        ("legal@x", "hold.place", f"hold:{hold_id}", "cli", HOST, 1),
        ("legal@x", "hold.release", f"hold:{hold_id}", "cli", HOST, 1),
        (me, "hold.unlock", f"hold:{hold_id}", "cli", HOST, 0),
    ]

    # Alerts acknowledged and resolved by hand.
    raised = store.raise_alert(pg, store.Alert("quality", "warning", "meter_readings", "q:2", "score low"))
    pg.commit()
    mark = watermark(pg)
    invoke("alerts", "ack", str(raised.alert_id), "--by", "ops1")
    invoke("alerts", "resolve", str(raised.alert_id), "--by", "ops1", "--note", "fixed")
    assert summary(after(pg, mark)) == [
        ("ops1", "alert.ack", f"alert:{raised.alert_id}", "cli", HOST, 1),
        ("ops1", "alert.resolve", f"alert:{raised.alert_id}", "cli", HOST, 1),
    ]

    # `metrify audit` lists and filters.
    listed = json.loads(invoke("audit", "--actor", REVIEWER, "--since", "1h", "--json"))
    assert [e["action"] for e in listed] == ["vee.edit", "review.reject", "vee.edit", "review.approve"]
    assert {e["action"] for e in json.loads(invoke("audit", "--action", "review", "--json"))} >= {
        "review.approve",
        "review.reject",
    }
    only = json.loads(invoke("audit", "--action", "review.reject", "--limit", "1", "--json"))
    assert [(e["actor"], e["target"]) for e in only] == [(REVIEWER, f"review:{batch}#2")]
    held = json.loads(invoke("audit", "--target", f"hold:{hold_id}", "--json"))
    assert [e["action"] for e in held] == ["hold.unlock", "hold.release", "hold.place"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert json.loads(invoke("audit", "--since", future, "--json")) == []
    table = invoke("audit", "--actor", "legal@x")
    assert "hold.place" in table and "hold.release" in table and "review" not in table
    assert "--since" in invoke("audit", "--since", "yesterday", code=2)


# Unique to the next test, as REVIEWER is to the one above.
NAMED = "rosa.account-test"


def test_a_cli_decision_records_the_os_account_that_ran_it_beside_the_reviewer_named(
    pg: psycopg.Connection, settings: Settings
) -> None:
    """`--by` is typed: `metrify review approve --by rosa...` recorded rosa and nothing of who ran the
    command. Each entry now also has `account`, the OS user (resolved by the CLI, passed down), which
    `metrify audit` shows and filters on. The queue kept only `decided_by` too, so `review list` and
    `show` could not say who was authenticated: the decision now stores it (`decided_account`), and a
    reopen clears it with the rest of the decision."""
    batch = ingest(pg, settings)
    start = watermark(pg)
    me = getpass.getuser()
    invoke("review", "approve", batch, "1", "--by", NAMED, "--reason", "tap change")
    invoke("review", "reopen", batch, "1", "--by", NAMED, "--reason", "second look")
    invoke("review", "reject", batch, "2", "--by", NAMED, "--reason", "bad CT")
    entries = after(pg, start)
    assert [e.action for e in entries if e.action.startswith("review.")] == [
        "review.approve",
        "review.reopen",
        "review.reject",
    ]
    assert {(e.actor, e.account, e.channel, e.token_id) for e in entries} == {(NAMED, me, "cli", None)}
    listed = json.loads(invoke("audit", "--actor", NAMED, "--json"))
    assert len(listed) == len(entries) and {e["account"] for e in listed} == {me}
    assert json.loads(invoke("audit", "--actor", NAMED, "--account", me, "--json")) == listed
    assert json.loads(invoke("audit", "--actor", NAMED, "--account", f"{me}-not", "--json")) == []
    table = invoke("audit", "--actor", NAMED, "--action", "review.approve")
    assert "account" in table
    (row,) = [line for line in table.splitlines() if "review.approve" in line]
    assert row.split("│")[3].strip() == NAMED and row.split("│")[4].strip() == me
    assert row.split("│")[5].strip() == ""  # no token: the CLI authenticates no token
    # The reopen's audit entry keeps the decision it took back, account included.
    (reopened,) = [e for e in entries if e.action == "review.reopen"]
    assert (reopened.details["decided_by"], reopened.details["decided_account"]) == (NAMED, me)

    # The queue: item 2 rejected, with the account; item 1 pending again, its decision cleared.
    items = {i["record_index"]: i for i in json.loads(invoke("review", "list", "--status", "all", "--json"))}
    assert [(i["status"], i["decided_by"], i["decided_account"]) for i in (items[1], items[2])] == [
        ("pending", None, None),
        ("rejected", NAMED, me),
    ]
    table = invoke("review", "list", "--status", "rejected")
    header = next(line for line in table.splitlines() if "decided by" in line)
    (row,) = [line for line in table.splitlines() if NAMED in line]
    assert header.split("┃")[-2].strip() == "account" and row.split("│")[-2].strip() == me
    assert f"decided: rejected by {NAMED} (account {me}) at " in invoke("review", "show", batch, "2")


def test_a_lifecycle_run_and_a_restore_started_by_hand_are_audited(
    pg: psycopg.Connection, settings: Settings
) -> None:
    seed_hot_days(pg, days=1)
    lake = Lake(settings.lake_url)
    assert copy_to_warm(pg, lake, TABLES["meter_readings"], FIRST_DAY, NOW.to_pydatetime()).action == "copied"
    pg.commit()
    start = watermark(pg)
    me = getpass.getuser()
    as_of = str(FIRST_DAY + timedelta(days=32))
    invoke("lifecycle", "run", "--as-of", as_of)
    invoke("restore", "--from", str(FIRST_DAY))
    ran, restored = after(pg, start)
    assert (ran.actor, ran.action, ran.target, ran.channel) == (
        me,
        "lifecycle.run",
        f"lifecycle:{as_of}",
        "cli",
    )
    assert ran.details["rows"]["meter_readings deleted_hot"] == 48 and ran.affected >= 48
    assert summary([restored]) == [(me, "restore.archive", f"meter_readings:{FIRST_DAY}", "cli", HOST, 48)]


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """The data API on the test database (no Kafka: requests are landed; no Redis)."""
    env = {"METRIFY_HOME": str(settings.home), "METRIFY_POSTGRES_URL": settings.postgres_url or ""}
    api_settings = resolve_settings(
        {**env, "METRIFY_API_JWT_SECRET": SECRET, "METRIFY_LAKE_URL": settings.lake_url}
    )
    with TestClient(create_app(api_settings)) as client:
        yield client


def test_the_api_records_the_token_subject_and_the_client_address(
    pg: psycopg.Connection, settings: Settings, api: TestClient
) -> None:
    batch = ingest(pg, settings)
    start = watermark(pg)
    reviewer, gateway = token("review", subject="rev@x"), token("ingest", subject="gw-1")
    decided = api.post(f"/v1/review/items/{batch}/1/approve", json={"note": "real"}, headers=reviewer)
    assert decided.status_code == 200, decided.text
    record = reading("M9", f"{DAY}T01:00:00Z", 0.3)
    bad = api.post("/v1/meter_readings", json={"meter_id": "M9"}, headers=gateway)
    assert bad.status_code == 422  # nothing written, nothing audited
    posted = api.post("/v1/meter_readings", json={"records": [json.loads(record)] * 2}, headers=gateway)
    assert posted.status_code == 202, posted.text
    batch_id = posted.json()["data"]["batch_id"]
    # Starlette's test client connects from the address "testclient".
    assert summary(after(pg, start)) == [
        ("rev@x", "review.approve", f"review:{batch}#1", "api", "testclient", 1),
        ("rev@x", "vee.edit", "meter:M1", "api", "testclient", 1),
        ("gw-1", "ingest.post", f"api_batch:{batch_id}", "api", "testclient", 2),
    ]
    # The token's subject is the account that authenticated each, as the OS user is the CLI's.
    assert [e.account for e in after(pg, start)] == ["rev@x", "rev@x", "gw-1"]
    assert after(pg, start)[-1].details["destination"] == "landing"
    # Each entry names the token the call carried (its jti), so a leaked token's calls can be listed.
    review_id, gateway_id = (
        token_id_of(h["Authorization"].removeprefix("Bearer ")) for h in (reviewer, gateway)
    )
    assert review_id and gateway_id and review_id != gateway_id
    assert [e.token_id for e in after(pg, start)] == [review_id, review_id, gateway_id]
    listed = json.loads(invoke("audit", "--token-id", review_id, "--json"))
    assert [(e["action"], e["token_id"]) for e in listed] == [
        ("vee.edit", review_id),
        ("review.approve", review_id),
    ]
    assert [e["target"] for e in json.loads(invoke("audit", "--token-id", gateway_id, "--json"))] == [
        f"api_batch:{batch_id}"
    ]
    assert json.loads(invoke("audit", "--token-id", f"{gateway_id}-not", "--json")) == []
    table = invoke("audit", "--token-id", gateway_id)
    assert "token" in table and "ingest.post" in table and "review" not in table
    # The decision stores the token's subject as the reviewer and as the account it was made under.
    assert (decided.json()["data"]["decided_by"], decided.json()["data"]["decided_account"]) == (
        "rev@x",
        "rev@x",
    )
    item = api.get(f"/v1/review/items/{batch}/1", headers=reviewer).json()["data"]["item"]
    assert item["decided_account"] == "rev@x"
    page = api.get("/v1/review/items?status=approved", headers=reviewer).json()["data"]
    assert [(i["batch_id"], i["decided_account"]) for i in page] == [(batch, "rev@x")]


def test_an_action_no_entry_has_answers_the_actions_the_log_holds(
    pg: psycopg.Connection, settings: Settings
) -> None:
    """`metrify audit --action reveiw` said only "no audit entries match", as for a real action with
    nothing in the window: a typo looked like an empty log."""
    record(pg, "ann", "review.approve", "review:b#0", affected=1)
    record(pg, "bob", "hold.place", "hold:1", affected=1)
    pg.commit()
    # The log is append-only: other tests' entries stay, so the list holds at least these two.
    table = " ".join(invoke("audit", "--action", "reveiw").split())
    assert table.startswith(
        "no audit entries match; no entry has action 'reveiw' or an action of that family"
    )
    actions = table.split("the log's actions: ")[1].split(", ")
    assert {"hold.place", "review.approve"} <= set(actions) and actions == sorted(actions)
    result = CliRunner().invoke(app, ["audit", "--action", "reveiw", "--json"])
    assert (result.exit_code, result.stdout) == (0, "[]\n")
    assert "the log's actions: " in result.stderr and "review.approve" in result.stderr
    # A known action or family that the other filters leave empty: nothing to hint.
    for args in (["--action", "review", "--actor", "bob"], ["--action", "hold.place", "--actor", "ann"]):
        table = invoke("audit", *args)
        assert "no audit entries match" in table and "no entry has action" not in table, args
