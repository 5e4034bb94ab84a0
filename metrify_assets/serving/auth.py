"""Bearer-token authentication and scope-based authorisation for the data API (docs/api.md).

Tokens are JWTs: HS256 signed with METRIFY_API_JWT_SECRET (what `metrify api token` issues) and/or
RS256 signed by an identity provider whose public key is METRIFY_API_JWT_PUBLIC_KEY. A token must
carry `sub` and `exp`; `iss` and `aud` are checked when configured. Its scopes come from `scope`
(space-separated, OAuth2) or a `scp` / `scopes` list; `admin` implies every other scope. A `meters`
claim limits the token to those meter ids (routes ask `Principal.allows_meter` or `require_meter`).
Its `jti`, when it has one, is the token's id: the audit log records it with each call's entry, and
`metrify api revoke` revokes a token by it (`ops.api_token_revocations`, migration 0024). Each API
process holds the revoked ids in a `RevocationList`, reloaded every `REVOCATION_REFRESH_S`, which the
verifier checks: a revoked token is a 401 `token_revoked` on every route within that time, at no
database round trip per request. A token without a `jti` cannot be revoked (docs/api.md).

Contract with `create_app`: the app's `TokenVerifier` lives on `app.state.verifier`. `require(scope)`
and the rate limiter (`limits.py`) read it from there; the rate limiter verifies a request's token
first and leaves the `Principal` in the request's scope state, so it is verified once per request.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool
from starlette.datastructures import Headers
from starlette.types import Scope

from metrify_assets.env import ApiSettings
from metrify_assets.serving.errors import ApiError
from metrify_assets.storage.audit import Caller

SCOPES = ("ingest", "read", "review", "admin")
ADMIN = "admin"
REALM = "metrify"
# HS256 needs a key at least as long as its hash (RFC 7518 3.2): a shorter one can be brute-forced
# offline from any single token.
MIN_SECRET_BYTES = 32
LEEWAY_S = 30  # clock skew tolerated on exp, nbf and iat, between the API and an identity provider
PRINCIPAL_STATE_KEY = "metrify.principal"  # in the ASGI scope's "state": the request's verified caller
# Each API process reloads the revoked token ids this often: a revocation takes effect everywhere
# within it (plus one reload, a few milliseconds). A list not reloaded for REVOCATION_STALE_S (the
# database unreachable) is not trusted: a token with an id is then a 503, not let through.
REVOCATION_REFRESH_S = 5.0
REVOCATION_STALE_S = 30.0
MAX_TOKEN_ID_CHARS = 256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do. `meters` None: every meter. `token_id`: the token's `jti`
    (None for a token without one), which names the token in the audit log."""

    subject: str
    scopes: frozenset[str]
    meters: frozenset[str] | None = None
    token_id: str | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN in self.scopes

    def allows_meter(self, meter_id: str) -> bool:
        """A meter-limited token stays limited even with `admin`: the limit was asked for."""
        return self.meters is None or meter_id in self.meters


