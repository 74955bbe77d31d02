"""One pair at a glance, for the markets page: price, the last day's closes, the champion, the
newest forecast and the last week's skill. A handful of indexed reads per pair."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Float, cast, select

from candlecast.domain import Pair, interval_ms
from candlecast.store import candle_reads, ledger, registry
from candlecast.store.tables import forecasts

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
# The sparkline keeps at most this many closes (strided evenly, the newest always kept).
SPARKLINE_POINTS = 96


@dataclass(frozen=True, slots=True)
class NextForecast:
    """The newest recorded forecast of a pair."""

    target_open_time: int
    close: float
    close_lo: float
    close_hi: float
    prob_up: float


@dataclass(frozen=True, slots=True)
class Skill:
    """Skill (1 - MAE / baseline MAE) of scored forecasts: the close against persistence, the
    range against the naive last range."""

    close: float | None
    range: float | None
    forecasts: int


@dataclass(frozen=True, slots=True)
class PairSummary:
    """What the markets page shows of a pair (all from the database)."""

    pair: Pair
    last_open_time: int | None
    last_close: float | None
    change_24h_pct: float | None
    sparkline: tuple[float, ...]
    champion_id: int | None
    forecast: NextForecast | None
    skill_7d: Skill | None


def _skill(model_error: float, baseline_error: float) -> float | None:
    if baseline_error <= 0:
        return None
    return 1.0 - model_error / baseline_error


def week_skill(connection: Connection, pair: Pair, *, newest: int) -> Skill | None:
    """Skill over forecasts scored for candles in the 7 days up to `newest`."""
    rows = connection.execute(
        select(
            cast(forecasts.c.pred_close, Float),
            cast(forecasts.c.asof_close, Float),
            cast(forecasts.c.real_close, Float),
            cast(forecasts.c.pred_range, Float),
            cast(forecasts.c.real_high, Float),
            cast(forecasts.c.real_low, Float),
            forecasts.c.baselines,
        ).where(
            forecasts.c.symbol == pair.symbol,
            forecasts.c.interval == pair.interval,
            forecasts.c.scored_at.is_not(None),
            forecasts.c.target_open_time > newest - WEEK_MS,
        )
    ).all()
    if not rows:
        return None
    close_error = persistence_error = range_error = naive_error = 0.0
    ranged = 0
    for pred_close, asof_close, real_close, pred_range, high, low, baselines in rows:
        close_error += abs(pred_close - real_close)
        persistence_error += abs(asof_close - real_close)
        naive = (baselines or {}).get("base_range_next")
        if naive is not None:
            realized = high - low
            range_error += abs(pred_range - realized)
            naive_error += abs(float(naive) - realized)
            ranged += 1
    return Skill(
        close=_skill(close_error, persistence_error),
        range=_skill(range_error, naive_error) if ranged else None,
        forecasts=len(rows),
    )


def summarize(connection: Connection, pair: Pair) -> PairSummary:
    """The pair's summary as stored now."""
    newest = candle_reads.last_open_time(connection, symbol=pair.symbol, interval=pair.interval)
    champion = registry.champion_id(connection, symbol=pair.symbol, interval=pair.interval)
    latest = ledger.latest(connection, symbol=pair.symbol, interval=pair.interval)
    forecast = (
        None
        if latest is None
        else NextForecast(
            target_open_time=int(latest["target_open_time"]),
            close=float(latest["pred_close"]),
            close_lo=float(latest["close_lo"]),
            close_hi=float(latest["close_hi"]),
            prob_up=float(latest["prob_up"]),
        )
    )
    if newest is None:
        return PairSummary(pair, None, None, None, (), champion, forecast, None)
    columns = candle_reads.read_columns(
        connection,
        symbol=pair.symbol,
        interval=pair.interval,
        start=newest - DAY_MS,
        end=newest,
        names=("close",),
    )
    closes = [float(value) for value in columns["close"]]
    times = columns["open_time"]
    last_close = closes[-1] if closes else None
    change = None
    # A day ago means the candle that opened exactly 24 h before the newest one.
    if closes and int(times[0]) == newest - DAY_MS and closes[0] > 0 and last_close is not None:
        change = (last_close / closes[0] - 1.0) * 100.0
    stride = max(1, -(-len(closes) // SPARKLINE_POINTS))
    sparkline = tuple(closes[::-1][::stride][::-1])
    skill = week_skill(connection, pair, newest=newest + interval_ms(pair.interval))
    return PairSummary(pair, newest, last_close, change, sparkline, champion, forecast, skill)
