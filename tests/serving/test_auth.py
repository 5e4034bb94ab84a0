"""Bearer-token authentication, scopes, meter limits and the API's error shape, over real HTTP
(uvicorn on a loopback port) against a small app built from the real dependencies and handlers;
`TokenVerifier` directly for the claim cases; `metrify api token` through the CLI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI, HTTPException
from typer.testing import CliRunner

from metrify_assets.cli.api import parse_ttl
from metrify_assets.cli.main import app as cli
from metrify_assets.env import ApiSettings
from metrify_assets.serving.auth import (
    SCOPES,
    AuthError,
    Principal,
    TokenVerifier,
    issue_token,
    require,
    require_meter,
    token_id_of,
)
from metrify_assets.serving.errors import install_error_handlers
from tests.serving.uvicorn_thread import serve

SECRET = "a-test-secret-that-is-32-bytes-or-more"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "alice", "scope": "read", "iat": now, "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def public_pem(rsa_key: rsa.RSAPrivateKey) -> str:
    return (
        rsa_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def build_app(settings: ApiSettings) -> FastAPI:
    app = FastAPI()
    app.state.verifier = TokenVerifier(settings)
    install_error_handlers(app)

    def who(principal: Principal) -> dict[str, Any]:
        meters = None if principal.meters is None else sorted(principal.meters)
        return {"subject": principal.subject, "scopes": sorted(principal.scopes), "meters": meters}

    @app.get("/read")
    async def read(principal: Annotated[Principal, Depends(require("read"))]) -> dict[str, Any]:
        return who(principal)

    @app.post("/ingest")
    async def ingest(principal: Annotated[Principal, Depends(require("ingest"))]) -> dict[str, Any]:
        return who(principal)

    @app.get("/review")
    async def review(principal: Annotated[Principal, Depends(require("review"))]) -> dict[str, Any]:
        return who(principal)

    @app.get("/meters/{meter_id}")
    async def meter(
        meter_id: str, principal: Annotated[Principal, Depends(require("read"))]
    ) -> dict[str, Any]:
        require_meter(principal, meter_id)
        return {"meter_id": meter_id}

    @app.get("/items/{n}")
    async def item(n: int, size: int = 1) -> dict[str, int]:
        return {"n": n, "size": size}

    @app.get("/conflict")
    async def conflict() -> None:
        raise HTTPException(status_code=409, detail={"batch_id": "b1"})

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


@pytest.fixture(scope="module")
def url(public_pem: str) -> Iterator[str]:
    """HS256 and RS256 both accepted; issuer and audience checked."""
    settings = ApiSettings(
        jwt_secret=SECRET, jwt_public_key=public_pem, jwt_issuer="https://idp.test", jwt_audience="metrify"
    )
    with serve(build_app(settings)) as base:
        yield base


def get(url: str, path: str, token: str | None = None) -> httpx.Response:
    return httpx.get(url + path, headers=bearer(token) if token else {}, timeout=10)


def ours(**overrides: Any) -> str:
    """A token the test server accepts (its issuer and audience)."""
    return hs256(iss="https://idp.test", aud="metrify", **overrides)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert (error["status"], error["code"]) == (status, code)
    assert error["message"]
    return error


# --- the dependency over HTTP ------------------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge_without_error_code(url: str) -> None:
    response = get(url, "/read")
    assert_error(response, 401, "missing_token")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrify"'
    basic = httpx.get(url + "/read", headers={"Authorization": "Basic YWxpY2U6cHc="}, timeout=10)
    assert_error(basic, 401, "missing_token")


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", jwt.encode(claims(), "another-secret-that-is-32-bytes-long!!", algorithm="HS256")],
    ids=["garbage", "three-junk-segments", "wrong-secret"],
)
def test_garbage_and_forged_tokens_are_401_invalid_token(url: str, token: str) -> None:
    response = get(url, "/read", token)
    assert_error(response, 401, "invalid_token")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="metrify", error="invalid_token", error_description="')


def test_expired_token_is_401_and_says_so(url: str) -> None:
    now = int(time.time())
    response = get(url, "/read", ours(iat=now - 3600, exp=now - 120))
    error = assert_error(response, 401, "token_expired")
    assert "expired" in error["message"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert "expired" in response.headers["WWW-Authenticate"]


def test_a_valid_token_reaches_the_route_with_its_principal(url: str) -> None:
    response = get(url, "/read", ours(scope="read review"))
    assert response.status_code == 200, response.text
    assert response.json() == {"subject": "alice", "scopes": ["read", "review"], "meters": None}


def test_wrong_scope_is_403_insufficient_scope(url: str) -> None:
    response = get(url, "/review", ours(scope="read ingest"))
    error = assert_error(response, 403, "insufficient_scope")
    assert "review" in error["message"]
    assert response.headers["WWW-Authenticate"].endswith('scope="review"')
    posted = httpx.post(url + "/ingest", headers=bearer(ours(scope="read")), timeout=10)
    assert_error(posted, 403, "insufficient_scope")


def test_admin_is_allowed_everywhere(url: str) -> None:
    token = ours(scope="admin")
    assert get(url, "/read", token).status_code == 200
    assert get(url, "/review", token).status_code == 200
    assert httpx.post(url + "/ingest", headers=bearer(token), timeout=10).status_code == 200


def test_a_meter_limited_token_sees_only_its_meters(url: str) -> None:
    token = ours(scope="read", meters=["M1", "M2"])
    assert get(url, "/read", token).json()["meters"] == ["M1", "M2"]
    assert get(url, "/meters/M1", token).json() == {"meter_id": "M1"}
    assert_error(get(url, "/meters/M3", token), 403, "meter_forbidden")
    assert get(url, "/meters/M3", ours(scope="read")).status_code == 200  # no claim: every meter


def test_rs256_from_an_identity_provider_with_issuer_and_audience(
    url: str, rsa_key: rsa.RSAPrivateKey
) -> None:
    def rs256(**overrides: Any) -> str:
        return jwt.encode(claims(**overrides), rsa_key, algorithm="RS256")

    good = rs256(iss="https://idp.test", aud="metrify", scope=None, scp=["read"])
    assert get(url, "/read", good).json()["scopes"] == ["read"]
    assert_error(get(url, "/read", rs256(iss="https://evil.test", aud="metrify")), 401, "invalid_token")
    assert_error(get(url, "/read", rs256(iss="https://idp.test", aud="someone-else")), 401, "invalid_token")
    assert_error(get(url, "/read", rs256(iss="https://idp.test")), 401, "invalid_token")  # no aud
    assert_error(get(url, "/read", rs256(aud="metrify")), 401, "invalid_token")  # no iss
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims(iss="https://idp.test", aud="metrify"), other, algorithm="RS256")
    assert_error(get(url, "/read", forged), 401, "invalid_token")


def test_alg_none_is_rejected(url: str) -> None:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims(iss="https://idp.test", aud="metrify", scope="admin")).encode())
    for token in (f"{header}.{body}.", f"{header}.{body}.c2ln"):
        error = assert_error(get(url, "/read", token), 401, "invalid_token")
        assert "none" in error["message"]


def test_hs256_signed_with_the_public_key_is_rejected(url: str, public_pem: str) -> None:
    """Algorithm confusion: the public key is public, so an HS256 token keyed with it proves nothing."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims(iss="https://idp.test", aud="metrify", scope="admin")).encode())
    signature = hmac.new(public_pem.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{b64url(signature)}"
    assert_error(get(url, "/read", token), 401, "invalid_token")
    rs256_only = TokenVerifier(ApiSettings(jwt_public_key=public_pem))
    with pytest.raises(AuthError) as caught:
        rs256_only.verify(token)
    assert caught.value.status_code == 401
    assert "HS256" in caught.value.message


# --- the common error shape ------------------------------------------------------------------------


def test_validation_errors_are_422_with_the_failing_fields(url: str) -> None:
    response = get(url, "/items/seven?size=big")
    error = assert_error(response, 422, "validation_error")
    fields = {d["field"] for d in error["details"]}
    assert fields == {"path.n", "query.size"}
    assert all(d["message"] and d["type"] for d in error["details"])


def test_unknown_path_and_unexpected_errors_use_the_common_shape(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert_error(get(url, "/nowhere"), 404, "not_found")
    assert_error(httpx.delete(url + "/read", timeout=10), 405, "method_not_allowed")
    conflict = assert_error(get(url, "/conflict"), 409, "conflict")  # a route's own HTTPException
    assert (conflict["message"], conflict["details"]) == ("Conflict", {"batch_id": "b1"})
    with caplog.at_level("ERROR", logger="metrify_assets.serving.errors"):
        response = get(url, "/boom")
    error = assert_error(response, 500, "internal_error")
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert error["details"] is None
    assert any("GET /boom" in r.getMessage() and r.exc_info for r in caplog.records)


# --- TokenVerifier: claims ---------------------------------------------------------------------------


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(ApiSettings(jwt_secret=SECRET))


@pytest.mark.parametrize(
    ("overrides", "scopes"),
    [
        ({"scope": "read ingest"}, {"read", "ingest"}),
        ({"scope": None, "scp": ["review"]}, {"review"}),
        ({"scope": None, "scp": "read review"}, {"read", "review"}),  # Azure AD sends a string
        ({"scope": None, "scopes": ["ingest", 7]}, {"ingest"}),
        ({"scope": "read write:everything openid"}, {"read"}),  # unknown scopes are ignored
        ({"scope": None}, set()),
    ],
)
def test_scopes_from_scope_scp_or_scopes(
    verifier: TokenVerifier, overrides: dict[str, Any], scopes: set[str]
) -> None:
    assert verifier.verify(hs256(**overrides)).scopes == scopes


def test_admin_implies_every_scope_but_not_every_meter() -> None:
    admin = Principal("root", frozenset({"admin"}), frozenset({"M1"}))
    assert all(admin.has(s) for s in SCOPES)
    assert admin.allows_meter("M1") and not admin.allows_meter("M2")
    reader = Principal("r", frozenset({"read"}), None)
    assert reader.has("read") and not reader.has("ingest") and reader.allows_meter("anything")


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
        ({"sub": "  "}, "sub"),
        ({"meters": "M1"}, "meters"),  # a malformed limit must not read as no limit
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ],
)
def test_required_and_malformed_claims_are_401(
    verifier: TokenVerifier, overrides: dict[str, Any], needle: str
) -> None:
    with pytest.raises(AuthError) as caught:
        verifier.verify(hs256(**overrides))
    assert caught.value.status_code == 401
    assert needle in caught.value.message


