"""Property-based fuzzing of messages: whatever arrives, decode and rules never raise, and every record
is either accepted or quarantined with a reason (input = accepted + quarantined).

Messages are random bytes, random JSON, and records with each source's fields given random types and
values (null, huge numbers, NUL characters, odd timestamps), with Kafka's null value (a tombstone) too.
The last property runs whole batches through `process_batch` on a real PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrify_assets.contracts import CONTRACTS, SourceContract
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.ingestion.decode import decode
from metrify_assets.quality import gx, rules
from metrify_assets.resources.lake import Lake

pytestmark = pytest.mark.faults
NOW = pd.Timestamp("2026-04-01T00:00:00Z")

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
timestamps = st.one_of(
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.datetimes().map(lambda d: d.isoformat()),  # no offset
    st.sampled_from(
        ["1970-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "2026-03-29T01:30:00+01:00", "9999-12-31T23:59:59Z",
         "0001-01-01T00:00:00Z", "2026-10-25T01:15:00+00:00", "２０２６-03-29T00:00:00Z", ""]
    ),
    st.text(max_size=30),
)  # fmt: skip
field_values = {
    "str": st.text(max_size=40) | st.sampled_from(["M1", "\x00", "x" * 5000, "import", "export", "both"]),
    "int": st.integers() | st.sampled_from([15, 0, -15, 2**31, 2**63 - 1]) | st.floats(allow_nan=False),
    "float": st.floats(allow_nan=False)
    | st.integers()
    | st.sampled_from([0.5, -1.0, -230.0, 50.0, 1e308, 2**64]),
    "timestamp": timestamps,
    "str_list": st.lists(st.text(max_size=6), max_size=3) | st.lists(json_scalars, max_size=3),
}


def records(contract: SourceContract) -> st.SearchStrategy[dict[str, object]]:
    """A record with each field present or not, typed right or wrong."""
    return st.fixed_dictionaries(
        {},
        optional={f.name: field_values[f.type] | json_values for f in contract.fields},
    )


def messages(contract: SourceContract) -> st.SearchStrategy[bytes | str | None]:
    as_json = st.one_of(
        records(contract),
        st.lists(records(contract), max_size=4).map(lambda r: {"records": r}),
        json_values,
        st.fixed_dictionaries({"records": json_values}),
    ).map(lambda v: json.dumps(v))
    return st.one_of(
        as_json,
        as_json.map(str.encode),
        st.binary(max_size=64),
        st.text(max_size=64),
        st.none(),  # a tombstone
        st.just(b""),
    )


def batches(contract: SourceContract) -> st.SearchStrategy[list[bytes | str | None]]:
    return st.lists(messages(contract), min_size=1, max_size=12)


def empty_envelope(message: bytes | str | None) -> bool:
    """`{"records": []}` holds no record: nothing to account for (a producer's heartbeat)."""
    try:
        parsed = json.loads(message or "")
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("records") == []


@pytest.mark.parametrize("source", list(CONTRACTS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decode_and_rules_never_raise_and_account_for_every_record(source: str, data: st.DataObject) -> None:
    contract = CONTRACTS[source]
    batch = data.draw(batches(contract))
    decoded = decode(contract, batch, list(range(len(batch))))
    outcome = rules.evaluate(source, decoded.records, NOW)
    assert decoded.records_in == len(decoded.records) + len(decoded.malformed)
    assert sorted(set(decoded.message_index)) == [i for i, m in enumerate(batch) if not empty_envelope(m)]
    assert all(m.reason.startswith("malformed:") for m in decoded.malformed)
    assert len(outcome.decision) == len(decoded.records)
    rejected = outcome.decision == "reject"
    assert (outcome.reasons[rejected] != "").all()  # a reject always says why
    # What the rules accept passes the guard on the write: hostile input never fails a run.
    accepted = decoded.records[~rejected.to_numpy()]
    suite = gx.validate(f"validated_{source}", accepted)
    assert suite.success or accepted.empty, [e.expectation_type for e in suite.expectations if not e.success]


@pytest.mark.postgres
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_batch_is_stored_or_quarantined_by_process_batch(
    data: st.DataObject, pg: psycopg.Connection, tmp_path: Path
) -> None:
    """Through the whole stage chain on a real database: never an exception, and nothing lost."""
    source = data.draw(st.sampled_from(list(CONTRACTS)))
    contract = CONTRACTS[source]
    batch = data.draw(batches(contract))
    batch_id = f"fuzz-{uuid.uuid4().hex}"  # examples share the database: each its own batch
    spec = BatchSpec(contract, batch_id, "kafka", batch_id, date(2026, 3, 29))
    result = process_batch(spec, batch, list(range(len(batch))), Lake(str(tmp_path / "lake")), pg, NOW)
    pg.commit()
    ledger = result.ledger
    assert ledger.records_in == ledger.accepted + ledger.quarantined
    stored = pg.execute("SELECT count(*) FROM ops.quarantine WHERE batch_id = %s", (batch_id,)).fetchone()
    assert stored == (len(result.quarantined),)
