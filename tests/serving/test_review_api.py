"""The review routes on the real app over the session's PostgreSQL: GET /v1/review/items?meter_id= (one
meter's flagged readings, with the filter `metrify review list --meter` uses, quality/review.py's
`ITEM_FILTER`), GET /v1/review/items/{batch_id}/{record_index} (what `metrify review show` shows) and
POST /v1/review/bulk/approve|reject (every pending item a filter selects)."""

from __future__ import annotations

import csv as csv_module
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from metrify_assets.cli.console import to_json
from metrify_assets.env import resolve_settings
from metrify_assets.meters.vee import review as vee_review
from metrify_assets.quality import review, review_context
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake
from metrify_assets.serving.app import create_app
from metrify_assets.serving.auth import issue_token
from tests.quality.test_review_bulk import N, seed

pytestmark = [pytest.mark.postgres]
SECRET = "test-secret-of-at-least-32-bytes-for-hs256"
BULK = "/v1/review/bulk/approve"


def token(*scopes: str, meters: list[str] | None = None, sub: str = "tester") -> dict[str, str]:
    signed = issue_token(SECRET, sub, list(scopes), timedelta(minutes=10), meters=meters)
    return {"Authorization": f"Bearer {signed}"}


@pytest.fixture(scope="module")
def api(pg_resource: PostgresResource, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    env = {
        "METRIFY_HOME": str(tmp_path_factory.mktemp("api-review")),
        "METRIFY_POSTGRES_URL": pg_resource.get_url(),
        "METRIFY_API_JWT_SECRET": SECRET,
    }
    with TestClient(create_app(resolve_settings(env))) as client:
        yield client


@pytest.fixture
def queued(pg: psycopg.Connection) -> psycopg.Connection:
    """Items of meters M1, M2 and M10 (M1 a prefix of M10) and of a grid node named M1 (its key starts
    with `M1|` too, but it is no meter's reading), ties on `flagged_at`, pending and approved."""
    flagged = datetime(2026, 3, 1, tzinfo=UTC)
    for index in range(15):
        grid = index % 5 == 4
        pg.execute(
            "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons, status, "
            "flagged_at) VALUES (%s, %s, %s, %s, 'energy_spike', %s, %s)",
            (
                f"b{index % 2}",
                index,
                "grid_status" if grid else "meter_readings",
                f"{'M1' if grid else ('M1', 'M2', 'M10')[index % 3]}|2026-03-01T{index:02d}:00:00+00:00",
                ("pending", "approved")[index % 2],
                flagged + timedelta(minutes=index % 4),
            ),
        )
    pg.commit()
    return pg


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    return error


def pages(api: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every page of the list, following `next_cursor`."""
    listed: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "cursor": cursor} if cursor else params
        response = api.get("/v1/review/items", params=query, headers=headers)
        assert response.status_code == 200, response.text
        listed += response.json()["data"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return listed


def test_meter_id_lists_that_meters_readings_as_the_cli_does(
    api: TestClient, queued: psycopg.Connection
) -> None:
    headers = token("review")
    for status in ("all", "pending"):
        for meter in ("M1", "M2", "M10", "M9"):
            listed = pages(api, headers, status=status, meter_id=meter, limit=2)
            wanted = None if status == "all" else status
            items = review.list_items(queued, wanted, meter=meter, limit=1000)
            assert [(i["batch_id"], i["record_index"]) for i in listed] == [
                (i.batch_id, i.record_index) for i in items
            ]
            assert len(items) == review.count_items(queued, wanted, meter=meter)
            assert all(i["source"] == "meter_readings" for i in listed)
            assert all(i["record_key"].split("|")[0] == meter for i in listed)
    every_m1 = pages(api, headers, status="all", meter_id="M1")
    assert len(every_m1) == 4  # not M10's readings, nor the grid node M1's samples
    grid = api.get("/v1/review/items", params={"source": "grid_status", "meter_id": "M1"}, headers=headers)
    assert grid.status_code == 200 and grid.json()["data"] == []


def test_the_list_names_the_batch_that_replaced_a_pending_items_flagged_version(
    api: TestClient, queued: psycopg.Connection
) -> None:
    """A pending item whose key now holds another batch's (newer) version was listed as any pending
    one: a decision on it closes it as superseded, which only the item's own page said. The list now
    gives `replaced_by`, that batch (null where the flagged version, or none, is stored)."""
    readings = (
        ("M1", "2026-03-01T00:00:00+00:00", "b9"),  # item b0 #0, pending: replaced by b9
        ("M10", "2026-03-01T02:00:00+00:00", "b0"),  # item b0 #2, pending: its own version stored
        ("M1", "2026-03-01T03:00:00+00:00", "b9"),  # item b1 #3, approved: decided, not marked
    )
    for meter, start, batch in readings:
        queued.execute(
            "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, "
            "record_version, batch_id) VALUES (%s, %s, 15, 0.25, 1, %s)",
            (meter, start, batch),
        )
    queued.commit()
    headers = token("review")
    listed = pages(api, headers, status="all", limit=4)
    replaced = {(i["batch_id"], i["record_index"]): i["replaced_by"] for i in listed}
    assert len(replaced) == 15 and {k: v for k, v in replaced.items() if v} == {("b0", 0): "b9"}
    csv = api.get(
        "/v1/review/items", params={"meter_id": "M1", "format": "csv", "limit": 1}, headers=headers
    ).text.splitlines()
    assert csv[0].endswith(",replaced_by,value") and csv[1].startswith("b0,0,") and csv[1].endswith(",b9,")
    # `value`, as `review list --json` gives it: the flagged version's values where it is stored.
    item = review.get_item(queued, "b0", 2)
    (expected,) = review_context.flagged_values(queued, [item]).values()
    values = {(i["batch_id"], i["record_index"]): i["value"] for i in listed}
    assert values[("b0", 2)] == json.loads(to_json(expected)) and values[("b0", 0)] is None
    page = api.get(
        "/v1/review/items",
        params={"status": "all", "meter_id": "M10", "format": "csv", "limit": 50},
        headers=headers,
    ).text.splitlines()
    (row,) = [r for r in csv_module.reader(page[1:]) if r[:2] == ["b0", "2"]]
    assert json.loads(row[-1]) == values[("b0", 2)]


def test_a_cursor_of_one_meter_is_refused_for_another(api: TestClient, queued: psycopg.Connection) -> None:
    headers = token("review")
    first = api.get(
        "/v1/review/items", params={"status": "all", "meter_id": "M1", "limit": 1}, headers=headers
    ).json()
    assert first["next_cursor"]
    same = {"status": "all", "meter_id": "M1", "cursor": first["next_cursor"]}
    assert api.get("/v1/review/items", params=same, headers=headers).status_code == 200
    for params in ({"status": "all", "meter_id": "M2"}, {"status": "all"}):
        moved = api.get(
            "/v1/review/items", params={**params, "cursor": first["next_cursor"]}, headers=headers
        )
        error = error_of(moved, 400, "bad_cursor")
        assert "cursor was issued for other filters (meter_id=M1&status=all)" in error["message"]
    # and a cursor of the whole list does not continue one meter's
    whole = api.get("/v1/review/items", params={"status": "all", "limit": 1}, headers=headers).json()
    moved = api.get(
        "/v1/review/items",
        params={"status": "all", "meter_id": "M1", "cursor": whole["next_cursor"]},
        headers=headers,
    )
    error_of(moved, 400, "bad_cursor")


def test_a_nul_in_meter_id_is_a_422_naming_it(api: TestClient) -> None:
    response = api.get("/v1/review/items?meter_id=M1%00", headers=token("review"))
    (detail,) = error_of(response, 422, "invalid_parameter")["details"]
    assert (detail["field"], detail["type"]) == ("query.meter_id", "nul_character")


def test_a_meter_limited_token_asks_only_for_its_meters(api: TestClient, queued: psycopg.Connection) -> None:
    limited = token("review", meters=["M2"])
    error_of(api.get("/v1/review/items", params={"meter_id": "M1"}, headers=limited), 403, "meter_forbidden")
    mine = pages(api, limited, status="all", meter_id="M2")
    assert mine == pages(api, limited, status="all")  # its meters' readings either way
    assert mine and {i["record_key"].split("|")[0] for i in mine} == {"M2"}


def test_openapi_documents_meter_id(api: TestClient) -> None:
    operation = api.get("/openapi.json").json()["paths"]["/v1/review/items"]["get"]
    (param,) = [p for p in operation["parameters"] if p["name"] == "meter_id"]
    assert param["in"] == "query" and "--meter" in param["description"]


@pytest.fixture
def seeded(pg: psycopg.Connection, tmp_path: Path) -> psycopg.Connection:
    """N readings of M1 flagged `voltage_out_of_range` on 2026-03-29, one of M2 that day (record 96)
    and one of M1 the next day (record 97)."""
    seed(pg, Lake(str(tmp_path / "lake")))
    return pg


def test_one_item_shows_what_review_show_shows(api: TestClient, seeded: psycopg.Connection) -> None:
    headers = token("review")
    shown = api.get("/v1/review/items/b1/0", headers=headers)
    assert shown.status_code == 200, shown.text
    data = shown.json()["data"]
    assert data == json.loads(to_json(review.show(seeded, "b1", 0)))  # what `metrify review show` prints
    assert data["item"]["status"] == "pending" and data["item"]["reasons"] == "voltage_out_of_range"
    assert data["stored_row"]["voltage_v"] == 262.0 and data["stored_row"]["energy_kwh"] == 0.5
    assert data["not_the_flagged_version"] is None and data["quarantined_row"] is None
    # The reviewer's context, as `metrify review show` prints it: the reason with its band, the
    # neighbours of M1 (the flagged one first of the day, marked), the interval's VEE (none run yet).
    (why,) = data["context"]["why"]
    assert why["code"] == "voltage_out_of_range" and (why["figures"]["low"], why["figures"]["high"]) == (
        207,
        253,
    )
    neighbours = data["context"]["neighbours"]
    assert [n["flagged"] for n in neighbours] == [True, False, False, False, False]
    assert neighbours[0]["at"] == "2026-03-29T00:00:00+00:00" and data["context"]["vee"] is None
    # after a reject: the quarantined row, nothing stored
    assert api.post("/v1/review/items/b1/0/reject", json={"note": "bad"}, headers=headers).status_code == 200
    after = api.get("/v1/review/items/b1/0", headers=headers).json()["data"]
    assert after["item"]["status"] == "rejected" and after["stored_row"] is None
    assert after["quarantined_row"]["voltage_v"] == 262.0
    error_of(api.get("/v1/review/items/b1/999", headers=headers), 404, "not_found")
    error_of(api.get("/v1/review/items/b1/0"), 401, "missing_token")
    error_of(api.get("/v1/review/items/b1/0", headers=token("read")), 403, "insufficient_scope")
    limited = token("review", meters=["M2"])
    error_of(api.get("/v1/review/items/b1/1", headers=limited), 403, "meter_forbidden")
    assert api.get(f"/v1/review/items/b1/{96}", headers=limited).status_code == 200  # M2's reading


def test_bulk_approve_decides_a_meter_days_items_and_skips_decided_ones(
    api: TestClient, seeded: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[tuple[date, list[str]]] = []
    real = vee_review.run_days

    def counted(conn: psycopg.Connection, first: date, last: date, *args: Any, **kwargs: Any) -> Any:
        runs.append((first, list(kwargs["meter_ids"])))
        return real(conn, first, last, *args, **kwargs)

    monkeypatch.setattr(vee_review, "run_days", counted)
    headers = token("review", sub="ana")
    body = {"note": "voltage fine after CT swap", "meter_id": "M1", "from": "2026-03-29", "to": "2026-03-29"}
    preview = api.post(BULK, json={**body, "dry_run": True}, headers=headers)
    assert preview.status_code == 200, preview.text
    assert preview.json()["data"] == {
        "verdict": "approve",
        "dry_run": True,
        "selected": N,
        "meter_days": [{"meter_id": "M1", "day": "2026-03-29"}],
    }
    assert review.count_items(seeded) == N + 2 and runs == []
    review.approve(seeded, "b1", 1, by="bo", why="checked")  # decided meanwhile by someone else
    # the items as selected before bo's decision: his is skipped and counted, not decided twice
    day = date(2026, 3, 29)
    items = review.select_pending(seeded, review.Selection(meter="M1", first=day, last=day))
    review.approve(seeded, "b1", 2, by="bo", why="checked too")
    done = vee_review.decide_many(seeded, "approve", items, "ana", "x")
    assert (done.selected, done.decided, done.already_decided) == (N - 1, N - 2, 1)
    assert runs == [(day, ["M1"])]
    runs.clear()
    review_state = [(i.record_index, i.status) for i in review.list_items(seeded, None, limit=100)]
    assert sum(s == "pending" for _, s in review_state) == 2  # M2's, and M1's of the next day
    # through the API, over what is left of M1's day: nothing pending, so nothing decided or re-run
    again = api.post(BULK, json=body, headers=headers).json()["data"]
    assert (again["selected"], again["decided"], again["meter_days"]) == (0, 0, [])
    assert runs == []


def test_bulk_approve_over_the_api_records_each_decision(
    api: TestClient, seeded: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[date] = []
    real = vee_review.run_days

    def counted(conn: psycopg.Connection, first: date, last: date, *args: Any, **kwargs: Any) -> Any:
        runs.append(first)
        return real(conn, first, last, *args, **kwargs)

    monkeypatch.setattr(vee_review, "run_days", counted)
    # The audit log is append-only (never truncated between tests): this test's entries come after.
    audited = seeded.execute("SELECT coalesce(max(id), 0) FROM ops.audit_log").fetchone()
    review.approve(seeded, "b1", 0, by="bo", why="checked")
    response = api.post(
        BULK, json={"note": "fine", "reason": "voltage_out_of_range"}, headers=token("review", sub="ana")
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["selected"], data["decided"], data["skipped"]) == (
        N + 1,
        N + 1,
        {"already_decided": 0, "superseded": 0, "refused": 0},
    )
    assert data["meter_days"] == [
        {"meter_id": "M1", "day": "2026-03-29"},
        {"meter_id": "M2", "day": "2026-03-29"},
        {"meter_id": "M1", "day": "2026-03-30"},
    ]
    assert runs == [date(2026, 3, 29), date(2026, 3, 30)] and data["vee_errors"] == []
    audit = seeded.execute(
        "SELECT actor, channel, count(*) FROM ops.audit_log WHERE action = 'review.approve' AND id > %s "
        "GROUP BY 1, 2",
        audited,
    ).fetchall()
    assert audit == [("ana", "api", N + 1)]  # bo's direct call passed no caller
    assert seeded.execute(
        "SELECT count(*) FROM ops.review_queue WHERE decided_by = 'ana' AND decision_note = 'fine'"
    ).fetchone() == (N + 1,)
    edited = "SELECT meter_id, count(*) FROM ops.vee_readings WHERE edited_by = 'ana' GROUP BY 1 ORDER BY 1"
    assert seeded.execute(edited).fetchall() == [("M1", N), ("M2", 1)]
    vee_runs = seeded.execute(
        "SELECT target, details->>'days' FROM ops.audit_log WHERE action = 'vee.edit' AND actor = 'ana' "
        "AND id > %s ORDER BY id",
        audited,
    )
    assert vee_runs.fetchall() == [
        ("meter:M1,M2", "2026-03-29..2026-03-29"),
        ("meter:M1", "2026-03-30..2026-03-30"),
    ]


def test_bulk_auth_and_validation(api: TestClient, seeded: psycopg.Connection) -> None:
    body = {"note": "fine", "meter_id": "M1"}
    error_of(api.post(BULK, json=body), 401, "missing_token")
    error_of(api.post(BULK, json=body, headers=token("read")), 403, "insufficient_scope")
    error_of(api.post(BULK, json=body, headers=token("review", meters=["M2"])), 403, "meter_forbidden")
    headers = token("review")
    for empty in ({"note": "fine"}, {"note": "fine", "dry_run": True}):
        error = error_of(api.post(BULK, json=empty, headers=headers), 422, "filter_required")
        assert "whole queue" in error["message"]
        # every 422 lists its fields (a trial's got `details: null`): here the filters, one needed
        assert [d["field"] for d in error["details"]] == [
            f"body.{f}" for f in ("meter_id", "reason", "source", "from", "to")
        ]
    assert review.count_items(seeded) == N + 2  # nothing decided
    for bad in (
        {"meter_id": "M1"},  # no note
        {"note": " ", "meter_id": "M1"},
        {"note": "ok", "meter_id": "M1", "status": "rejected"},
        {"note": "ok", "reason": "spkie"},
        {"note": "ok", "source": "gas"},
        {"note": "ok", "from": "2026-02-30"},
    ):
        error_of(api.post(BULK, json=bad, headers=headers), 422, "validation_error")
    reversed_days = error_of(
        api.post(BULK, json={"note": "ok", "from": "2026-03-30", "to": "2026-03-29"}, headers=headers),
        422,
        "validation_error",
    )
    assert [(d["field"], d["value"]) for d in reversed_days["details"]] == [
        ("body.from", "2026-03-30"),
        ("body.to", "2026-03-29"),
    ]
    sent_as_text = api.post(BULK, content=json.dumps(body), headers={**headers, "Content-Type": "text/plain"})
    error_of(sent_as_text, 415, "unsupported_media_type")
    # a meter-limited token's bulk decision takes its meters' readings only
    mine = api.post(
        BULK,
        json={"note": "ok", "reason": "voltage_out_of_range", "dry_run": True},
        headers=token("review", meters=["M2"]),
    )
    assert mine.json()["data"]["selected"] == 1


def test_openapi_documents_the_routes(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert "get" in paths["/v1/review/items/{batch_id}/{record_index}"]
    for verdict in ("approve", "reject"):
        operation = paths[f"/v1/review/bulk/{verdict}"]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert {"note", "meter_id", "reason", "source", "from", "to", "dry_run"} <= set(schema["properties"])
        assert schema["additionalProperties"] is False


def test_a_decision_is_taken_back_over_the_api(api: TestClient, seeded: psycopg.Connection) -> None:
    """`POST .../reopen` (a trial got a 404 there): the rejected reading is stored again and the item
    pending; a pending item has nothing to take back (409); the audit log names the token's subject."""
    headers = token("review", sub="ana")
    assert api.post("/v1/review/items/b1/0/reject", json={"note": "bad"}, headers=headers).status_code == 200
    reopened = api.post("/v1/review/items/b1/0/reopen", json={"note": "wrong item"}, headers=headers)
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["data"]["status"] == "pending" and reopened.json()["data"]["decided_by"] is None
    shown = api.get("/v1/review/items/b1/0", headers=headers).json()["data"]
    assert shown["stored_row"]["voltage_v"] == 262.0 and shown["quarantined_row"] is None
    # The item pending again says what was taken back, as `metrify review show` prints it (the audit
    # log is append-only: an earlier test's decision on b1 #0 comes first).
    assert [(h["action"], h["actor"], h["channel"], h["note"]) for h in shown["context"]["history"][-2:]] == [
        ("reject", "ana", "api", "bad"),
        ("reopen", "ana", "api", "wrong item"),
    ]
    error_of(
        api.post("/v1/review/items/b1/0/reopen", json={"note": "again"}, headers=headers), 409, "conflict"
    )
    error_of(
        api.post("/v1/review/items/b1/0/reopen", json={"note": "x"}, headers=token("read")),
        403,
        "insufficient_scope",
    )
    assert seeded.execute(
        "SELECT actor, details->>'reopened' FROM ops.audit_log "
        "WHERE action = 'review.reopen' AND target = 'review:b1#0'"
    ).fetchall() == [("ana", "rejected")]
    assert (
        "post"
        in api.get("/openapi.json").json()["paths"]["/v1/review/items/{batch_id}/{record_index}/reopen"]
    )