def test_a_token_id_is_its_jti_and_a_token_without_one_has_none(verifier: TokenVerifier) -> None:
    """The audit log names the token each API call carried by its `jti`; an identity provider's
    token may have none (the entry's token_id is then empty), and a `jti` that is not a string makes
    the token invalid (RFC 7519 4.1.7) rather than a token without an id."""
    assert verifier.verify(hs256(jti="idp-7f3a")).token_id == "idp-7f3a"
    assert verifier.verify(hs256()).token_id is None
    assert verifier.verify(hs256(jti="")).token_id is None
    with pytest.raises(AuthError) as caught:
        verifier.verify(hs256(jti=42))
    assert caught.value.status_code == 401 and "JWT ID" in caught.value.message


def test_a_token_expired_within_the_leeway_is_still_accepted(verifier: TokenVerifier) -> None:
    now = int(time.time())
    assert verifier.verify(hs256(iat=now - 600, exp=now - 5)).subject == "alice"


def test_a_token_with_an_audience_needs_the_api_to_have_one(verifier: TokenVerifier) -> None:
    with pytest.raises(AuthError):
        verifier.verify(hs256(aud="someone"))


def test_the_verifier_refuses_weak_or_missing_keys(public_pem: str) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenVerifier(ApiSettings(jwt_secret="short"))
    with pytest.raises(ValueError, match="METRIFY_API_JWT_SECRET and/or"):
        TokenVerifier(ApiSettings())
    with pytest.raises(ValueError, match="not a PEM public key"):
        TokenVerifier(
            ApiSettings(jwt_public_key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
        )
    assert TokenVerifier(ApiSettings(jwt_secret=SECRET, jwt_public_key=public_pem)).algorithms == (
        "HS256",
        "RS256",
    )


def test_issue_token_round_trips_and_refuses_nonsense() -> None:
    settings = ApiSettings(jwt_secret=SECRET, jwt_issuer="metrify-cli", jwt_audience="metrify")
    token = issue_token(
        SECRET,
        "bob",
        ["read", "read", "ingest"],
        timedelta(minutes=5),
        ["M2", "M1"],
        "metrify-cli",
        "metrify",
    )
    principal = TokenVerifier(settings).verify(token)
    jti = jwt.decode(token, SECRET, algorithms=["HS256"], audience="metrify")["jti"]
    assert principal == Principal("bob", frozenset({"read", "ingest"}), frozenset({"M1", "M2"}), jti)
    assert token_id_of(token) == jti and len(jti) == 32
    # Each token issued has an id of its own: the audit log tells two tokens of one subject apart.
    again = TokenVerifier(settings).verify(
        issue_token(SECRET, "bob", ["read"], timedelta(minutes=5), None, "metrify-cli", "metrify")
    )
    assert again.token_id not in (None, jti)
    for scopes, ttl in (
        (["read", "wizard"], timedelta(hours=1)),
        ([], timedelta(hours=1)),
        (["read"], timedelta(0)),
    ):
        with pytest.raises(ValueError):
            issue_token(SECRET, "bob", scopes, ttl)
    with pytest.raises(ValueError):
        require("wizard")


# --- metrify api token -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800), (" 2H ", 7200)]
)
def test_parse_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == timedelta(seconds=seconds)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    for name in ("SECRET", "PUBLIC_KEY", "ISSUER", "AUDIENCE"):
        monkeypatch.delenv(f"METRIFY_API_JWT_{name}", raising=False)
    return monkeypatch


