"""tests/services.py: a service that does not answer skips the tests that need it, or fails them under
REQUIRE_SERVICES=1 (as CI runs), with the reason and the variable to set."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests import services

ROOT = Path(__file__).resolve().parent.parent


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


@pytest.fixture
def closed_port(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.delenv("REQUIRE_SERVICES", raising=False)
    return _closed_port()


def test_an_unreachable_postgres_skips_with_the_reason(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql+asyncpg://postgres:secret@127.0.0.1:{closed_port}/postgres"
    monkeypatch.setenv("TEST_POSTGRES_URL", url)
    with pytest.raises(pytest.skip.Exception) as skipped:
        services.postgres_admin_url()
    message = str(skipped.value)
    assert message.startswith(f"PostgreSQL not reachable at postgresql+asyncpg://postgres:***@127.0.0.1:{closed_port}")
    assert message.endswith("; set TEST_POSTGRES_URL") and "secret" not in message


def test_an_unreachable_redis_skips_with_the_reason(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_REDIS_URL", f"redis://127.0.0.1:{closed_port}/15")
    with pytest.raises(pytest.skip.Exception) as skipped:
        services.redis_url()
    assert str(skipped.value).startswith(f"Redis not reachable at redis://127.0.0.1:{closed_port}/15: ")
    assert str(skipped.value).endswith("; set TEST_REDIS_URL")


@pytest.mark.parametrize("ask", [services.postgres_admin_url, services.redis_url])
def test_require_services_turns_the_skip_into_a_failure(
    closed_port: int, monkeypatch: pytest.MonkeyPatch, ask: object
) -> None:
    monkeypatch.setenv("TEST_POSTGRES_URL", f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/postgres")
    monkeypatch.setenv("TEST_REDIS_URL", f"redis://127.0.0.1:{closed_port}/15")
    monkeypatch.setenv("REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match=r"not reachable at .*REQUIRE_SERVICES=1"):
        ask()  # type: ignore[operator]


def test_each_url_is_probed_once(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def probe(url: str) -> str | None:
        calls.append(url)
        return "refused"

    monkeypatch.setattr(services, "probe_postgres", probe)
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/once"
    for _ in range(3):
        with pytest.raises(pytest.skip.Exception):
            services.require_postgres(url)
    assert calls == [url]


def test_a_live_postgres_is_handed_out() -> None:
    url = services.postgres_admin_url()  # skipped without a server (a failure in CI)
    assert services.probe_postgres(url) is None


def test_a_live_redis_is_handed_out() -> None:
    url = services.redis_url()
    assert services.probe_redis(url) is None


def test_the_db_suite_skips_its_postgres_half_without_a_server_and_ci_fails_it() -> None:
    """The real wiring, in a child pytest: one db test, its [sqlite] half passes, its [postgres] half is
    skipped with the reason, and under REQUIRE_SERVICES=1 it is an error."""
    env = {**os.environ, "TEST_POSTGRES_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/postgres"}
    env.pop("REQUIRE_SERVICES", None)
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
               "tests/db/test_users.py::test_zero_free_credits_writes_no_ledger_row"]
    relaxed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr
    assert "1 passed, 1 skipped" in relaxed.stdout
    assert "PostgreSQL not reachable at" in relaxed.stdout and "set TEST_POSTGRES_URL" in relaxed.stdout
    strict = subprocess.run(command, cwd=ROOT, env={**env, "REQUIRE_SERVICES": "1"}, capture_output=True,
                            text=True, timeout=120)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "1 passed, 1 error" in strict.stdout and "REQUIRE_SERVICES=1" in strict.stdout
