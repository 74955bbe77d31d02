"""docs/api.md says what the code returns: every JSON route's keys match the documented example.

The convention (stated in docs/api.md): each route has a `### METHOD /path` section with one or
more ```json blocks, each an example answer. The block's info string may add the status code and
a query, e.g. ```json 202 ?wait=false. A block marked ```json request is the request body sent
with the examples after it. Keys are compared exactly at the top level and in every nested
object the example spells out; an empty object `{}` stands for keys that vary (metrics,
parameters), and a list's first element describes every element. A route that answers 204 (no
body) has its heading and no example: it is called after the others, and again for its 404.
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
from tests.fake_exchange.market import Market
from tests.fuzz import states
from tests.integration.api_support import AUTH

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# Not JSON, or not ours to describe: the OpenAPI document itself and Swagger UI.
NOT_JSON_ROUTES = {"/api/openapi.json", "/api/docs"}
# Answers with no body: 204, then 404 for the same request (the pair is gone).
NO_CONTENT_ROUTES = {("DELETE", "/api/pairs/{symbol}/{interval}")}
# Another symbol the fake exchange lists, for POST /api/pairs (docs/api.md's request body).
ADDED_SYMBOL = "ETHUSDT"
_HEADING = re.compile(r"^### (GET|POST|DELETE) (/\S*)\s*$")
_FENCE = re.compile(r"^```json\b(.*)$")
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")
_ORDER = {"GET": 0, "POST": 1, "DELETE": 2}


@dataclass(frozen=True)
class Example:
    """One documented answer of a route."""

    method: str
    path: str
    status: int
    query: dict[str, str]
    body: Any
    request: Any = None


def parse_examples(text: str) -> dict[tuple[str, str], list[Example]]:
    """Every ```json block of docs/api.md, by the (method, path) heading it sits under."""
    found: dict[tuple[str, str], list[Example]] = {}
    route: tuple[str, str] | None = None
    request: Any = None
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        heading = _HEADING.match(line)
        if heading:
            route = (heading.group(1), heading.group(2))
            found.setdefault(route, [])
            request = None
        elif line.startswith("#"):
            route = None
        fence = _FENCE.match(line)
        if fence and route is not None:
            end = lines.index("```", index + 1)
            words = fence.group(1).split()
            status = next((int(w) for w in words if w.isdigit()), 200)
            query = next((dict(parse_qsl(w[1:])) for w in words if w.startswith("?")), {})
            body = json.loads("\n".join(lines[index + 1 : end]))
            if "request" in words:
                request = body
            else:
                found[route].append(Example(route[0], route[1], status, query, body, request))
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
    base = fake.market  # the same candles under another name: a second listed symbol
    fake.add_market(Market(ADDED_SYMBOL, base.interval, base.step_ms, base.rows, base.open_times))
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
    undocumented = [
        f"{m} {p}"
        for m, p in api_routes
        if not examples.get((m, p)) and not ((m, p) in NO_CONTENT_ROUTES and (m, p) in examples)
    ]
    assert not undocumented, f"docs/api.md has no ```json example for: {undocumented}"
    stale = [
        f"{m} {p}"
        for m, p in examples
        if (m, p) not in served and (examples[(m, p)] or (m, p) in NO_CONTENT_ROUTES)
    ]
    assert not stale, f"docs/api.md documents routes the app does not serve: {stale}"
    job_id = client.get("/api/jobs").json()["runs"][0]["id"]
    added: dict[str, Any] = next(
        (e.request for e in examples.get(("POST", "/api/pairs"), []) if e.request), {}
    )
    assert added.get("symbol") == ADDED_SYMBOL, "POST /api/pairs' request names another symbol"
    values = {"job_id": str(job_id), **{key: str(value) for key, value in added.items()}}
    problems: list[str] = []
    # GETs first, so the POSTs' side effects (a new model, new candles, a new pair) do not move
    # them; DELETEs last, removing the pair a POST added.
    for method, path in sorted(api_routes, key=lambda route: _ORDER.get(route[0], 3)):
        url = _PATH_PARAMETER.sub(lambda found: values[found.group(1)], path)
        headers = AUTH if method != "GET" else None
        if (method, path) in NO_CONTENT_ROUTES:
            first, again = client.request(method, url, headers=headers), None
            if first.status_code == 204 and not first.content:
                again = client.request(method, url, headers=headers)
            if again is None or again.status_code != 404:
                problems.append(f"{method} {path}: not 204 and then 404: {first.status_code}")
            continue
        for example in examples[(method, path)]:
            response = client.request(
                method, url, params=example.query, headers=headers, json=example.request
            )
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
