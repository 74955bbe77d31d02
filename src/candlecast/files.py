"""Candle files: reading dumps and header CSVs into validated rows, writing CSV and Parquet.

Reading is vectorised with pandas over chunks, so a million candles stream through in bounded
memory, and every value keeps the exact string the file gave.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from candlecast.domain import DataFileError, interval_ms, iso_utc
from candlecast.exchange.dumps import MICROSECONDS_ABOVE, open_text, pair_from_name
from candlecast.store.candle_rows import VALUE_NAMES, CandleRow

# The 12 columns of a data.binance.vision kline CSV, in order; the last means nothing.
DUMP_COLUMNS = ("open_time", *VALUE_NAMES, "ignore")
EXPORT_COLUMNS = DUMP_COLUMNS[:-1]
REQUIRED_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")
OPTIONAL_DECIMALS = ("quote_volume", "taker_buy_base", "taker_buy_quote")
CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class FileKind:
    """How a candle file is laid out, and which pair it holds."""

    path: Path
    symbol: str
    interval: str
    has_header: bool
    source: str  # "archive" for data.binance.vision dumps, "file" for CSVs with a header


def describe(
    path: Path,
    *,
    symbol: str | None,
    interval: str | None,
    fallback: tuple[str, str] | None = None,
) -> FileKind:
    """Works out the layout and pair of a file: its name, else the flags, else the fallback."""
    from_name = pair_from_name(path)
    if from_name is not None:
        if symbol is not None and symbol != from_name[0]:
            raise DataFileError(str(path), f"file name says {from_name[0]}, --symbol says {symbol}")
        if interval is not None and interval != from_name[1]:
            raise DataFileError(
                str(path), f"file name says {from_name[1]}, --interval says {interval}"
            )
        symbol, interval = from_name
    if fallback is not None:
        symbol = symbol or fallback[0]
        interval = interval or fallback[1]
    if symbol is None or interval is None:
        raise DataFileError(str(path), "no symbol/interval in the file name; pass them")
    interval_ms(interval)
    with open_text(path) as handle:
        first_line = handle.readline()
    first_field = first_line.split(",", 1)[0].strip().strip('"')
    if not first_line.strip():
        raise DataFileError(str(path), "the file is empty", line=1)
    has_header = not first_field.isdigit()
    return FileKind(
        path=path,
        symbol=symbol,
        interval=interval,
        has_header=has_header,
        source="file" if has_header else "archive",
    )


def _epoch_ms(values: pd.Series, *, kind: FileKind, column: str, first_line: int) -> np.ndarray:
    """Parses a time column: dump ms/µs integers, or ISO 8601 / epoch ms in a header CSV."""
    text = values.str.strip()
    digits = text.str.fullmatch(r"\d{9,}")
    if bool(digits.all()):
        raw = text.astype(np.int64).to_numpy()
        return np.where(raw > MICROSECONDS_ABOVE, raw // 1000, raw)
    if not kind.has_header:
        _fail(kind, first_line, ~digits, f"{column} is not an integer timestamp")
    parsed = pd.to_datetime(text.where(~digits), format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna() & ~digits
    _fail(kind, first_line, bad, f"{column} is not ISO 8601 or epoch milliseconds")
    as_ms = parsed.astype("datetime64[ms, UTC]").astype(np.int64).to_numpy()
    epoch = pd.to_numeric(text.where(digits), errors="coerce").fillna(0).astype(np.int64)
    return np.where(digits.to_numpy(), epoch.to_numpy(), as_ms)


def _fail(kind: FileKind, first_line: int, bad: Any, message: str) -> None:
    mask = np.asarray(bad, dtype=bool)
    if mask.any():
        line = first_line + int(np.argmax(mask))
        raise DataFileError(str(kind.path), message, line=line)


def _validate_chunk(frame: pd.DataFrame, *, kind: FileKind, first_line: int) -> list[CandleRow]:
    step = interval_ms(kind.interval)
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise DataFileError(str(kind.path), f"missing column(s): {', '.join(missing)}", line=1)
    for name in frame.columns:
        if frame[name].isna().any() and name in REQUIRED_COLUMNS:
            _fail(kind, first_line, frame[name].isna(), f"too few fields (no {name})")
    open_time = _epoch_ms(frame["open_time"], kind=kind, column="open_time", first_line=first_line)
    if step <= 86_400_000:
        _fail(
            kind,
            first_line,
            open_time % step != 0,
            f"open_time is not on a {kind.interval} boundary",
        )
    expected_close = open_time + step - 1
    if "close_time" in frame.columns and (frame["close_time"].str.strip() != "").any():
        close_time = _epoch_ms(
            frame["close_time"], kind=kind, column="close_time", first_line=first_line
        )
        # Some sources print close_time to the second (…04:59Z): accept any instant inside it.
        _fail(
            kind,
            first_line,
            close_time // 1000 != expected_close // 1000,
            f"close_time is not open_time + {kind.interval} - 1 ms",
        )
    numbers: dict[str, np.ndarray] = {}
    for name in REQUIRED_COLUMNS[1:]:
        parsed = pd.to_numeric(frame[name].str.strip(), errors="coerce")
        _fail(kind, first_line, parsed.isna() | ~np.isfinite(parsed), f"{name} is not a number")
        _fail(kind, first_line, parsed < 0, f"{name} is negative")
        numbers[name] = parsed.to_numpy()
    top = np.maximum(numbers["open"], numbers["close"])
    bottom = np.minimum(numbers["open"], numbers["close"])
    _fail(kind, first_line, numbers["high"] < top, "high is below open or close")
    _fail(kind, first_line, numbers["low"] > bottom, "low is above open or close")
    columns: dict[str, list[Any]] = {
        name: frame[name].str.strip().tolist() for name in REQUIRED_COLUMNS[1:]
    }
    for name in OPTIONAL_DECIMALS:
        if name in frame.columns:
            cleaned = frame[name].fillna("").str.strip()
            bad = (cleaned != "") & pd.to_numeric(cleaned, errors="coerce").isna()
            _fail(kind, first_line, bad, f"{name} is not a number")
            columns[name] = [value or None for value in cleaned.tolist()]
        else:
            columns[name] = [None] * len(frame)
    if "trades" in frame.columns:
        cleaned = frame["trades"].fillna("").str.strip()
        _fail(
            kind,
            first_line,
            (cleaned != "") & ~cleaned.str.fullmatch(r"\d+"),
            "trades is not an integer",
        )
        columns["trades"] = [int(value) if value else None for value in cleaned.tolist()]
    else:
        columns["trades"] = [None] * len(frame)
    return list(
        zip(
            open_time.tolist(),
            columns["open"],
            columns["high"],
            columns["low"],
            columns["close"],
            columns["volume"],
            expected_close.tolist(),
            columns["quote_volume"],
            columns["trades"],
            columns["taker_buy_base"],
            columns["taker_buy_quote"],
            strict=True,
        )
    )


def read_chunks(kind: FileKind, *, chunk_rows: int | None = None) -> Iterator[list[CandleRow]]:
    """Yields validated rows of a file, chunk by chunk; raises DataFileError naming the line."""
    options: dict[str, Any] = {
        "dtype": str,
        "keep_default_na": False,
        "na_values": [],
        "chunksize": chunk_rows or CHUNK_ROWS,
        "skip_blank_lines": True,
    }
    if not kind.has_header:
        options["header"] = None
        options["names"] = list(DUMP_COLUMNS)
    line = 2 if kind.has_header else 1
    seen_last: int | None = None
    with open_text(kind.path) as handle:
        try:
            reader = pd.read_csv(handle, **options)
            for frame in reader:
                if kind.has_header:
                    frame.columns = [str(name).strip().lower() for name in frame.columns]
                rows = _validate_chunk(frame, kind=kind, first_line=line)
                seen_last = _check_order(kind, rows, seen_last, line)
                line += len(frame)
                yield rows
        except pd.errors.ParserError as exc:
            raise DataFileError(str(kind.path), f"malformed CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise DataFileError(str(kind.path), f"not UTF-8 text: {exc.reason}") from None


def _check_order(
    kind: FileKind, rows: list[CandleRow], previous: int | None, line: int
) -> int | None:
    """Rows must strictly ascend; a repeated open_time would mean two truths for one candle."""
    times = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    if len(times) == 0:
        return previous
    if previous is not None and times[0] <= previous:
        raise DataFileError(str(kind.path), "open_time does not ascend", line=line)
    steps = np.diff(times)
    _fail(kind, line + 1, steps <= 0, "open_time does not ascend (duplicate or out of order)")
    return int(times[-1])


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


def write_parquet(rows: Iterable[tuple[object, ...]], path: Path, *, batch: int = 100_000) -> int:
    """Writes rows as Parquet: times as UTC timestamps, prices as their exact strings."""
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
        ]
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
