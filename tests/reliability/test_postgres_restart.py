"""PostgreSQL restarts during ingest and during a request burst, on a throwaway cluster.

Fault: the database restarts (fast or immediate, like a crash) while `candlecast ingest` runs;
the database stops for seconds under a burst of API reads.
Expected: the job succeeds or fails with one clean error line, and the next run leaves the
candles exact; the API answers 503 (never 500) while the database is down and 200 again by
itself within seconds of its return.
Figure: candles checked, lost / duplicated / partial / wrong; statuses while down; recovery time.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from candlecast.jobs import sync
from candlecast.store import db
from tests.fake_exchange.fixtures import MAIN_CSV, FakeExchangeFactory
from tests.reliability.exchange_scenarios import INTERVAL, SYMBOL, fast_client
from tests.reliability.pg_cluster import ThrowawayPostgres, unavailable_reason
from tests.reliability.pg_scenarios import (
    DAYS,
    fresh_database,
    outage_during_burst,
    restart_during_ingest,
)
from tests.reliability.support import Tally, iterations

pytestmark = [pytest.mark.shared_data, pytest.mark.postgres]


@pytest.fixture(scope="module")
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with ThrowawayPostgres() as pg:
        yield pg


def test_restart_during_ingest_fails_cleanly_and_the_next_run_repairs(
    throwaway_postgres: ThrowawayPostgres, fake_exchange: FakeExchangeFactory, tmp_path: Path
) -> None:
    fake = fake_exchange(MAIN_CSV, start="2025-09-20T12:02:30Z")
    fake.clock.set(speed=0)
    url = fresh_database(throwaway_postgres, "ingest_restart")
    engine = db.create_store_engine(url, pool=False)
    db.upgrade(engine)
    with fast_client(fake.base_url) as client:
        sync.backfill(engine, client, symbol=SYMBOL, interval=INTERVAL, days=DAYS)
    engine.dispose()
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    total = Tally()
    for _ in range(iterations(2)):
        total.add(restart_during_ingest(throwaway_postgres, fake, url, tmp_path, rng))
    assert total.exact and total.checked > 8000, f"seed {seed}: {total}"


def test_api_answers_503_while_the_database_is_down_and_recovers_by_itself(
    throwaway_postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    url = fresh_database(throwaway_postgres, "api_outage")
    figures = outage_during_burst(throwaway_postgres, url, tmp_path, down_seconds=3.0)
    assert figures.requests > 50, figures
    assert "500" not in figures.statuses, figures
    assert set(figures.down_statuses) == {"503"}, figures
    assert figures.recovered_after_s is not None and figures.recovered_after_s < 5.0, figures
