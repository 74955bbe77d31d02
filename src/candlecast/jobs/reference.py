"""Cross-asset reference pairs: which other pair's candles a pair's model reads, and the frames
that carry them (ml.features.attach_reference). The choice is the store's list of followed
pairs: a reference that is not followed gets no new candles, so it is never chosen."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection

from candlecast.domain import Pair
from candlecast.ml.features import attach_reference
from candlecast.store import candle_reads
from candlecast.store import pairs as pair_store


def choose_reference(
    connection: Connection, *, symbol: str, interval: str, wanted: str | None
) -> str | None:
    """`wanted` (settings.reference_symbol) when it is another pair followed at this interval."""
    if not wanted or wanted == symbol:
        return None
    if not pair_store.is_followed(connection, Pair(wanted, interval)):
        return None
    return wanted


def read_history(
    connection: Connection,
    *,
    symbol: str,
    interval: str,
    start: int | None = None,
    end: int | None = None,
    reference: str | None = None,
) -> pd.DataFrame:
    """The pair's candles as candle_reads.read_frame gives them, with the reference pair's
    candles of the same open_times beside them when `reference` names one."""
    frame = candle_reads.read_frame(
        connection, symbol=symbol, interval=interval, start=start, end=end
    )
    if reference is None:
        return frame
    return with_reference(connection, frame, interval=interval, reference=reference)


def with_reference(
    connection: Connection, frame: pd.DataFrame, *, interval: str, reference: str
) -> pd.DataFrame:
    """The frame with the stored candles of `reference` at its open_times beside it."""
    if frame.empty:
        return frame
    times = frame["open_time"]
    ref = candle_reads.read_frame(
        connection,
        symbol=reference,
        interval=interval,
        start=int(times.iloc[0]),
        end=int(times.iloc[-1]),
    )
    return attach_reference(frame, ref)
