"""Candle files: reading dumps, header CSVs and Parquet exports into validated rows (writing
them is files_export's; write_csv and write_parquet are re-exported here).

Header CSVs are read with pandas over chunks; dumps and Parquet go through pyarrow
(files_arrow). Either way a million candles stream through in bounded memory, and every value
keeps the exact string the file gave.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from candlecast.domain import DataFileError, interval_ms, validate_symbol
from candlecast.exchange.dumps import (
    MICROSECONDS_ABOVE,
    open_binary,
    open_text,
    pair_from_name,
    peek_first_line,
)
from candlecast.files_export import write_csv as write_csv
from candlecast.files_export import write_parquet as write_parquet
from candlecast.store.candle_rows import VALUE_NAMES, CandleRow

if TYPE_CHECKING:
    import pandas as pd

# The 12 columns of a data.binance.vision kline CSV, in order; the last means nothing.
DUMP_COLUMNS = ("open_time", *VALUE_NAMES, "ignore")
REQUIRED_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")
OPTIONAL_DECIMALS = ("quote_volume", "taker_buy_base", "taker_buy_quote")
# A header CSV may also name its pair, in every row.
PAIR_COLUMNS = ("symbol", "interval")
CHUNK_ROWS = 100_000
ACCEPTED = (
    "accepted: Binance kline dumps (.zip, or CSV with 12 columns and no header), CSVs with an "
    "open_time,open,high,low,close,volume header, and candlecast's own Parquet exports"
)
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class FileKind:
    """How a candle file is laid out, and which pair it holds."""

    path: Path
    symbol: str
    interval: str
    has_header: bool
    source: str  # "archive" for data.binance.vision dumps, "file" for CSVs and Parquet
    layout: str = "csv"  # "dump", "csv" (with a header) or "parquet"


def _refuse(path: Path, found: str) -> DataFileError:
    """The one line for a file that is not a candle file: what was found, what is accepted."""
    return DataFileError(str(path), f"not a candle file: {found}; {ACCEPTED}")


def _sniff(path: Path) -> str:
    """The container: "parquet", "zip" or "text"; refuses missing, empty and binary files."""
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 16)
    except FileNotFoundError:
        raise DataFileError(str(path), "no such file") from None
    except IsADirectoryError:
        raise DataFileError(str(path), "is a folder, not a file") from None
    except OSError as exc:
        raise DataFileError(str(path), f"cannot read it ({exc.strerror})") from None
    if not head.strip():
        raise _refuse(path, "the file is empty")
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    try:
        # A multi-byte character may be cut at the end of the sample.
        head.decode("utf-8") if len(head) < 1 << 16 else head[:-4].decode("utf-8")
    except UnicodeDecodeError:
        return _binary(path, head)
    if b"\x00" in head:
        return _binary(path, head)
    return "text"


def _binary(path: Path, head: bytes) -> str:
    what = "an executable" if head.startswith(b"\x7fELF") else "binary data"
    raise _refuse(path, f"{what}, neither UTF-8 text, a zip archive nor Parquet")


def _check_header(path: Path, first_line: str) -> None:
    """A header CSV must name the required columns."""
    names = [name.strip().lower() for name in next(csv.reader([first_line]), [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        shown = first_line.strip()
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise _refuse(path, f"wrong header {shown!r} (no {', '.join(missing)})")


def _check_dump_line(path: Path, first_line: str) -> None:
    fields = next(csv.reader([first_line]), [])
    if len(fields) != len(DUMP_COLUMNS):
        raise _refuse(
            path,
            f"wrong columns: line 1 has {len(fields)} fields where a kline dump has "
            f"{len(DUMP_COLUMNS)}",
        )


def describe(
    path: Path,
    *,
    symbol: str | None,
    interval: str | None,
    fallback: tuple[str, str] | None = None,
) -> FileKind:
    """Works out the layout and pair of a file: its name or its metadata, else the flags, else
    the fallback. Anything that is not a candle file is refused in one line."""
    container = _sniff(path)
    if container == "parquet":
        from candlecast.files_arrow import parquet_pair

        from_file = parquet_pair(path)
        named = from_file if from_file[0] and from_file[1] else pair_from_name(path)
        where = "file metadata"
    else:
        named = pair_from_name(path)
        where = "file name"
    if named is not None and named[0] and named[1]:
        if symbol is not None and symbol != named[0]:
            raise DataFileError(str(path), f"{where} says {named[0]}, --symbol says {symbol}")
        if interval is not None and interval != named[1]:
            raise DataFileError(str(path), f"{where} says {named[1]}, --interval says {interval}")
        symbol, interval = validate_symbol(named[0]), named[1]
    if fallback is not None:
        symbol = symbol or fallback[0]
        interval = interval or fallback[1]
    if symbol is None or interval is None:
        raise DataFileError(str(path), f"no symbol/interval in the {where}; pass them")
    interval_ms(interval)
    if container == "parquet":
        return FileKind(path, symbol, interval, True, "file", "parquet")
    first_line = peek_first_line(path)
    if not first_line.strip():
        raise _refuse(path, "the file is empty")
    first_field = first_line.split(",", 1)[0].strip().strip('"')
    if first_field.isdigit():
        _check_dump_line(path, first_line)
        return FileKind(path, symbol, interval, False, "archive", "dump")
    _check_header(path, first_line)
    return FileKind(path, symbol, interval, True, "file", "csv")


def _epoch_ms(values: pd.Series, *, kind: FileKind, column: str, first_line: int) -> np.ndarray:
    """Parses a time column: dump ms/µs integers, or ISO 8601 / epoch ms in a header CSV."""
    import pandas as pd

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
    import pandas as pd

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
    if kind.layout == "parquet":
        from candlecast.files_arrow import read_parquet

        yield from read_parquet(kind.path, interval=kind.interval)
        return
    if kind.layout == "dump":
        from candlecast.files_arrow import read_dump

        with open_binary(kind.path) as handle:
            yield from read_dump(kind.path, handle, interval=kind.interval)
        return
    yield from _read_header_csv(kind, chunk_rows=chunk_rows)


def _read_header_csv(kind: FileKind, *, chunk_rows: int | None) -> Iterator[list[CandleRow]]:
    import pandas as pd

    options: dict[str, Any] = {
        "dtype": str,
        "keep_default_na": False,
        "na_values": [],
        "chunksize": chunk_rows or CHUNK_ROWS,
        "skip_blank_lines": True,
    }
    line = 2
    seen_last: int | None = None
    with open_text(kind.path) as handle:
        try:
            reader = pd.read_csv(handle, **options)
            for frame in reader:
                frame.columns = [str(name).strip().lower() for name in frame.columns]
                rows = _validate_chunk(frame, kind=kind, first_line=line)
                seen_last = _check_order(kind, rows, seen_last, line)
                line += len(frame)
                yield rows
        except pd.errors.ParserError as exc:
            raise DataFileError(str(kind.path), f"malformed CSV: {_parser_reason(exc)}") from None
        except UnicodeDecodeError as exc:
            raise DataFileError(str(kind.path), f"not UTF-8 text: {exc.reason}") from None


def _parser_reason(exc: Exception) -> str:
    """pandas' tokenizer message in the user's words: which line has how many fields."""
    text = str(exc)
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if match is None:
        return text
    expected, line, saw = match.groups()
    return f"line {line} has {saw} fields where the header has {expected}"


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