def test_cli_token_is_signed_with_the_secret_and_verifies(cli_env: pytest.MonkeyPatch) -> None:
    cli_env.setenv("METRIFY_API_JWT_SECRET", SECRET)
    cli_env.setenv("METRIFY_API_JWT_ISSUER", "metrify-cli")
    cli_env.setenv("METRIFY_API_JWT_AUDIENCE", "metrify")
    args = ["api", "token", "--scope", "read", "--scope", "ingest", "--ttl", "30m", "--subject", "carol"]
    result = CliRunner().invoke(cli, [*args, "--meter", "M9", "--meter", "M1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert "\n" not in token  # stdout is the token alone: TOKEN=$(metrify api token ...)
    settings = ApiSettings(jwt_secret=SECRET, jwt_issuer="metrify-cli", jwt_audience="metrify")
    principal = TokenVerifier(settings).verify(token)
    raw = jwt.decode(token, SECRET, algorithms=["HS256"], audience="metrify")
    assert principal == Principal("carol", frozenset({"read", "ingest"}), frozenset({"M1", "M9"}), raw["jti"])
    assert raw["exp"] - raw["iat"] == 1800
    # The operator who issues a token is told its id, the one the audit log records its calls under.
    assert "carol" in result.stderr and f"id {raw['jti']} " in result.stderr


@pytest.mark.parametrize(
    ("args", "secret", "needle"),
    [
        (["--scope", "read"], None, "METRIFY_API_JWT_SECRET is not set"),
        (["--scope", "read", "--ttl", "1w"], SECRET, "--ttl"),
        (["--scope", "read", "--ttl", "0h"], SECRET, "--ttl"),
        (["--scope", "wizard"], SECRET, "scopes must be among"),
        (["--scope", "read"], "short", "at least 32 bytes"),
    ],
)
def test_cli_token_errors(
    cli_env: pytest.MonkeyPatch, args: list[str], secret: str | None, needle: str
) -> None:
    if secret:
        cli_env.setenv("METRIFY_API_JWT_SECRET", secret)
    result = CliRunner().invoke(cli, ["api", "token", *args])
    assert result.exit_code == 2
    assert needle in result.stderr
    assert result.stdout == ""
