"""Schemathesis over the app's own OpenAPI schema, counting cases, 5xx and schema mismatches.

Shared by the CI test (a few examples per operation) and benchmarks/fuzz.py (the full run).
Every operation is driven with positive and negative data, with and without the bearer token;
then the stateful phase chains operations through the links schemathesis infers.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase
from hypothesis.stateful import run_state_machine_as_test
from schemathesis import GenerationMode
from schemathesis.checks import response_schema_conformance
from schemathesis.core.failures import Failure, FailureGroup

from tests.integration.api_support import AUTH

CHECKS = [response_schema_conformance]
# Long POSTs answer 202 after CANDLECAST_TRAIN_WAIT_SECONDS (states.build_app sets 2 s), so
# every request must be answered well within this.
CALL_TIMEOUT_SECONDS = 30


@dataclass
class FuzzReport:
    """What one run did: cases sent, server errors, schema mismatches and their first lines."""

    cases: int = 0
    server_errors: int = 0
    mismatches: int = 0
    cut_short: int = 0
    timeouts: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, other: FuzzReport) -> None:
        """Adds another run's figures to these."""
        self.cases += other.cases
        self.server_errors += other.server_errors
        self.mismatches += other.mismatches
        self.cut_short += other.cut_short
        self.timeouts += other.timeouts
        self.examples.extend(other.examples)

    @property
    def failures(self) -> int:
        """Server errors, schema mismatches and requests left unanswered."""
        return self.server_errors + self.mismatches + self.timeouts


class _Tracebacks(logging.Handler):
    """Keeps the server-side traceback of every 500, so a report says where it came from."""

    def __init__(self, report: FuzzReport) -> None:
        super().__init__(logging.ERROR)
        self.report = report

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and len(self.report.examples) < 40:
            lines = "".join(traceback.format_exception(*record.exc_info)).splitlines()
            self.report.examples.append(record.getMessage() + " | " + " / ".join(lines[-6:]))


@contextmanager
def tracebacks_into(report: FuzzReport) -> Iterator[None]:
    """Adds the traceback of each unhandled error logged while inside to the report."""
    handler = _Tracebacks(report)
    logger = logging.getLogger("candlecast.api.middleware")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def load_schema(app: FastAPI) -> Any:
    """The app's OpenAPI schema, bound to the app so cases call it in-process."""
    return schemathesis.openapi.from_asgi("/api/openapi.json", app)


def add_links(app: FastAPI) -> int:
    """OpenAPI links for the stateful phase (FastAPI writes none); returns how many.

    A POST answering with the pair it worked on leads to every GET taking that pair; a response
    carrying a job id leads to the route showing that job, when the app has one.
    """
    schema = app.openapi()
    paths: dict[str, dict[str, Any]] = schema["paths"]
    pair_readers = [
        (path, operation.get("operationId"))
        for path, operations in paths.items()
        for method, operation in operations.items()
        if method == "get"
        and {"symbol", "interval"} <= {p["name"] for p in operation.get("parameters", [])}
    ]
    job_readers = [
        (path, ops["get"])
        for path, ops in paths.items()
        if path.startswith("/api/jobs/{") and "get" in ops
    ]
    added = 0
    for operations in paths.values():
        for method, operation in operations.items():
            if method != "post":
                continue
            for status, response in operation.get("responses", {}).items():
                fields = _response_fields(schema, response)
                links: dict[str, Any] = response.setdefault("links", {})
                if {"symbol", "interval"} <= fields:
                    for _path, operation_id in pair_readers:
                        links[f"pair-to-{operation_id}"] = {
                            "operationId": operation_id,
                            "parameters": {
                                "symbol": "$response.body#/symbol",
                                "interval": "$response.body#/interval",
                            },
                        }
                if "job_id" in fields:
                    for path, reader in job_readers:
                        name = path.rsplit("{", 1)[1].rstrip("}")
                        links[f"job-{status}"] = {
                            "operationId": reader["operationId"],
                            "parameters": {name: "$response.body#/job_id"},
                        }
                added += len(links)
                if not links:
                    del response["links"]
    return added