class AuthError(ApiError):
    """401 (no, invalid or expired token) or 403 (not allowed), with the RFC 6750 challenge."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, scope: str | None = None
    ) -> None:
        code = code or ("insufficient_scope" if status == 403 else "invalid_token")
        super().__init__(status, code, message, headers=_challenge(code, message, scope))


def _challenge(code: str, message: str, scope: str | None) -> dict[str, str] | None:
    """The WWW-Authenticate header. A request without credentials gets no error code (RFC 6750 3.1)."""
    if code == "missing_token":
        return {"WWW-Authenticate": f'Bearer realm="{REALM}"'}
    error = "invalid_token" if code in ("token_expired", "token_revoked") else code
    if error not in ("invalid_token", "insufficient_scope"):
        return None
    # A quoted-string may hold neither '"' nor '\' (RFC 6750 3: printable ASCII minus those two).
    description = "".join(c for c in message if " " <= c <= "~" and c not in '"\\')
    value = f'Bearer realm="{REALM}", error="{error}", error_description="{description}"'
    return {"WWW-Authenticate": value + (f', scope="{scope}"' if scope else "")}


def _check_secret(secret: str) -> None:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(
            f"METRIFY_API_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
        )


def _rsa_public_key(pem: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as err:
        raise ValueError(f"METRIFY_API_JWT_PUBLIC_KEY is not a PEM public key: {err}") from err
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"METRIFY_API_JWT_PUBLIC_KEY must be an RSA key (RS256), got {type(key).__name__}")
    return key


class TokenVerifier:
    """Verifies bearer tokens against the configured keys. Each accepted algorithm has its own key,
    and a token is checked only with the key of its own `alg`: `none`, an algorithm not configured,
    and an HS256 token "signed" with the RSA public key (algorithm confusion) are all refused."""

    def __init__(self, settings: ApiSettings, revocations: RevocationList | None = None) -> None:
        keys: dict[str, str | rsa.RSAPublicKey] = {}
        if settings.jwt_secret:
            _check_secret(settings.jwt_secret)
            keys["HS256"] = settings.jwt_secret
        if settings.jwt_public_key:
            keys["RS256"] = _rsa_public_key(settings.jwt_public_key)
        if not keys:
            raise ValueError(
                "the API cannot verify tokens: set METRIFY_API_JWT_SECRET and/or METRIFY_API_JWT_PUBLIC_KEY"
            )
        self._keys = keys
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.revocations = revocations  # None: no token is checked for revocation (a test's verifier)

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def verify(self, token: str) -> Principal:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as err:
            raise AuthError(401, "the bearer token is not a JWT") from err
        if not isinstance(alg, str) or alg not in self._keys:
            raise AuthError(
                401, f"tokens signed with {alg!r:.20} are not accepted (only {', '.join(self._keys)})"
            )
        try:
            claims = jwt.decode(
                token,
                self._keys[alg],
                algorithms=[alg],
                issuer=self._issuer,
                audience=self._audience,
                leeway=LEEWAY_S,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as err:
            raise AuthError(401, "the token has expired", code="token_expired") from err
        except jwt.InvalidSignatureError as err:
            raise AuthError(401, "the token's signature does not verify") from err
        except jwt.PyJWTError as err:
            raise AuthError(401, f"the token is not valid: {err}") from err
        principal = _principal(claims)
        if self.revocations is not None and principal.token_id is not None:
            self.revocations.check(principal.token_id)
        return principal


def _principal(claims: Mapping[str, Any]) -> Principal:
    subject = claims["sub"]  # PyJWT checked that it is a string
    if not subject.strip():
        raise AuthError(401, "the token's subject (sub) is empty")
    granted: set[str] = set()
    for name in ("scope", "scp", "scopes"):
        value = claims.get(name)
        if isinstance(value, str):
            granted.update(value.split())
        elif isinstance(value, list):
            granted.update(v for v in value if isinstance(v, str))
    meters = claims.get("meters")
    # Fail closed: a malformed limit must not read as "no limit".
    if meters is not None and not (isinstance(meters, list) and all(isinstance(m, str) for m in meters)):
        raise AuthError(401, "the token's meters claim must be a list of meter ids")
    token_id = claims.get("jti")  # PyJWT checked that it is a string when present
    return Principal(
        subject=subject,
        scopes=frozenset(granted.intersection(SCOPES)),
        meters=None if meters is None else frozenset(meters),
        token_id=token_id or None,
    )


@dataclass(frozen=True)
class Revocation:
    """A revoked token (`ops.api_token_revocations`): its id, when, who as named (`--by`), the OS
    account that ran `metrify api revoke`, and why."""

    token_id: str
    revoked_at: datetime
    revoked_by: str
    account: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "revoked_at": self.revoked_at.isoformat()}


REVOCATION_COLUMNS = "token_id, revoked_at, revoked_by, account, reason"


def _checked_token_id(token_id: str) -> str:
    """`token_id` as stored: stripped; ValueError for one no token can have."""
    value = token_id.strip()
    if not value or "\x00" in value or len(value) > MAX_TOKEN_ID_CHARS:
        raise ValueError(
            f"a token id is the token's `jti` (1 to {MAX_TOKEN_ID_CHARS} characters, no NUL), got {token_id!r:.60}"
        )
    return value


def revoke(conn: psycopg.Connection, token_id: str, reason: str, caller: Caller) -> tuple[Revocation, bool]:
    """Revoke the token `token_id` in the connection's transaction (the caller commits) and record
    `token.revoke` in the audit log; returns the revocation and True. A token already revoked is not
    revoked again: its first revocation and False (no audit entry, nothing changed)."""
    token_id = _checked_token_id(token_id)
    if not reason.strip():
        raise ValueError("a revocation needs a reason (--reason): why the token is revoked")
    with conn.cursor(row_factory=class_row(Revocation)) as cur:
        added = cur.execute(
            "INSERT INTO ops.api_token_revocations (token_id, revoked_by, account, reason) "
            f"VALUES (%s, %s, %s, %s) ON CONFLICT (token_id) DO NOTHING RETURNING {REVOCATION_COLUMNS}",
            (token_id, caller.actor, caller.account, reason),
        ).fetchone()
        if added is None:
            existing = cur.execute(
                f"SELECT {REVOCATION_COLUMNS} FROM ops.api_token_revocations WHERE token_id = %s", (token_id,)
            ).fetchone()
            assert existing is not None  # rows are never deleted
            return existing, False
    caller.record(conn, "token.revoke", f"token:{token_id}", {"reason": reason}, 1)
    return added, True


def revocations(conn: psycopg.Connection) -> list[Revocation]:
    """Every revoked token, newest first."""
    with conn.cursor(row_factory=class_row(Revocation)) as cur:
        return cur.execute(
            f"SELECT {REVOCATION_COLUMNS} FROM ops.api_token_revocations ORDER BY revoked_at DESC, token_id"
        ).fetchall()


class RevocationList:
    """The revoked token ids as one API process knows them, for `TokenVerifier`: loaded when the app
    starts and reloaded every `refresh_s` by a thread (`watching`), so a revocation reaches every
    worker and replica within `refresh_s` plus one reload, and a request pays a set lookup (about
    0.1 microseconds) instead of a database round trip (0.15 ms on a local socket, 0.5 ms from the
    event loop). The whole list is reloaded each time: a high-water mark on `revoked_at` could miss
    a revocation whose transaction commits late, and the list is small (revoked ids, not tokens).
    Until it has loaded, or when no reload succeeded for `stale_s`, `check` fails closed (503)."""

    def __init__(
        self,
        refresh_s: float = REVOCATION_REFRESH_S,
        stale_s: float = REVOCATION_STALE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refresh_s = refresh_s
        self.stale_s = stale_s
        self._clock = clock
        self._revoked: dict[str, datetime] = {}
        self._loaded_at: float | None = None

    def load(self, conn: psycopg.Connection) -> int:
        """Reload the list from the database; returns how many ids it holds."""
        rows = conn.execute("SELECT token_id, revoked_at FROM ops.api_token_revocations").fetchall()
        self._revoked = {token_id: at for token_id, at in rows}  # one assignment: readers see old or new
        self._loaded_at = self._clock()
        return len(rows)

    def check(self, token_id: str) -> None:
        """401 `token_revoked` when `token_id` is revoked; 503 when the list cannot be trusted."""
        loaded_at = self._loaded_at
        if loaded_at is None or self._clock() - loaded_at > self.stale_s:
            raise ApiError(
                503,
                "revocations_unavailable",
                "the API cannot check whether the token was revoked (its list of revoked tokens could "
                "not be reloaded from the database); retry shortly",
                {"retry_after_s": int(self.refresh_s)},
                {"Retry-After": str(int(self.refresh_s))},
            )
        revoked_at = self._revoked.get(token_id)
        if revoked_at is not None:
            raise AuthError(
                401,
                f"the token {token_id} was revoked at {revoked_at:%Y-%m-%d %H:%M:%S %Z}; ask for a new one",
                code="token_revoked",
            )

    @contextmanager
    def watching(self, pool: ConnectionPool) -> Iterator[None]:
        """Load the list now (a failure stops the app's start, as the database it needs is not
        there), then reload it every `refresh_s` in a thread until the block ends. A failed reload is
        logged and retried at the next tick; the list goes on serving what it last loaded until it is
        `stale_s` old."""
        with pool.connection() as conn:
            self.load(conn)
        stop = threading.Event()

        def reload() -> None:
            while not stop.wait(self.refresh_s):
                try:
                    with pool.connection() as conn:
                        self.load(conn)
                except (psycopg.Error, OSError) as err:  # the pool's timeout is a psycopg.Error too
                    log.warning(
                        "could not reload the revoked API tokens (%s); retrying in %.0f s",
                        err,
                        self.refresh_s,
                    )

        thread = threading.Thread(target=reload, name="metrify-revocations", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def issue_token(
    secret: str,
    subject: str,
    scopes: Iterable[str],
    ttl: timedelta,
    meters: Iterable[str] | None = None,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token that `TokenVerifier` accepts with the same secret, issuer and audience."""
    granted = sorted(set(scopes))
    unknown = [s for s in granted if s not in SCOPES]
    if unknown or not granted:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}; got {', '.join(granted) or 'none'}")
    if not subject.strip():
        raise ValueError("the subject must not be empty")
    if ttl <= timedelta(0):
        raise ValueError(f"the lifetime must be positive, got {ttl}")
    _check_secret(secret)
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "scope": " ".join(granted),
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,  # names the token in the audit log (`token_id`) and to `metrify api revoke`
    }
    if meters is not None:
        claims["meters"] = sorted(set(meters))
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


