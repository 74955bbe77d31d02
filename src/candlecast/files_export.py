"""Writing candles out: CSV with a header, and Parquet that `candlecast import` reads back
with no flags. Values are written as the exact strings stored."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from candlecast.domain import iso_utc
from candlecast.store.candle_rows import VALUE_NAMES

# A dump's columns without its meaningless last one.
EXPORT_COLUMNS = ("open_time", *VALUE_NAMES)


def _format_row(row: tuple[object, ...]) -> list[str]:
    open_time, *values = row
    out = [iso_utc(int(str(open_time)))]
    for name, value in zip(EXPORT_COLUMNS[1:], values, strict=True):
        if value is None:
            out.append("")
        elif name == "close_time":
            out.append(iso_utc(int(str(value))))
        else:
            out.append(str(value))
    return out


def write_csv(rows: Iterable[tuple[object, ...]], handle: IO[str]) -> int:
    """Writes exact-string rows as CSV with a header; returns how many rows were written."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow(_format_row(row))
        count += 1
    return count


def write_parquet(
    rows: Iterable[tuple[object, ...]],
    path: Path,
    *,
    symbol: str,
    interval: str,
    batch: int = 100_000,
) -> int:
    """Writes rows as Parquet: times as UTC timestamps, prices as their exact strings, and the
    pair in the file metadata, so that `candlecast import` needs no flags to read it back."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("open_time", pa.timestamp("ms", tz="UTC")),
            *((name, pa.string()) for name in ("open", "high", "low", "close", "volume")),
            ("close_time", pa.timestamp("ms", tz="UTC")),
            ("quote_volume", pa.string()),
            ("trades", pa.int64()),
            ("taker_buy_base", pa.string()),
            ("taker_buy_quote", pa.string()),
        ],
        metadata={"candlecast.symbol": symbol, "candlecast.interval": interval},
    )
    count = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        buffer: list[tuple[object, ...]] = []
        for row in rows:
            buffer.append(row)
            if len(buffer) >= batch:
                writer.write_table(_arrow_table(buffer, schema))
                count += len(buffer)
                buffer = []
        if buffer or count == 0:
            writer.write_table(_arrow_table(buffer, schema))
            count += len(buffer)
    return count


def _arrow_table(rows: list[tuple[object, ...]], schema: Any) -> Any:
    import pyarrow as pa

    columns: list[tuple[object, ...]] = (
        list(zip(*rows, strict=True)) if rows else [() for _ in EXPORT_COLUMNS]
    )
    arrays = []
    for name, values in zip(EXPORT_COLUMNS, columns, strict=True):
        if name in {"open_time", "close_time", "trades"}:
            arrays.append(pa.array([None if v is None else int(str(v)) for v in values]))
        else:
            arrays.append(pa.array([None if v is None else str(v) for v in values]))
    return pa.Table.from_arrays(
        [array.cast(field.type) for array, field in zip(arrays, schema, strict=True)],
        schema=schema,
    )
