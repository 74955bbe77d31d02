"""The Prometheus collector for database figures and runtime state, read at scrape time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from candlecast.domain import interval_ms
from candlecast.metrics.queue import queue_families
from candlecast.metrics.snapshot import Figures, RunTally, read_figures
from candlecast.runtime import Runtime

log = logging.getLogger(__name__)

PAIR = ("symbol", "interval")


class StoreCollector(Collector):
    """Database figures and runtime state, read at scrape time.

    A snapshot older than `ttl` is refreshed in a background thread. When the last read was
    quick, the scrape waits up to `max_wait` seconds for the new one; when it was slow, the
    scrape answers with the previous one at once and the read starts after the answer is sent
    (refresh_if_due), so it never competes with the scrape for the CPU. Either way a slow or
    unreachable database never makes /metrics slow, and the figures' age is exported.
    """

    def __init__(
        self, engine: Engine, runtime: Runtime, *, ttl: float = 2.0, max_wait: float = 0.005
    ) -> None:
        self._engine = engine
        self._runtime = runtime
        self.ttl = ttl
        self.max_wait = max_wait
        self._lock = threading.Lock()
        self._snapshot: Figures | None = None
        self._refreshing: threading.Event | None = None
        self._due = False
        self._failures = 0
        self._tally = RunTally()

    def snapshot(self) -> Figures | None:
        """The freshest snapshot available within the wait allowed."""
        with self._lock:
            current = self._snapshot
            fresh = current is not None and time.monotonic() - current.read_at <= self.ttl
            if fresh:
                return current
            if current is not None and current.seconds > self.max_wait:
                self._due = True
                return current
            done = self._start_refresh()
        done.wait(self.max_wait)
        with self._lock:
            return self._snapshot

    def refresh_if_due(self) -> None:
        """Starts the read a scrape put off; call it once the scrape's answer is sent."""
        with self._lock:
            if self._due:
                self._due = False
                self._start_refresh()

    def _start_refresh(self) -> threading.Event:
        """The running refresh's completion event, starting one if none runs (lock held)."""
        done = self._refreshing
        if done is None:
            done = self._refreshing = threading.Event()
            threading.Thread(
                target=self._refresh, args=(done,), name="candlecast-metrics", daemon=True
            ).start()
        return done

    def _refresh(self, done: threading.Event) -> None:
        try:
            snapshot = read_figures(self._engine, self._tally)
        except Exception as exc:
            # The database being down is reported by /api/health; here it only means old figures.
            with self._lock:
                self._failures += 1
            log.warning("metrics: could not read the database: %s", exc)
            snapshot = None
        with self._lock:
            if snapshot is not None:
                self._snapshot = snapshot
            self._refreshing = None
        done.set()

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot()
        yield from self._runtime_families()
        failures = CounterMetricFamily(
            "candlecast_metrics_db_read_failures",
            "Database reads for /metrics that failed (figures then come from the last good one)",
        )
        failures.add_metric([], self._failures)
        yield failures
        if snapshot is None:
            return
        age = GaugeMetricFamily(
            "candlecast_metrics_db_snapshot_age_seconds",
            "How old the database figures in this scrape are",
        )
        age.add_metric([], max(0.0, time.monotonic() - snapshot.read_at))
        yield age
        read = GaugeMetricFamily(
            "candlecast_metrics_db_read_seconds", "How long the last database read took"
        )
        read.add_metric([], snapshot.seconds)
        yield read
        yield from _candle_families(snapshot, self._runtime.exchange_now_ms())
        yield from _job_families(snapshot)
        yield from _ledger_families(snapshot)
        if snapshot.queue is not None:
            yield from queue_families(snapshot.queue)

    def _runtime_families(self) -> Iterator[Metric]:
        state = self._runtime.snapshot()
        connected = GaugeMetricFamily(
            "candlecast_stream_connected", "1 while the kline WebSocket is connected"
        )
        connected.add_metric([], 1.0 if state["stream_connected"] else 0.0)
        yield connected
        offset = self._runtime.clock.offset_ms
        if offset is not None:
            clock = GaugeMetricFamily(
                "candlecast_exchange_clock_offset_seconds",
                "The exchange's clock minus this host's, measured from GET /api/v3/time",
            )
            clock.add_metric([], offset / 1000)
            yield clock