def token_id_of(token: str) -> str | None:
    """A token's id (its `jti`), read without verifying it: what `metrify api token` prints beside the
    token it issued, the value `metrify audit --token-id` lists that token's calls by."""
    jti = jwt.decode(token, options={"verify_signature": False}).get("jti")
    return jti if isinstance(jti, str) and jti else None


def verifier_of(app: FastAPI) -> TokenVerifier:
    verifier = getattr(app.state, "verifier", None)
    if not isinstance(verifier, TokenVerifier):
        raise RuntimeError("app.state.verifier is not a TokenVerifier: create_app must set it")
    return verifier


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value (as FastAPI's HTTPBearer reads it)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def caller_principal(scope: Scope) -> Principal | None:
    """The request's principal when it carries a valid token, else None (no error: the rate limiter
    keys a caller without one by address). Remembered in the scope's state for `require`."""
    state = scope.setdefault("state", {})
    known: Principal | None = state.get(PRINCIPAL_STATE_KEY)
    if known is not None:
        return known
    token = bearer_token(Headers(scope=scope).get("authorization"))
    app = scope.get("app")
    verifier = getattr(getattr(app, "state", None), "verifier", None)
    if token is None or not isinstance(verifier, TokenVerifier):
        return None
    try:
        principal = verifier.verify(token)
    except ApiError:  # invalid or revoked (401), or revocations not checkable (503): `require` answers it
        return None
    state[PRINCIPAL_STATE_KEY] = principal
    return principal


_bearer = HTTPBearer(
    auto_error=False,  # no header: our 401 with its challenge, in the API's error shape
    bearerFormat="JWT",
    description="A JWT from `metrify api token` or the identity provider; scopes ingest, read, review, admin.",
)


def require(scope: str) -> Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[Principal]]:
    """A dependency admitting callers with `scope` (or admin): `Depends(require("read"))` gives the
    route the `Principal`. No or a bad token: 401; a valid token without the scope: 403."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; scopes: {', '.join(SCOPES)}")

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        state = request.scope.setdefault("state", {})
        principal: Principal | None = state.get(PRINCIPAL_STATE_KEY)
        if principal is None:
            if credentials is None:
                raise AuthError(
                    401, "a bearer token is required (Authorization: Bearer <token>)", code="missing_token"
                )
            principal = verifier_of(request.app).verify(credentials.credentials)
            state[PRINCIPAL_STATE_KEY] = principal
        if not principal.has(scope):
            held = ", ".join(sorted(principal.scopes)) or "none"
            raise AuthError(403, f"this needs the {scope!r} scope; the token has: {held}", scope=scope)
        return principal

    return dependency


def require_meter(principal: Principal, meter_id: str) -> None:
    """403 unless the principal may see `meter_id` (for routes addressing one meter)."""
    if not principal.allows_meter(meter_id):
        raise AuthError(403, f"this token is not allowed meter {meter_id!r}", code="meter_forbidden")
