"""Fast readers for the machine-written candle files: public-data dumps and Parquet exports.

Both are read with pyarrow and validated column-wise, so a month of 1m candles loads in a few
hundredths of a second without importing pandas. Values keep the exact strings of the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from candlecast.domain import DataFileError, interval_ms
from candlecast.exchange.dumps import MICROSECONDS_ABOVE
from candlecast.store.candle_rows import VALUE_NAMES, CandleRow

# The 12 columns of a data.binance.vision kline CSV, in order; the last means nothing.
DUMP_COLUMNS = ("open_time", *VALUE_NAMES, "ignore")
PRICE_NAMES = ("open", "high", "low", "close", "volume")
OPTIONAL_DECIMALS = ("quote_volume", "taker_buy_base", "taker_buy_quote")
# Big enough that a month of 1m candles is one or two batches: the store pays per batch.
_BLOCK_BYTES = 8 << 20


def _i64(value: int) -> pa.Scalar:
    """An int64 scalar built from raw bytes: pyarrow converts a Python value only after
    importing pandas to rule out its types, which would cost this command 0.4 s."""
    raw = pa.py_buffer(value.to_bytes(8, "little", signed=True))
    return pa.Array.from_buffers(pa.int64(), 1, [None, raw])[0]


def _empty_string() -> pa.Scalar:
    offsets = pa.py_buffer(bytes(8))
    return pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(b"")])[0]


def _is_empty(values: pa.Array) -> pa.Array:
    return pc.invert(pc.cast(pc.utf8_length(values), pa.bool_()))


def _first_true(mask: pa.Array) -> int:
    return int(pc.indices_nonzero(mask)[0].as_py())


class _Checker:
    """Raises DataFileError naming the first offending row of a batch."""

    def __init__(self, path: Path, first_line: int) -> None:
        self.path = path
        self.first_line = first_line

    def fail_where(self, mask: Any, message: str) -> None:
        if mask is None or not pc.any(mask).as_py():
            return
        raise DataFileError(str(self.path), message, line=self.first_line + _first_true(mask))

    def fail_at(self, index: int, message: str) -> None:
        raise DataFileError(str(self.path), message, line=self.first_line + index)


def _first_unparsable(values: pa.Array, target: pa.DataType) -> int:
    # Arrow's own cast, value by value: Python's int() and float() accept text Arrow refuses
    # ("+1", " 1"), which would blame the wrong line.
    for index in range(len(values)):
        try:
            pc.cast(values.slice(index, 1), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return index
    return 0


def _numbers(check: _Checker, name: str, values: pa.Array) -> pa.Array:
    try:
        return pc.cast(values, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        check.fail_at(_first_unparsable(values, pa.float64()), f"{name} is not a number")
        raise


def _integers(check: _Checker, name: str, values: pa.Array, message: str) -> pa.Array:
    try:
        return pc.cast(values, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        check.fail_at(_first_unparsable(values, pa.int64()), message)
        raise


def _dump_epoch_ms(check: _Checker, name: str, values: pa.Array) -> pa.Array:
    """Dump times are ms before 2025 and µs from 2025 on; a value above 1e13 is µs."""
    raw = _integers(check, name, values, f"{name} is not an integer timestamp")
    return pc.if_else(pc.greater(raw, _i64(MICROSECONDS_ABOVE)), pc.divide(raw, _i64(1000)), raw)


def _nullable(values: pa.Array) -> pa.Array:
    trimmed = pc.utf8_trim_whitespace(values)
    return pc.if_else(_is_empty(trimmed), pa.nulls(1, pa.string())[0], trimmed)


def validate(
    check: _Checker,
    *,
    interval: str,
    open_time: pa.Array,
    close_time: pa.Array | None,
    values: dict[str, pa.Array],
) -> list[CandleRow]:
    """Checks one batch column-wise and returns its rows; values stay the file's strings."""
    step = interval_ms(interval)
    check.fail_where(pc.is_null(open_time), "open_time is missing")
    zero, second = _i64(0), _i64(1000)
    if step <= 86_400_000:
        on_step = pc.multiply(pc.divide(open_time, _i64(step)), _i64(step))
        check.fail_where(
            pc.not_equal(pc.subtract(open_time, on_step), zero),
            f"open_time is not on a {interval} boundary",
        )
    expected_close = pc.add(open_time, _i64(step - 1))
    if close_time is not None:
        # Some sources print close_time to the second (…04:59Z): accept any instant inside it.
        check.fail_where(
            pc.not_equal(pc.divide(close_time, second), pc.divide(expected_close, second)),
            f"close_time is not open_time + {interval} - 1 ms",
        )
    prices = {name: pc.utf8_trim_whitespace(values[name]) for name in PRICE_NAMES}
    numbers = {name: _numbers(check, name, prices[name]) for name in PRICE_NAMES}
    for name in PRICE_NAMES:
        check.fail_where(pc.invert(pc.is_finite(numbers[name])), f"{name} is not a number")
        check.fail_where(pc.less(numbers[name], zero), f"{name} is negative")
    top = pc.max_element_wise(numbers["open"], numbers["close"])
    bottom = pc.min_element_wise(numbers["open"], numbers["close"])
    check.fail_where(pc.less(numbers["high"], top), "high is below open or close")
    check.fail_where(pc.greater(numbers["low"], bottom), "low is above open or close")
    optional: dict[str, list[Any]] = {}
    for name in OPTIONAL_DECIMALS:
        if name in values:
            cleaned = _nullable(values[name])
            _numbers(check, name, cleaned)
            optional[name] = cleaned.to_pylist()
        else:
            optional[name] = [None] * len(open_time)
    if "trades" in values:
        trades = _integers(check, "trades", _nullable(values["trades"]), "trades is not an integer")
        check.fail_where(pc.less(trades, zero), "trades is not an integer")
        optional["trades"] = trades.to_pylist()
    else:
        optional["trades"] = [None] * len(open_time)
    return list(
        zip(
            open_time.to_pylist(),
            *(prices[name].to_pylist() for name in PRICE_NAMES),
            expected_close.to_pylist(),
            optional["quote_volume"],
            optional["trades"],
            optional["taker_buy_base"],
            optional["taker_buy_quote"],
            strict=True,
        )
    )


