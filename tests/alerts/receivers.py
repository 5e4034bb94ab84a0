"""Real receivers on loopback ports for the delivery tests: an HTTP server (a webhook or a
Slack-compatible endpoint) that checks signatures and answers from a script, and an SMTP server
(aiosmtpd) that keeps what it was sent."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from metrify_assets.alerts.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    signature_ok: bool | None  # None: the receiver checks no signature

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """A real HTTP server in a thread. `script` is the statuses of the first requests, `then` the
    status of every later one. With a `secret`, a request whose signature does not verify gets 401."""

    script: list[int] = field(default_factory=list)
    then: int = 200
    secret: str | None = None
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                ok = None
                if receiver.secret is not None:
                    ok = verify_signature(
                        receiver.secret,
                        self.headers.get(TIMESTAMP_HEADER, ""),
                        body,
                        self.headers.get(SIGNATURE_HEADER, ""),
                    )
                with lock:
                    status = receiver.script.pop(0) if receiver.script else receiver.then
                    if ok is False:
                        status = 401
                    receiver.received.append(Received(self.path, dict(self.headers), body, status, ok))
                answer = b"ok" if 200 <= status < 300 else b"receiver says no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/metrify"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope, message))
        return "250 Message accepted for delivery"


@dataclass
class SmtpReceiver:
    """A real SMTP server (aiosmtpd) on a loopback port; with `logins`, AUTH is required."""

    logins: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self.mailbox = _Mailbox()
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if self.logins is not None:
            logins = self.logins

            def authenticate(
                server: object, session: Session, envelope: Envelope, mechanism: str, data: object
            ) -> AuthResult:
                ok = (
                    isinstance(data, LoginPassword)
                    and logins.get(data.login.decode()) == data.password.decode()
                )
                return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

            kwargs = {"authenticator": authenticate, "auth_required": True, "auth_require_tls": False}
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    @property
    def messages(self) -> list[tuple[Envelope, EmailMessage]]:
        return self.mailbox.messages

    def stop(self) -> None:
        self.controller.stop()


def events(received: Iterable[Received]) -> list[tuple[str, str]]:
    """(delivery_id, event) of each webhook request, in order."""
    return [(r.json["delivery_id"], r.json["event"]) for r in received]