def _candle_families(snapshot: Figures, exchange_now: int) -> Iterator[Metric]:
    stored = GaugeMetricFamily("candlecast_candles_stored", "Closed candles stored", labels=PAIR)
    missing = GaugeMetricFamily(
        "candlecast_candles_missing",
        "Candles missing between the first and the newest stored one",
        labels=PAIR,
    )
    age = GaugeMetricFamily(
        "candlecast_candle_age_seconds",
        "Seconds since the newest stored candle closed, by the exchange's clock",
        labels=PAIR,
    )
    for pair in snapshot.candles:
        labels = [pair.symbol, pair.interval]
        step = interval_ms(pair.interval)
        span = (pair.last_open_time - pair.first_open_time) // step + 1
        stored.add_metric(labels, pair.stored)
        missing.add_metric(labels, max(0, span - pair.stored))
        age.add_metric(labels, max(0.0, (exchange_now - pair.last_open_time - step) / 1000))
    repaired = CounterMetricFamily(
        "candlecast_candles_repaired",
        "Stored candles rewritten because the exchange's copy differed",
        labels=PAIR,
    )
    for (symbol, interval), count in sorted(snapshot.repaired.items()):
        repaired.add_metric([symbol, interval], count)
    unfillable = GaugeMetricFamily(
        "candlecast_candles_unfillable",
        "Missing candles the exchange itself does not have (known gaps)",
        labels=PAIR,
    )
    for (symbol, interval), count in sorted(snapshot.unfillable.items()):
        unfillable.add_metric([symbol, interval], count)
    yield from (stored, missing, age, repaired, unfillable)


def _job_families(snapshot: Figures) -> Iterator[Metric]:
    runs = CounterMetricFamily(
        "candlecast_job_runs", "Finished job runs, by job and status", labels=("job", "status")
    )
    durations = HistogramMetricFamily(
        "candlecast_job_run_duration_seconds",
        "Durations of finished job runs, by job and status",
        labels=("job", "status"),
    )
    for figure in snapshot.jobs:
        labels = [figure.job, figure.status]
        runs.add_metric(labels, figure.runs)
        buckets = [(repr(bound), count) for bound, count in figure.buckets]
        durations.add_metric(labels, [*buckets, ("+Inf", figure.runs)], figure.seconds)
    running = GaugeMetricFamily(
        "candlecast_job_runs_running", "Job runs in progress", labels=("job",)
    )
    for name, count in sorted(snapshot.running.items()):
        running.add_metric([name], count)
    yield from (runs, durations, running)


def _ledger_families(snapshot: Figures) -> Iterator[Metric]:
    recorded = CounterMetricFamily(
        "candlecast_forecasts_recorded", "Forecasts written to the ledger", labels=PAIR
    )
    scored = CounterMetricFamily(
        "candlecast_forecasts_scored", "Ledger forecasts whose candle has closed", labels=PAIR
    )
    mae = GaugeMetricFamily(
        "candlecast_prospective_close_mae",
        "Mean absolute error of the next close over the newest 24 h of scored forecasts, the "
        "model's beside persistence's (price units)",
        labels=(*PAIR, "forecaster"),
    )
    window = GaugeMetricFamily(
        "candlecast_prospective_window_forecasts",
        "Scored forecasts in the prospective MAE's 24 h window",
        labels=PAIR,
    )
    for pair in snapshot.forecasts:
        labels = [pair.symbol, pair.interval]
        recorded.add_metric(labels, pair.recorded)
        scored.add_metric(labels, pair.scored)
        window.add_metric(labels, pair.window_scored)
        if pair.model_mae is not None:
            mae.add_metric([*labels, "model"], pair.model_mae)
        if pair.persistence_mae is not None:
            mae.add_metric([*labels, "persistence"], pair.persistence_mae)
    yield from (recorded, scored, mae, window)
