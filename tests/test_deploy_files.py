"""The deploy files (Dockerfile, docker-compose.yml) against the code: the commands they run are the entry
points the end-to-end tests run, the image installs from the hashed prod lock and runs as a non-root user,
every setting compose gives the app is a real setting, and the image's HEALTHCHECK tells a process that
answers /metrics from one that does not.

PyYAML is not a dependency: docker-compose.yml is read by a minimal indentation-based reader of the
mappings this file uses; where PyYAML happens to be installed, a full parse must agree with it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import re
import socket
import sys
import tomllib
from pathlib import Path

import pytest

from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
SCRIPTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
APP_SERVICES = ("bot", "worker")


# --- a minimal reader of docker-compose.yml's mappings ----------------------------------------------------
def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _key(line: str) -> str | None:
    match = re.match(r"(<<|[\w.-]+):(\s|$)", line.strip())
    return match.group(1) if match else None


def block(lines: list[str], *path: str) -> list[str]:
    """The lines nested under `path` (each key looked up at the top indentation of the block before)."""
    for key in path:
        top = min(map(_indent, lines))
        for i, line in enumerate(lines):
            if _indent(line) == top and _key(line) == key:
                nested = []
                for inner in lines[i + 1:]:
                    if _indent(inner) <= top:
                        break
                    nested.append(inner)
                lines = nested
                break
        else:
            raise KeyError("/".join(path))
    return lines


def keys(lines: list[str]) -> dict[str, str]:
    """The keys at the top indentation of a block, with their inline values (a quoted scalar unquoted)."""
    top = min(map(_indent, lines)) if lines else 0
    found = {k: line.strip().split(":", 1)[1].strip() for line in lines
             if _indent(line) == top and (k := _key(line)) is not None}
    return {k: v[1:-1] if len(v) > 1 and v[0] == v[-1] and v[0] in "\"'" else v for k, v in found.items()}


def app_environment(service: str) -> dict[str, str]:
    """What compose sets for an app service: its own `environment` and that of the `x-bot` it merges."""
    lines = _lines(COMPOSE)
    own = block(lines, "services", service)
    env: dict[str, str] = {}
    if keys(own).get("<<") == "*bot":
        env.update(keys(block(lines, "x-bot", "environment")))
    if "environment" in keys(own):
        env.update(keys(block(own, "environment")))
    return env


def service(name: str) -> dict[str, str]:
    lines = _lines(COMPOSE)
    merged = keys(block(lines, "x-bot")) if keys(block(lines, "services", name)).get("<<") == "*bot" else {}
    return {**merged, **keys(block(lines, "services", name))}


def compose_commands() -> dict[str, list[str]]:
    return {name: json.loads(service(name)["command"]) for name in APP_SERVICES}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(_lines(DOCKERFILE)))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines()]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def e2e_modules() -> set[str]:
    """The modules tests/e2e runs as `python -m MODULE`."""
    text = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests" / "e2e").glob("*.py"))
    direct = re.findall(r'"-m",\s*"([\w.]+)"', text)  # BotProcess
    logged = re.findall(r'telegram,\s*"([\w.]+)",', text)  # LoggedProcess(..., module, ready)
    return set(direct) | set(logged)


# --- the commands ------------------------------------------------------------------------------------------
def test_worker_has_a_console_script() -> None:
    assert SCRIPTS["ai-telegram-bot-worker"] == "bot.worker:main"
    assert SCRIPTS["ai-telegram-bot"] == "bot.__main__:main"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_scripts_point_at_a_main(name: str) -> None:
    module, _, attr = SCRIPTS[name].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


def entry_point(command: list[str]) -> str:
    """The module a command runs, checked to be a real entry point."""
    if command[:2] == ["python", "-m"]:
        module = command[2]
        spec = importlib.util.find_spec(f"{module}.__main__" if module == "bot" else module)
        assert spec is not None and spec.origin is not None, command
        source = Path(spec.origin).read_text(encoding="utf-8")
        assert 'if __name__ == "__main__":\n    sys.exit(main())' in source, command
        return module
    assert command[0] in SCRIPTS, f"{command[0]} is not in [project.scripts]"
    return SCRIPTS[command[0]].partition(":")[0].removesuffix(".__main__")


def test_compose_and_dockerfile_run_the_entry_points_the_e2e_tests_run() -> None:
    commands = compose_commands()
    assert entry_point(commands["bot"]) == "bot"
    assert entry_point(commands["worker"]) == "bot.worker"
    [cmd] = [json.loads(args) for name, args in final_stage() if name == "CMD"]
    assert entry_point(cmd) == "bot"  # the image's default: the front
    assert {"bot", "bot.worker"} <= e2e_modules()  # tests/e2e starts exactly these (test_distributed.py)


# --- the Dockerfile ----------------------------------------------------------------------------------------
def test_dockerfile_installs_the_hashed_prod_lock_and_the_package_without_deps() -> None:
    runs = [args for name, args in dockerfile_instructions() if name == "RUN"]
    assert any(re.search(r"pip install --require-hashes -r requirements/prod\.lock(\s|$)", r) for r in runs)
    assert any(re.search(r"pip install --no-deps \.(\s|$)", r) for r in runs)
    assert "dev.lock" not in DOCKERFILE and "[dev]" not in DOCKERFILE  # no dev tools in the image
    assert all(args.startswith("python:3.11-slim") for name, args in dockerfile_instructions() if name == "FROM")


def test_dockerfile_runs_as_a_non_root_user_in_app() -> None:
    stage = final_stage()
    users = [args.strip() for name, args in stage if name == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert users[-1] == "10001:10001"  # aibot, numeric: checkable by runAsNonRoot and the like
    assert re.search(r"--uid 10001 --gid aibot", DOCKERFILE) and re.search(r"groupadd --gid 10001 aibot", DOCKERFILE)
    assert ("WORKDIR", "/app") in stage
    assert re.search(r"mkdir -p /app/data && chown aibot:aibot /app/data", DOCKERFILE)


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    rules = _lines((ROOT / ".dockerignore").read_text(encoding="utf-8"))
    assert rules[0] == "*"  # everything out, then only what the build copies
    assert not {r for r in rules if r.startswith("!")} & {"!.env", "!.git", "!.venv", "!data", "!tests"}


# --- docker-compose.yml --------------------------------------------------------------------------------------
def test_every_setting_compose_gives_the_app_is_a_setting() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name in APP_SERVICES:
        env = app_environment(name)
        assert {"DATABASE_URL", "REDIS_URL", "METRICS_PORT"} <= set(env), name
        assert set(env) <= fields, f"{name}: {set(env) - fields} are not settings"
    env = app_environment("worker")
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"] == "redis://redis:6379/0"


def test_compose_takes_secrets_from_env_only() -> None:
    assert not re.search(r"\d{6,}:[\w-]{30,}", COMPOSE)  # no bot token
    assert not re.search(r"(BOT_TOKEN|_API_KEY|_KEY|_TOKEN|WEBHOOK_SECRET)\s*:", COMPOSE)
    assert "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?" in COMPOSE  # required, never a default
    for name in APP_SERVICES:
        assert service(name)["env_file"] == ".env"


def test_workers_scale_and_start_after_the_front_migrated() -> None:
    worker = service("worker")
    assert "container_name" not in worker and "ports" not in worker  # `--scale worker=N`
    lines = _lines(COMPOSE)
    depends = block(lines, "services", "worker", "depends_on")
    for dependency in ("postgres", "redis", "bot"):
        assert keys(block(depends, dependency)) == {"condition": "service_healthy"}, dependency
    assert "container_name" not in service("bot")
    assert keys(block(lines, "services", "postgres", "healthcheck"))["test"].count("pg_isready")
    assert json.loads(keys(block(lines, "services", "redis", "healthcheck"))["test"]) == ["CMD", "redis-cli", "ping"]


def test_a_full_yaml_parse_agrees() -> None:
    yaml = pytest.importorskip("yaml")  # not a dependency: checked where it happens to be installed
    doc = yaml.safe_load(COMPOSE)
    for name in APP_SERVICES:
        svc = doc["services"][name]
        assert svc["command"] == compose_commands()[name]
        assert {k: str(v) for k, v in svc["environment"].items()} == app_environment(name)
    assert doc["services"]["worker"]["depends_on"]["bot"] == {"condition": "service_healthy"}
    assert "ports" not in doc["services"]["worker"] and "container_name" not in doc["services"]["worker"]


# --- the image's HEALTHCHECK ---------------------------------------------------------------------------------
def healthcheck_command() -> list[str]:
    [args] = [args for name, args in final_stage() if name == "HEALTHCHECK"]
    command = json.loads(args.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    return [sys.executable, *command[1:]]


async def run_healthcheck(cwd: Path, **settings: str) -> int:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **settings}
    proc = await asyncio.create_subprocess_exec(*healthcheck_command(), cwd=str(cwd), env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(proc.wait(), 30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_healthcheck_asks_metrics_port(tmp_path: Path) -> None:
    from bot.metrics import Metrics

    metrics = Metrics()
    port = (await metrics.serve("127.0.0.1", 0)).port
    try:
        assert await run_healthcheck(tmp_path, METRICS_PORT=str(port)) == 0  # METRICS_HOST 0.0.0.0
        assert await run_healthcheck(tmp_path, METRICS_HOST="127.0.0.1", METRICS_PORT=str(port)) == 0
        # a webhook front without METRICS_PORT: its webhook server answers /metrics
        assert await run_healthcheck(tmp_path, WEBHOOK_URL="https://example.org/tg",
                                     WEBHOOK_PORT=str(port)) == 0
    finally:
        await metrics.aclose()
    assert await run_healthcheck(tmp_path, METRICS_PORT=str(port)) == 1  # nothing answers any more
    assert await run_healthcheck(tmp_path, METRICS_PORT=str(free_port())) == 1


async def test_healthcheck_with_nothing_to_ask_passes(tmp_path: Path) -> None:
    assert await run_healthcheck(tmp_path) == 0  # METRICS_PORT=0, polling: only the process itself to go by
