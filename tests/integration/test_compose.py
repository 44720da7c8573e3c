"""docker-compose.kafka.yml: valid for docker-compose, and consistent with the code it runs.

- ``docker-compose config`` accepts the file (skipped, with the reason, without docker-compose).
- Every environment name given to a Scoreline service is one the settings read, and the values
  load into ``Settings``.
- Every role has a healthcheck on a real route, on the port the role serves.
- Every ``scoreline <command>`` the file runs is a real sub-command (``--help`` exits 0).

Self-contained: needs no broker, Postgres, Redis or Docker engine.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # no types-PyYAML in the dev extras

from core.settings import ENVIRONMENT_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.kafka.yml"
DOCKERFILE = ROOT / "Dockerfile"
ROLES = ("api", "worker", "boards", "sinks", "producers")
INSTALL_HINT = (
    "docker-compose is not on PATH (nor a working `docker compose` plugin): install it with "
    "`apt-get install docker-compose` (>= 1.29) or the Docker Compose v2 plugin to run this check"
)
HEALTHCHECK_URL = re.compile(r"https?://(?:localhost|127\.0\.0\.1):(\d+)(/[\w/.-]*)")


def _load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), COMPOSE_FILE
    return data


SERVICES: dict[str, dict[str, Any]] = _load_compose()["services"]
# The Scoreline services: the ones built from ./Dockerfile (the roles and `init`).
SCORELINE_SERVICES = sorted(name for name, svc in SERVICES.items() if "build" in svc)


def _compose_command() -> list[str] | None:
    """docker-compose (v1), else a `docker compose` plugin; neither needs an engine for config."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict (compose allows a mapping or a KEY=VALUE list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: value for key, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def _settings_for(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a container with exactly this environment would load."""
    for name in ENVIRONMENT_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(part) for part in value]


def _dockerfile_entrypoint() -> list[str]:
    lines = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("ENTRYPOINT")]
    assert lines, f"{DOCKERFILE} has no ENTRYPOINT"
    entrypoint = json.loads(lines[-1].removeprefix("ENTRYPOINT").strip())
    assert isinstance(entrypoint, list)
    return [str(part) for part in entrypoint]


def _scoreline_commands(service: dict[str, Any]) -> list[list[str]]:
    """Each `scoreline <sub-command...>` the service runs, as its sub-command words."""
    argv = _as_list(service.get("entrypoint")) or _dockerfile_entrypoint()
    argv += _as_list(service.get("command"))
    if argv[:2] in (["sh", "-c"], ["/bin/sh", "-c"], ["bash", "-c"]):
        lexer = shlex.shlex(" ".join(argv[2:]), posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        argvs: list[list[str]] = [[]]
        for token in lexer:
            if set(token) <= set(";&|"):
                argvs.append([])
            else:
                argvs[-1].append(token)
    else:
        argvs = [argv]
    commands = []
    for words in argvs:
        if words and Path(words[0]).name == "scoreline":
            sub: list[str] = []
            for word in words[1:]:
                if word.startswith("-"):
                    break
                sub.append(word)
            commands.append(sub)
    return commands


def _scoreline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "scoreline"
    argv = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from core.cli import main; main()"]
    )
    return subprocess.run(
        [*argv, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_file_defines_every_role_and_init() -> None:
    assert set(SCORELINE_SERVICES) == {*ROLES, "init"}
    for name in ("kafka", "schema-registry", "postgres", "redis"):
        assert name in SERVICES, f"{name} is missing from {COMPOSE_FILE.name}"
    for role in ROLES:
        depends = SERVICES[role].get("depends_on")
        assert isinstance(depends, dict), f"{role}: depends_on must use conditions"
        assert depends.get("init") == {"condition": "service_completed_successfully"}, role
        for name in ("kafka", "schema-registry", "postgres", "redis"):
            assert depends.get(name) == {"condition": "service_healthy"}, (role, name)


def test_docker_compose_config_accepts_the_file() -> None:
    compose = _compose_command()
    if compose is None:
        pytest.skip(INSTALL_HINT)
    base = [*compose, "-f", str(COMPOSE_FILE)]
    config = subprocess.run(
        [*base, "config"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert config.returncode == 0, f"{' '.join(base)} config:\n{config.stderr}{config.stdout}"
    listed = subprocess.run(
        [*base, "config", "--services"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == set(SERVICES)


@pytest.mark.parametrize("name", SCORELINE_SERVICES)
def test_environment_uses_only_names_the_settings_read(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = SERVICES[name]
    assert "env_file" not in service, f"{name}: env_file hides names from this check"
    env = _environment(service)
    unknown = sorted(set(env) - ENVIRONMENT_NAMES)
    assert not unknown, f"{name}: core.settings reads no variable named {unknown}"
    for required in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "SCHEMA_REGISTRY_URL",
        "DATABASE_URL",
        "REDIS_URL",
    ):
        assert env.get(required), f"{name}: {required} must be set (else: embedded default)"
    settings = _settings_for(env, monkeypatch)  # the values load, too
    assert settings.kafka_bootstrap_servers == "kafka:9092"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_has_a_healthcheck_on_a_real_route_and_port(
    role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = SERVICES[role]
    healthcheck = service.get("healthcheck")
    assert healthcheck and not healthcheck.get("disable"), f"{role} has no healthcheck"
    test = " ".join(_as_list(healthcheck.get("test")))
    match = HEALTHCHECK_URL.search(test)
    assert match, f"{role}: the healthcheck requests no local URL: {test!r}"
    port, path = int(match.group(1)), match.group(2)
    settings = _settings_for(_environment(service), monkeypatch)
    if role == "api":
        from api.app import create_app

        routes = {getattr(route, "path", None) for route in create_app(settings).routes}
        assert path in routes and path in ("/health", "/metrics"), (path, sorted(map(str, routes)))
        assert port == settings.api_port
        everywhere = "0.0.0.0"  # noqa: S104 - a container must listen on every interface
        assert settings.api_host == everywhere, f"api: API_HOST must be {everywhere}"
    else:
        assert path == "/metrics", f"{role} serves only Prometheus /metrics"
        assert port == settings.metrics_port


@pytest.mark.parametrize("name", SCORELINE_SERVICES)
def test_every_scoreline_command_is_a_real_sub_command(name: str) -> None:
    service = SERVICES[name]
    commands = _scoreline_commands(service)
    assert commands, f"{name} runs no scoreline command"
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_NAMES}
    env.update(_environment(service))
    for sub in commands:
        assert sub, f"{name}: bare `scoreline` (only --help)"
        result = _scoreline(*sub, "--help", env=env)
        assert result.returncode == 0, (
            f"{name}: `scoreline {' '.join(sub)} --help` exited {result.returncode}:\n"
            f"{result.stderr}{result.stdout}"
        )