def _response_fields(schema: dict[str, Any], response: dict[str, Any]) -> set[str]:
    body = response.get("content", {}).get("application/json", {}).get("schema", {})
    reference = body.get("$ref", "")
    if reference.startswith("#/components/schemas/"):
        body = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]
    return set(body.get("properties", {}))


def _failures_of(error: BaseException) -> list[BaseException]:
    if isinstance(error, FailureGroup):
        return list(error.exceptions)
    return [error]


def _example(report: FuzzReport, case: Any, response: Any, title: str) -> None:
    if len(report.examples) < 20:
        query = repr(case.query)[:120]
        line = f"{case.method} {case.formatted_path} {query} -> {response.status_code}: {title}"
        report.examples.append(line)


def declares(case: Any, status: int) -> bool:
    """Whether the operation's schema names this exact status (health declares its 503)."""
    responses = case.operation.definition.raw.get("responses", {})
    return str(status) in responses


def validate(report: FuzzReport, case: Any, response: Any, headers: dict[str, str] | None) -> None:
    """Counts one case: an undeclared 5xx, or a body that does not match its declared schema."""
    report.cases += 1
    if response.status_code >= 500 and not declares(case, response.status_code):
        report.server_errors += 1
        _example(report, case, response, response.text[:200])
        return
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except (AssertionError, Failure, FailureGroup) as error:
        for failure in _failures_of(error):
            report.mismatches += 1
            title = failure.title if isinstance(failure, Failure) else type(failure).__name__
            _example(report, case, response, f"{title} {str(failure)[:300]!r}")


def _check(report: FuzzReport, case: Any, headers: dict[str, str] | None) -> None:
    try:
        response = case.call(headers=headers, timeout=CALL_TIMEOUT_SECONDS)
    except requests.exceptions.Timeout:
        report.cases += 1
        report.timeouts += 1
        if len(report.examples) < 20:
            report.examples.append(
                f"{case.method} {case.formatted_path} {case.query!r:.120}: "
                f"no answer within {CALL_TIMEOUT_SECONDS} s"
            )
        return
    validate(report, case, response, headers)


def _settings(max_examples: int, seed: int | None) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


def fuzz_operations(app: FastAPI, *, max_examples: int, seed: int | None = None) -> FuzzReport:
    """Every operation, positive and negative data, with and without the token."""
    report = FuzzReport()
    schema = load_schema(app)
    with tracebacks_into(report):
        _fuzz_each(report, schema, max_examples=max_examples, seed=seed)
    return report


def _fuzz_each(report: FuzzReport, schema: Any, *, max_examples: int, seed: int | None) -> None:
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            for headers in (AUTH, None):
                run = _one_operation(report, strategy, headers)
                try:
                    hypothesis.seed(seed or 0)(_settings(max_examples, seed)(run))()
                except hypothesis.errors.Unsatisfiable:
                    # No invalid input exists for an operation without parameters.
                    continue


def _one_operation(report: FuzzReport, strategy: Any, headers: dict[str, str] | None) -> Any:
    @hypothesis.given(case=strategy)
    def run(case: Any) -> None:
        _check(report, case, headers)

    return run


def fuzz_stateful(app: FastAPI, *, max_examples: int, steps: int = 10) -> FuzzReport:
    """Schemathesis' stateful phase: sequences of calls, with the token, every response checked."""
    report = FuzzReport()
    add_links(app)
    schema = load_schema(app)
    # And whatever links schemathesis itself infers from the response schemas.
    schema.apply_stateful_inference(None)
    machine = schema.as_state_machine()

    class Machine(machine):  # type: ignore[misc,valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": dict(AUTH)}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            validate(report, case, response, AUTH)

    settings = hypothesis.settings(
        max_examples=1,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    # One sequence per engine run: which transitions exist depends on earlier responses (the
    # database changes between runs), which Hypothesis calls a flaky strategy when it replays a
    # prefix. Such a sequence is cut short; every call it made was still checked.
    with tracebacks_into(report):
        for sequence in range(max_examples):
            try:
                hypothesis.seed(sequence)(
                    lambda: run_state_machine_as_test(Machine, settings=settings)
                )()
            except (hypothesis.errors.Flaky, hypothesis.errors.InvalidDefinition):
                # InvalidDefinition: no transition applies from where the sequence got to.
                report.cut_short += 1
    return report
