"""The test and development Redis: Debian's redis-server on loopback, nothing kept, a clear error
without the binary."""

from __future__ import annotations

import pytest
import redis

from metrify_platform.redis_server import RedisServer, RedisServerError

pytestmark = pytest.mark.redis


def test_a_missing_binary_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    server = RedisServer()
    with pytest.raises(RedisServerError, match="redis-server is not on PATH: install Redis 7"):
        server.start()
    server.close()
    assert not server.data_dir.exists()


def test_a_server_answers_keeps_nothing_across_a_restart_and_cleans_up(redis_server: str) -> None:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.config_get("save") == {"save": ""} and client.config_get("appendonly") == {
            "appendonly": "no"
        }
        server.stop()
        server.start()
        assert client.get("k") is None  # same port, empty memory
        client.close()
        assert not list(server.data_dir.glob("*.rdb"))
    assert not server.data_dir.exists()
