"""Revoking an API token (`metrify api revoke`, docs/api.md#revoking-a-token) on the real app over the
session's PostgreSQL: two API instances (as two uvicorn workers or replicas, each with its own
revocation list) refuse the revoked token on a read and a write route within the documented reload
time, another token keeps working, the audit log has the revocation, and a second revoke changes
nothing. Then the list itself: it fails closed when it cannot be trusted, and a token without a
`jti` is never looked up."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from metrify_assets.cli.main import app as cli
from metrify_assets.env import ApiSettings, resolve_settings
from metrify_assets.observability import audit
from metrify_assets.resources import PostgresResource
from metrify_assets.serving.app import create_app
from metrify_assets.serving.auth import (
    REVOCATION_REFRESH_S,
    AuthError,
    RevocationList,
    TokenVerifier,
    caller_principal,
    issue_token,
    token_id_of,
)
from metrify_assets.serving.errors import ApiError
from tests.serving.test_errors import READING

pytestmark = [pytest.mark.postgres]
SECRET = "test-secret-of-at-least-32-bytes-for-hs256"


def issued(subject: str = "field-app") -> str:
    return issue_token(SECRET, subject, ["read", "ingest", "review"], timedelta(minutes=10))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def env(pg_resource: PostgresResource, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        "METRIFY_HOME": str(tmp_path_factory.mktemp("api-revocation")),
        "METRIFY_POSTGRES_URL": pg_resource.get_url(),
        "METRIFY_API_JWT_SECRET": SECRET,
        "COLUMNS": "200",
    }


@pytest.fixture(scope="module")
def workers(env: dict[str, str]) -> Iterator[tuple[TestClient, TestClient]]:
    """Two instances of the API on one database, each loading and reloading its own list."""
    with (
        TestClient(create_app(resolve_settings(env))) as one,
        TestClient(create_app(resolve_settings(env))) as two,
    ):
        yield one, two


def invoke(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def read(api: TestClient, token: str) -> httpx.Response:
    return api.get("/v1/review/items", params={"limit": 1}, headers=bearer(token))


def write(api: TestClient, token: str) -> httpx.Response:
    return api.post("/v1/meter_readings", json=READING, headers=bearer(token))


def revoked_error(response: httpx.Response, token_id: str) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    error: dict[str, Any] = response.json()["error"]
    assert (error["status"], error["code"], error["details"]) == (401, "token_revoked", None)
    assert token_id in error["message"] and "revoked" in error["message"]
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="invalid_token"' in challenge and "revoked" in challenge
    return error


def test_a_revoked_token_is_refused_on_every_worker_and_another_still_works(
    env: dict[str, str], workers: tuple[TestClient, TestClient], pg: psycopg.Connection
) -> None:
    leaked, other = issued(), issued()
    leaked_id, other_id = token_id_of(leaked), token_id_of(other)
    assert leaked_id and other_id and leaked_id != other_id
    for api in workers:
        assert read(api, leaked).status_code == 200
        assert write(api, leaked).status_code == 202

    said = invoke(env, "api", "revoke", leaked_id, "--reason", "pasted in a ticket", "--by", "soc@utility")
    assert f"revoked token {leaked_id}" in said and f"within {REVOCATION_REFRESH_S:.0f} s" in said
    revoked_at = time.monotonic()
    batches = pg.execute("SELECT count(*) FROM ops.api_batches").fetchone()

    # Each worker refuses it from its next reload, within the documented bound, on both routes.
    for api in workers:
        while read(api, leaked).status_code == 200:
            assert time.monotonic() - revoked_at < REVOCATION_REFRESH_S + 3, "still accepted past the bound"
            time.sleep(0.1)
        revoked_error(read(api, leaked), leaked_id)
        revoked_error(write(api, leaked), leaked_id)
        # The other token of the same subject is untouched.
        assert read(api, other).status_code == 200
        assert write(api, other).status_code == 202
    # The refused writes stored nothing: only the other token's two batches were added.
    after = pg.execute("SELECT count(*) FROM ops.api_batches").fetchone()
    assert batches is not None and after is not None and after[0] == batches[0] + 2

    # The audit log has the revocation: who as named, the OS account that ran it, why.
    (entry,) = audit.entries(pg, action="token.revoke", target=f"token:{leaked_id}")
    assert (entry.actor, entry.channel, entry.affected) == ("soc@utility", "cli", 1)
    assert entry.account and entry.details == {"reason": "pasted in a ticket"}
    # The leaked token's calls are listed under its id, and none made after the revocation took effect.
    assert [e.action for e in audit.entries(pg, token_id=leaked_id, action="ingest")] == ["ingest.post"] * 2

    # Revoking again is no error and changes nothing (no second entry); giving the token itself works too.
    again = invoke(env, "api", "revoke", leaked, "--reason", "second report")
    assert (
        f"token {leaked_id} was already revoked" in again and "by soc@utility (pasted in a ticket)" in again
    )
    assert len(audit.entries(pg, action="token.revoke", target=f"token:{leaked_id}")) == 1
    (listed,) = [
        r for r in json.loads(invoke(env, "api", "revocations", "--json")) if r["token_id"] == leaked_id
    ]
    assert (listed["revoked_by"], listed["account"], listed["reason"]) == (
        "soc@utility",
        entry.account,
        "pasted in a ticket",
    )
    assert leaked_id in invoke(env, "api", "revocations")


def test_revoke_refuses_what_no_token_can_be(env: dict[str, str], pg: psycopg.Connection) -> None:
    no_id = jwt.encode({"sub": "idp-user", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    assert "no `jti`" in invoke(env, "api", "revoke", no_id, "--reason", "leak", code=2)
    assert "cannot be read as one" in invoke(env, "api", "revoke", "a.b.c", "--reason", "leak", code=2)
    assert "token id" in invoke(env, "api", "revoke", " ", "--reason", "leak", code=2)
    assert "reason" in invoke(env, "api", "revoke", "abc", "--reason", "  ", code=2)
    assert "no revoked tokens" in invoke(env, "api", "revocations")  # nothing was stored
    assert audit.entries(pg, action="token.revoke", target="token:abc") == []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_list_fails_closed_and_a_token_without_an_id_is_not_looked_up(pg: psycopg.Connection) -> None:
    clock = Clock()
    revocations = RevocationList(refresh_s=5, stale_s=30, clock=clock)
    verifier = TokenVerifier(ApiSettings(jwt_secret=SECRET), revocations)
    token = issued()
    no_id = jwt.encode({"sub": "idp-user", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")

    def refused(token: str) -> ApiError:
        with pytest.raises(ApiError) as caught:
            verifier.verify(token)
        return caught.value

    # Not loaded yet: a token with an id cannot be checked, so it is a 503, not let through.
    unloaded = refused(token)
    assert (unloaded.status_code, unloaded.code) == (503, "revocations_unavailable")
    assert unloaded.headers == {"Retry-After": "5"}
    assert verifier.verify(no_id).subject == "idp-user"  # nothing to look up

    assert revocations.load(pg) == 0
    assert verifier.verify(token).token_id == token_id_of(token)
    pg.execute(
        "INSERT INTO ops.api_token_revocations (token_id, revoked_by, reason) VALUES (%s, 'soc', 'test')",
        (token_id_of(token),),
    )
    pg.commit()
    assert verifier.verify(token).token_id  # until the next reload
    assert revocations.load(pg) == 1
    gone = refused(token)
    assert isinstance(gone, AuthError) and (gone.status_code, gone.code) == (401, "token_revoked")
    # A list not reloaded for longer than stale_s (the database unreachable) is not trusted.
    clock.now += 31
    assert refused(issued()).status_code == 503
    assert verifier.verify(no_id).subject == "idp-user"

    # The rate limiter keys a revoked token's requests by address, not by the subject it names.
    revocations.load(pg)
    app = SimpleNamespace(state=SimpleNamespace(verifier=verifier))  # what the middleware reads
    scope: dict[str, Any] = {
        "type": "http",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "app": app,
    }
    assert caller_principal(scope) is None
    clock.now += 31  # nor does a list it cannot trust make the limiter fail: `require` answers the 503
    scope["headers"] = [(b"authorization", f"Bearer {issued()}".encode())]
    assert caller_principal(scope) is None
