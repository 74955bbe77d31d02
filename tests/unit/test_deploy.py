"""deploy/: the compose file against the Compose specification, settings, systemd, Dockerfile.

No Docker engine runs here: these tests check what can be checked without one.
"""

from __future__ import annotations

import configparser
import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from candlecast.config import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# compose-spec/compose-spec, schema/compose-spec.json, vendored unchanged.
COMPOSE_SCHEMA = REPO / "tests" / "data" / "compose-spec.json"
SETTING_NAMES = {f"CANDLECAST_{name.upper()}" for name in Settings.model_fields}
VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
ENV_LINE = re.compile(r"^\s*#?\s*(CANDLECAST_\w+)=", re.MULTILINE)


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def _interpolate(value: str, given: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, with `given` as the .env file."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if name in given:
            return given[name]
        if kind == "?":
            raise AssertionError(f"{name} is required: {rest}")
        return rest or ""

    return VARIABLE.sub(one, value)


def test_the_compose_file_follows_the_compose_specification() -> None:
    validator = _compose_validator()
    compose = _compose()
    errors = sorted(validator.iter_errors(compose), key=lambda error: list(error.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    # The schema is strict enough to catch a misspelt key.
    broken = copy.deepcopy(compose)
    broken["services"]["candlecast"]["restart_policy"] = "always"
    assert not validator.is_valid(broken)


def test_the_compose_file_has_every_part_of_the_deployment() -> None:
    services = _compose()["services"]
    assert {"postgres", "candlecast", "worker", "adminer", "readonly-role"} <= set(services)
    postgres = services["postgres"]
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in _compose()["volumes"]  # a named volume, not a container's own layer
    assert "healthcheck" in postgres
    assert services["worker"]["command"] == ["candlecast", "worker"]
    role = services["readonly-role"]
    assert "candlecast db create-readonly-role" in " ".join(role["command"])
    assert {"CANDLECAST_READONLY_USER", "CANDLECAST_READONLY_PASSWORD"} <= set(_environment(role))
    for name in ("candlecast", "worker"):
        assert services[name]["depends_on"]["readonly-role"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["adminer"]["environment"]["ADMINER_DEFAULT_SERVER"] == "postgres"
    # Nothing listens beyond the host itself; a TLS-terminating proxy goes in front.
    for service in services.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port


def test_the_workers_scale_and_the_api_runs_none() -> None:
    """`docker compose up --scale worker=N`: the API serves without a queue worker, and the
    worker service can be replicated (no fixed name or host port, started by default, restarted,
    after the database is healthy and migrated) with the same settings as the API."""
    services = _compose()["services"]
    api, worker = services["candlecast"], services["worker"]
    assert api["command"][:2] == ["candlecast", "serve"] and "--no-worker" in api["command"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "profiles" not in worker  # `up` starts it without naming a profile
    assert "scale" not in worker and "replicas" not in worker.get("deploy", {})
    assert worker["command"] == ["candlecast", "worker"]
    assert worker["restart"] == "unless-stopped"
    assert worker["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert worker["depends_on"]["readonly-role"] == {"condition": "service_completed_successfully"}
    # The one-shot migrates before anything else starts.
    assert "candlecast db upgrade" in " ".join(services["readonly-role"]["command"])
    queue = {
        "CANDLECAST_DATABASE_URL",
        "CANDLECAST_STREAM_SHARDS",
        "CANDLECAST_WORKER_CONCURRENCY",
        "CANDLECAST_TRAIN_WORKERS",
    }
    assert queue <= set(_environment(worker))
    # Every process must split the pairs into the same shards and tick on the same periods.
    assert _environment(worker) == _environment(api)


def test_every_candlecast_variable_in_deploy_is_a_setting() -> None:
    found: dict[str, str] = {}  # variable -> where it is set or used
    for name, service in _compose()["services"].items():
        for key in _environment(service):
            found.setdefault(key, f"docker-compose.yml, service {name}")
    for path in (DEPLOY / "docker-compose.yml", DEPLOY / ".env.example"):
        for match in VARIABLE.finditer(path.read_text()):
            found.setdefault(match.group(1), path.name)
    for path in (DEPLOY / ".env.example", DEPLOY / "candlecast.env.example"):
        for variable in ENV_LINE.findall(path.read_text()):
            found.setdefault(variable, path.name)
    ours = {name: where for name, where in found.items() if name.startswith("CANDLECAST_")}
    assert len(ours) >= 10, ours
    assert {name: where for name, where in ours.items() if name not in SETTING_NAMES} == {}


def test_the_compose_defaults_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    dot_env = {
        "POSTGRES_PASSWORD": "0123456789abcdef",
        "CANDLECAST_API_TOKEN": "0123456789abcdef0123456789abcdef",
        "CANDLECAST_READONLY_PASSWORD": "fedcba9876543210",
    }
    checked = 0
    for name, service in _compose()["services"].items():
        environment = _environment(service)
        if not any(key.startswith("CANDLECAST_") for key in environment):
            continue
        for key in SETTING_NAMES:
            monkeypatch.delenv(key, raising=False)
        for key, value in environment.items():
            monkeypatch.setenv(key, _interpolate(value, dot_env))
        settings = Settings(_env_file=None)
        assert settings.database_url.startswith("postgresql://candlecast:"), name
        assert settings.api_token == dot_env["CANDLECAST_API_TOKEN"], name
        if name == "readonly-role":
            assert settings.readonly_user == "candlecast_reader"
            assert settings.readonly_password is not None
        checked += 1
    assert checked == 3  # readonly-role, candlecast, worker


def test_the_systemd_example_environment_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in SETTING_NAMES:
        monkeypatch.delenv(key, raising=False)
    for line in (DEPLOY / "candlecast.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.state_dir == Path("/var/lib/candlecast")


def _unit() -> configparser.ConfigParser:
    # systemd repeats some keys (SystemCallFilter); a later one adds to the earlier ones.
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "candlecast.service").read_text())
    return unit


def test_the_systemd_unit_runs_unprivileged_restarts_and_is_hardened() -> None:
    service = _unit()["Service"]
    assert service["User"] not in {"root", "0"} and service["Group"] not in {"root", "0"}
    assert service["EnvironmentFile"] == "/etc/candlecast/candlecast.env"
    assert service["ExecStart"].split()[1:2] == ["serve"]
    assert service["Restart"] in {"on-failure", "always"}
    hardening = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "RestrictSUIDSGID": "yes",
    }
    assert {key: service.get(key) for key in hardening} == hardening
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is missing; the unit's keys were checked by parsing only")
    # The binary is not installed here; everything else is verified as written.
    text = (DEPLOY / "candlecast.service").read_text()
    unit = tmp_path / "candlecast.service"
    unit.write_text(
        text.replace("/opt/candlecast/bin/candlecast", shutil.which("true") or "/bin/true")
    )
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions per stage, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    stages: list[list[tuple[str, str]]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        assert stages, f"instruction before FROM: {line}"
        stages[-1].append((keyword.upper(), rest.strip()))
    return stages


def test_the_dockerfile_is_multi_stage_non_root_and_checks_health() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2
    names = {rest.split()[-1] for (keyword, rest), *_ in stages if " AS " in rest.upper()}
    final = stages[-1]
    for keyword, rest in final:
        if keyword == "COPY" and rest.startswith("--from="):
            assert rest.split()[0].removeprefix("--from=") in names
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    health = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    assert len(health) == 1 and "/api/health" in health[0]
    exposed = {rest for keyword, rest in final if keyword == "EXPOSE"}
    port = re.search(r"127\.0\.0\.1:(\d+)/api/health", health[0])
    assert port is not None and port.group(1) in exposed
    command = next(rest for keyword, rest in reversed(final) if keyword == "CMD")
    assert json.loads(command)[:2] == ["candlecast", "serve"]
