"""Receivers for the alert delivery tests: real servers on loopback ports, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.alerts.receivers import HttpReceiver, SmtpReceiver

SECRET = "s3cret-shared-with-the-receiver"


@pytest.fixture
def http_receiver() -> Iterator[Callable[..., HttpReceiver]]:
    """Start HTTP receivers: `http_receiver(script=[500, 500], secret=SECRET)`."""
    started: list[HttpReceiver] = []

    def start(**kwargs: object) -> HttpReceiver:
        receiver = HttpReceiver(**kwargs)  # type: ignore[arg-type]
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver(logins={"metrify": "mail-password"})
    yield receiver
    receiver.stop()
