"""The full schemathesis run: at least 1,000 cases per database state, on SQLite and PostgreSQL.

    python -m benchmarks.fuzz [--examples 25] [--sequences 30] [--database sqlite postgresql]

Prints one line per (database, state): cases, undeclared 5xx, schema mismatches, seconds; and
the first failing cases, if any. The CI test (tests/fuzz) runs the same code with few examples.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.fake_exchange.server import FakeExchange
from tests.fuzz import runner, states
from tests.shared_data import MAIN_CSV

from benchmarks.common import SHARED_DATA, machine, scratch_database
from candlecast.store import db


def run_state(kind: str, state: str, *, examples: int, sequences: int) -> runner.FuzzReport:
    """Fuzzes one database state: every operation, then the stateful sequences."""
    with tempfile.TemporaryDirectory() as folder, scratch_database(kind, Path(folder)) as url:
        engine = db.create_store_engine(url)
        try:
            newest = states.prepare(engine, state)
            now = states.exchange_start(newest)
            fake = FakeExchange(csv_path=SHARED_DATA / MAIN_CSV, start_ms=now, speed=0).start()
            try:
                app = states.build_app(engine, url, now=now, exchange_url=fake.base_url)
                report = runner.fuzz_operations(app, max_examples=examples)
                report.add(runner.fuzz_stateful(app, max_examples=sequences))
                states.drain(app)
            finally:
                fake.stop()
        finally:
            engine.dispose()
    return report


def main() -> None:
    """Runs every state on the chosen databases and prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=25, help="per operation, mode and auth")
    parser.add_argument("--sequences", type=int, default=30, help="stateful sequences")
    parser.add_argument("--database", nargs="+", default=["sqlite", "postgresql"])
    options = parser.parse_args()
    print(f"machine: {machine()}; examples {options.examples}, sequences {options.sequences}")
    print(
        "| database | state | cases | undeclared 5xx | schema mismatches | timeouts "
        "| sequences cut short | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind in options.database:
        for state in states.STATES:
            started = time.perf_counter()
            report = run_state(kind, state, examples=options.examples, sequences=options.sequences)
            seconds = time.perf_counter() - started
            print(
                f"| {kind} | {state} | {report.cases} | {report.server_errors} | "
                f"{report.mismatches} | {report.timeouts} | {report.cut_short} | {seconds:.0f} |",
                flush=True,
            )
            for line in report.examples:
                print(f"    {kind} {state}: {line}", flush=True)


if __name__ == "__main__":
    main()
