"""The gap fill after a stream reconnect must not trust a stale estimate of the exchange's clock.

Seen in CI: the fake exchange's clock ran 60 times faster than the host's, the offset measured
at the last ingest lagged by candles, and a candle that closed during a drop was taken as not
yet closed: it came only with the next ingest, and its next-candle forecast was never made. A
host clock stepped back after a suspend does the same against the real exchange.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, text

from candlecast.bootstrap import Services
from candlecast.domain import Pair
from candlecast.jobs import sync
from candlecast.runtime import Runtime
from candlecast.service_queue import QueueRunner
from candlecast.service_stream import StreamRunner
from candlecast.store import candle_reads
from candlecast.usecases.build import build_operations
from tests.fake_exchange.fixtures import FakeExchangeFactory
from tests.reliability.exchange_scenarios import fast_client, reliability_settings
from tests.usecase_fakes import no_training

PAIR = Pair("BTCUSDT", "5m")
STEP = 300_000


def _newest(engine: Engine) -> int | None:
    with engine.connect() as connection:
        return candle_reads.last_open_time(connection, symbol=PAIR.symbol, interval=PAIR.interval)


def test_gap_fill_after_a_reconnect_measures_the_clock_again(
    engine: Engine, database_url: str, fake_exchange: FakeExchangeFactory
) -> None:
    fake = fake_exchange(start="2025-09-20T12:02:30Z", speed=0)
    with fast_client(fake.base_url) as client:
        sync.backfill(engine, client, symbol=PAIR.symbol, interval=PAIR.interval, days=1)
    services = Services(settings=reliability_settings(database_url, fake.base_url), engine=engine)
    services.exchange_time()  # the offset, measured once
    stored_before = _newest(engine)
    assert stored_before is not None

    # Three candles close while the offset is not measured again: the estimate now lags.
    fake.clock.advance(3 * STEP)
    assert services.clock.now_ms() < fake.clock.now_ms() - 2 * STEP

    runtime = Runtime(stream_enabled=True)
    operations = build_operations(services, runtime, trainer=no_training)
    runner = StreamRunner(services, runtime, operations, stopping=threading.Event())
    runner.add([PAIR])
    try:
        runner.fill_gaps([PAIR])
    finally:
        runner.close()  # waits for the gap fill

    last_closed = fake.clock.now_ms() // STEP * STEP - STEP
    assert _newest(engine) == last_closed == stored_before + 3 * STEP
    assert abs(services.clock.now_ms() - fake.clock.now_ms()) < 5_000


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_shard_taken_over_is_caught_up_at_once_not_behind_a_dead_holders_job_lock(
    engine: Engine, database_url: str, fake_exchange: FakeExchangeFactory
) -> None:
    """Seen in the scale-out test: the stream holder was killed while running an ingest job of
    a pair of its shard. The new holder's catch-up, queued as an ingest with the same job lock,
    waited until the dead job was found stalled (15 s or more); a candle that closed in the gap
    got no forecast before the next one closed. The new holder now catches up itself."""
    fake = fake_exchange(start="2025-09-20T12:02:30Z", speed=0)
    with fast_client(fake.base_url) as client:
        sync.backfill(engine, client, symbol=PAIR.symbol, interval=PAIR.interval, days=1)
    settings = reliability_settings(database_url, fake.base_url).model_copy(
        update={"stream": True, "stream_shards": 1, "pairs": str(PAIR)}
    )
    services = Services(settings=settings, engine=engine)
    runtime = Runtime(stream_enabled=True)
    operations = build_operations(services, runtime, trainer=no_training)
    operations.follow(PAIR)
    stored_before = _newest(engine)
    assert stored_before is not None
    fake.clock.advance(3 * STEP)  # three candles close while nobody streams the pair

    # The dead holder's ingest: running, with the pair's job lock, on no live worker.
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args, status) "
                "VALUES ('sync', 'candlecast.ingest', :lock, :args, 'doing')"
            ),
            {"lock": f"sync:{PAIR}", "args": f'{{"symbol": "{PAIR.symbol}", "interval": "5m"}}'},
        )

    stream = StreamRunner(services, runtime, operations, stopping=threading.Event())
    changed = threading.Event()
    queue = QueueRunner(
        services, operations, stream, queues=None, concurrency=1, on_change=changed.set
    )
    assert queue.leases is not None
    queue.leases.start()  # no queue worker runs: the queued ingest cannot be what catches up
    try:
        assert changed.wait(15), "the only process took no shard"
        queue.sync_pairs(operations.followed())
        assert queue.streamed() == {PAIR}
        last_closed = fake.clock.now_ms() // STEP * STEP - STEP
        deadline = time.monotonic() + 15
        while _newest(engine) != last_closed:
            assert time.monotonic() < deadline, (_newest(engine), last_closed)
            time.sleep(0.2)
        assert last_closed == stored_before + 3 * STEP
    finally:
        queue.leases.stop()
        stream.close()
        queue.client.close()
