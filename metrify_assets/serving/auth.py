"""Bearer-token authentication and scope-based authorisation for the data API (docs/api.md).

Tokens are JWTs: HS256 signed with METRIFY_API_JWT_SECRET (what `metrify api token` issues) and/or
RS256 signed by an identity provider whose public key is METRIFY_API_JWT_PUBLIC_KEY. A token must
carry `sub` and `exp`; `iss` and `aud` are checked when configured. Its scopes come from `scope`
(space-separated, OAuth2) or a `scp` / `scopes` list; `admin` implies every other scope. A `meters`
claim limits the token to those meter ids (routes ask `Principal.allows_meter` or `require_meter`).
Its `jti`, when it has one, is the token's id: the audit log records it with each call's entry.

Contract with `create_app`: the app's `TokenVerifier` lives on `app.state.verifier`. `require(scope)`
and the rate limiter (`limits.py`) read it from there; the rate limiter verifies a request's token
first and leaves the `Principal` in the request's scope state, so it is verified once per request.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import Scope

from metrify_assets.env import ApiSettings
from metrify_assets.serving.errors import ApiError

SCOPES = ("ingest", "read", "review", "admin")
ADMIN = "admin"
REALM = "metrify"
# HS256 needs a key at least as long as its hash (RFC 7518 3.2): a shorter one can be brute-forced
# offline from any single token.
MIN_SECRET_BYTES = 32
LEEWAY_S = 30  # clock skew tolerated on exp, nbf and iat, between the API and an identity provider
PRINCIPAL_STATE_KEY = "metrify.principal"  # in the ASGI scope's "state": the request's verified caller


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
    error = "invalid_token" if code == "token_expired" else code
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

    def __init__(self, settings: ApiSettings) -> None:
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
        return _principal(claims)


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
        "jti": uuid.uuid4().hex,  # names the token in the audit log (`token_id`) and a future deny-list
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
    except AuthError:
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
