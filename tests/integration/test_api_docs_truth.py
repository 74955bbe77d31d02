"""docs/api.md says what the code returns: every JSON route's keys match the documented example.

The convention (stated in docs/api.md): each route has a `### METHOD /path` section with one or
more ```json blocks, each an example answer. The block's info string may add the status code and
a query, e.g. ```json 202 ?wait=false. Keys are compared exactly at the top level and in every
nested object the example spells out; an empty object `{}` stands for keys that vary (metrics,
parameters), and a list's first element describes every element.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.fake_exchange.fixtures import FakeExchangeFactory
from tests.fuzz import states
from tests.integration.api_support import AUTH

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# Not JSON, or not ours to describe: the OpenAPI document itself and Swagger UI.
NOT_JSON_ROUTES = {"/api/openapi.json", "/api/docs"}
_HEADING = re.compile(r"^### (GET|POST) (/\S*)\s*$")
_FENCE = re.compile(r"^```json\b(.*)$")


@dataclass(frozen=True)
class Example:
    """One documented answer of a route."""

    method: str
    path: str
    status: int
    query: dict[str, str]
    body: Any


def parse_examples(text: str) -> dict[tuple[str, str], list[Example]]:
    """Every ```json block of docs/api.md, by the (method, path) heading it sits under."""
    found: dict[tuple[str, str], list[Example]] = {}
    route: tuple[str, str] | None = None
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        heading = _HEADING.match(line)
        if heading:
            route = (heading.group(1), heading.group(2))
            found.setdefault(route, [])
        elif line.startswith("#"):
            route = None
        fence = _FENCE.match(line)
        if fence and route is not None:
            end = lines.index("```", index + 1)
            words = fence.group(1).split()
            status = next((int(w) for w in words if w.isdigit()), 200)
            query = next((dict(parse_qsl(w[1:])) for w in words if w.startswith("?")), {})
            body = json.loads("\n".join(lines[index + 1 : end]))
            found[route].append(Example(route[0], route[1], status, query, body))
            index = end
        index += 1
    return found


def key_differences(documented: Any, actual: Any, where: str = "") -> list[str]:
    """Where the actual answer's keys differ from the documented example's."""
    if actual is None:
        return []  # null where the example shows a value: the prose says when
    if isinstance(documented, dict):
        if not isinstance(actual, dict):
            return [f"{where or 'body'}: documented an object, got {type(actual).__name__}"]
        if not documented:
            return []  # {}: keys that vary
        problems = []
        missing, extra = set(documented) - set(actual), set(actual) - set(documented)
        if missing:
            problems.append(f"{where or 'body'}: documented but not returned: {sorted(missing)}")
        if extra:
            problems.append(f"{where or 'body'}: returned but not documented: {sorted(extra)}")
        for key in set(documented) & set(actual):
            problems += key_differences(documented[key], actual[key], f"{where}.{key}")
        return problems
    if isinstance(documented, list) and documented and isinstance(documented[0], dict):
        if not isinstance(actual, list):
            return [f"{where}: documented a list, got {type(actual).__name__}"]
        return [
            p for item in actual[:5] for p in key_differences(documented[0], item, where + "[]")
        ]
    return []


def test_the_comparison_catches_a_missing_an_extra_and_a_nested_key() -> None:
    documented = {"a": 1, "b": {"c": 1}, "d": [{"e": 1}], "f": {}}
    assert key_differences(documented, {"a": 1, "b": {"c": 2}, "d": [], "f": {"x": 1}}) == []
    problems = key_differences(documented, {"a": 1, "z": 2, "b": {}, "d": [{"e": 1, "g": 2}]})
    joined = " ".join(problems)
    assert "['f']" in joined and "['z']" in joined and ".b" in joined and ".d[]" in joined


@pytest.fixture
def running(
    engine: Engine, database_url: str, fake_exchange: FakeExchangeFactory
) -> tuple[TestClient, list[tuple[str, str]]]:
    newest = states.prepare(engine, "running")
    now = states.exchange_start(newest)
    fake = fake_exchange(start=now, speed=0)
    app = states.build_app(engine, database_url, now=now, exchange_url=fake.base_url)
    return TestClient(app, raise_server_exceptions=False), states.routes(app)


def test_every_json_route_returns_exactly_the_documented_keys(
    running: tuple[TestClient, list[tuple[str, str]]],
) -> None:
    client, served = running
    examples = parse_examples(DOCS.read_text(encoding="utf-8"))
    api_routes = [
        (method, path)
        for method, path in served
        if path.startswith("/api/")
        and path not in NOT_JSON_ROUTES
        and not path.startswith("/api/docs/")
    ]
    undocumented = [f"{m} {p}" for m, p in api_routes if not examples.get((m, p))]
    assert not undocumented, f"docs/api.md has no ```json example for: {undocumented}"
    stale = [f"{m} {p}" for m, p in examples if (m, p) not in served and examples[(m, p)]]
    assert not stale, f"docs/api.md documents routes the app does not serve: {stale}"
    job_id = client.get("/api/jobs").json()["runs"][0]["id"]
    problems: list[str] = []
    # GETs first, so the POSTs' side effects (a new model, new candles) do not move them.
    for method, path in sorted(api_routes, key=lambda route: route[0] != "GET"):
        for example in examples[(method, path)]:
            url = path.replace("{job_id}", str(job_id))
            headers = AUTH if method == "POST" else None
            response = client.request(method, url, params=example.query, headers=headers)
            label = f"{method} {path} {example.query or ''}".strip()
            if response.status_code != example.status:
                problems.append(
                    f"{label}: status {response.status_code}, documented "
                    f"{example.status}: {response.text[:200]}"
                )
                continue
            assert response.headers["content-type"].startswith("application/json"), label
            problems += [f"{label}: {p}" for p in key_differences(example.body, response.json())]
    assert not problems, "\n".join(problems)