def _check_order(check: _Checker, open_time: pa.Array, previous: int | None) -> int | None:
    """Rows must strictly ascend; a repeated open_time would mean two truths for one candle."""
    if len(open_time) == 0:
        return previous
    if previous is not None and open_time[0].as_py() <= previous:
        check.fail_at(0, "open_time does not ascend")
    if len(open_time) > 1:
        steps = pc.subtract(open_time[1:], open_time[:-1])
        mask = pc.less_equal(steps, _i64(0))
        if pc.any(mask).as_py():
            index = _first_true(mask) + 1
            check.fail_at(index, "open_time does not ascend (duplicate or out of order)")
    return int(open_time[-1].as_py())


def read_dump(path: Path, handle: IO[bytes], *, interval: str) -> Iterator[list[CandleRow]]:
    """Yields validated rows of a headerless 12-column dump CSV, batch by batch."""
    import pyarrow.csv as pcsv

    bad_rows: list[tuple[int | None, int, str]] = []

    def invalid_row(row: Any) -> str:
        bad_rows.append((row.number, row.actual_columns, row.text))
        return "error"

    def parse_error(exc: Exception) -> DataFileError:
        if bad_rows:
            number, actual, text = bad_rows[0]
            return DataFileError(
                str(path),
                f"{actual} fields where a Binance kline dump has 12: {text[:80]!r}",
                line=number,
            )
        return DataFileError(str(path), f"malformed CSV: {exc}")

    try:
        reader = pcsv.open_csv(
            handle,
            # One thread: it is fast enough, and only then do bad rows report their number.
            read_options=pcsv.ReadOptions(
                column_names=list(DUMP_COLUMNS), block_size=_BLOCK_BYTES, use_threads=False
            ),
            parse_options=pcsv.ParseOptions(invalid_row_handler=invalid_row),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(DUMP_COLUMNS, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise parse_error(exc) from None
    line = 1
    previous: int | None = None
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            raise parse_error(exc) from None
        check = _Checker(path, line)
        columns = {name: batch.column(name) for name in DUMP_COLUMNS}
        open_time = _dump_epoch_ms(check, "open_time", columns["open_time"])
        close_text = columns["close_time"]
        close_time = None
        if pc.any(pc.invert(_is_empty(close_text))).as_py():
            close_time = _dump_epoch_ms(check, "close_time", close_text)
        rows = validate(
            check, interval=interval, open_time=open_time, close_time=close_time, values=columns
        )
        previous = _check_order(check, open_time, previous)
        line += len(rows)
        yield rows


def parquet_pair(path: Path) -> tuple[str | None, str | None]:
    """The (symbol, interval) a candlecast Parquet export records in its metadata."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(str(path)).metadata or {}
    except (pa.ArrowException, OSError) as exc:
        raise DataFileError(str(path), f"not a readable Parquet file ({exc})") from None
    symbol = metadata.get(b"candlecast.symbol")
    interval = metadata.get(b"candlecast.interval")
    return (
        symbol.decode() if symbol else None,
        interval.decode() if interval else None,
    )


_PARQUET_REQUIRED = ("open_time", *PRICE_NAMES)


def read_parquet(path: Path, *, interval: str) -> Iterator[list[CandleRow]]:
    """Yields validated rows of a Parquet file shaped like candlecast's export."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(str(path))
    except (pa.ArrowException, OSError) as exc:
        raise DataFileError(str(path), f"not a readable Parquet file ({exc})") from None
    names = parquet.schema_arrow.names
    missing = [name for name in _PARQUET_REQUIRED if name not in names]
    if missing:
        raise DataFileError(
            str(path),
            f"wrong columns: found {', '.join(names) or 'none'}; a candle Parquet file has "
            f"{', '.join(_PARQUET_REQUIRED)} (as `candlecast export --format parquet` writes)",
        )
    line = 1
    previous: int | None = None
    for batch in parquet.iter_batches(batch_size=200_000):
        check = _Checker(path, line)
        columns = {name: batch.column(name) for name in batch.schema.names}
        open_time = _parquet_ms(check, "open_time", columns["open_time"])
        close_time = (
            _parquet_ms(check, "close_time", columns["close_time"])
            if "close_time" in columns
            else None
        )
        values = {
            name: pc.cast(columns[name], pa.string())
            for name in (*PRICE_NAMES, *OPTIONAL_DECIMALS, "trades")
            if name in columns
        }
        for name in PRICE_NAMES:
            check.fail_where(pc.is_null(values[name]), f"{name} is missing")
        for name in ("trades", *OPTIONAL_DECIMALS):
            if name in values:
                values[name] = pc.fill_null(values[name], _empty_string())
        rows = validate(
            check, interval=interval, open_time=open_time, close_time=close_time, values=values
        )
        previous = _check_order(check, open_time, previous)
        line += len(rows)
        yield rows


def _parquet_ms(check: _Checker, name: str, values: pa.Array) -> pa.Array:
    """Epoch ms from a timestamp column (any unit) or an integer one holding ms."""
    if pa.types.is_timestamp(values.type):
        as_ms = pc.cast(values, pa.timestamp("ms", tz=values.type.tz), safe=False)
        return pc.cast(as_ms, pa.int64())
    if pa.types.is_integer(values.type):
        return pc.cast(values, pa.int64())
    check.fail_at(0, f"{name} is {values.type}, not a timestamp")
    raise AssertionError("unreachable")
