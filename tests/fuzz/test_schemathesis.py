"""Schemathesis against the app's own OpenAPI schema, on a database in each state that matters.

Each operation gets positive and negative data, with and without the bearer token, then the
stateful phase chains calls. Outcome expected: no 5xx the schema does not declare (health's 503
is its contract), and every response matches its declared schema. CI runs a few examples per
operation; CANDLECAST_FUZZ_EXAMPLES raises that (benchmarks/fuzz.py runs >= 1,000 cases a state).
"""

from __future__ import annotations

import os

import pytest
from fastapi import FastAPI, Response
from pydantic import BaseModel
from sqlalchemy import Engine

from tests.fake_exchange.fixtures import FakeExchangeFactory
from tests.fuzz import runner, states

EXAMPLES = int(os.environ.get("CANDLECAST_FUZZ_EXAMPLES", "1"))


@pytest.mark.parametrize("state", states.STATES)
def test_no_server_error_and_every_response_matches_its_schema(
    state: str, engine: Engine, database_url: str, fake_exchange: FakeExchangeFactory
) -> None:
    newest = states.prepare(engine, state)
    now = states.exchange_start(newest)
    fake = fake_exchange(start=now, speed=0)
    app = states.build_app(engine, database_url, now=now, exchange_url=fake.base_url)
    report = runner.fuzz_operations(app, max_examples=EXAMPLES)
    report.add(runner.fuzz_stateful(app, max_examples=EXAMPLES))
    states.drain(app)
    assert report.cases > 0
    assert report.failures == 0, "\n".join(report.examples)


class Declared(BaseModel):
    value: int


def test_the_fuzzer_counts_a_server_error_and_a_schema_mismatch() -> None:
    """The harness itself can fail: a route answering 500 or an undeclared body is caught."""
    app = FastAPI(openapi_url="/api/openapi.json")

    @app.get("/api/broken")
    def broken() -> Response:
        return Response("boom", status_code=500)

    @app.get("/api/liar", response_model=Declared)
    def liar() -> Response:
        return Response('{"value": "not a number"}', media_type="application/json")

    report = runner.fuzz_operations(app, max_examples=1)
    assert report.server_errors >= 1 and report.mismatches >= 1


def test_every_error_status_is_declared_with_the_body_errors_have(
    engine: Engine, database_url: str
) -> None:
    """422 (and any other error) is {"detail": "..."}, as OpenAPI now says; FastAPI's default
    declared a list of objects, so every 422 used to break the schema."""
    app = states.build_app(engine, database_url, now=0)
    schema = app.openapi()
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status in ("422", "default"):
                body = operation["responses"][status]["content"]["application/json"]["schema"]
                assert body == error, (method, path, status)
    assert schema["components"]["schemas"]["ErrorResponse"]["required"] == ["detail"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_series_columns_match_the_declared_schema(engine: Engine, database_url: str) -> None:
    """format=columns used to contradict the declared (points-only) schema."""
    newest = states.prepare(engine, "starting")
    app = states.build_app(engine, database_url, now=states.exchange_start(newest))
    operation = runner.load_schema(app)["/api/series"]["GET"]
    for query in ({"format": "columns"}, {"format": "columns", "max_points": 15}, {}):
        case = operation.Case(query=query)
        response = case.call()
        assert response.status_code == 200
        case.validate_response(response, checks=runner.CHECKS)
