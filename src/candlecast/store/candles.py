"""Candle writes: idempotent bulk upserts that count repairs (COPY on PostgreSQL)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import psycopg
from sqlalchemy import Connection, select

from candlecast.store.candle_rows import (
    ALL_COLUMNS,
    NULLABLE_NAMES,
    SOURCES,
    VALUE_NAMES,
    CandleRow,
    exact_columns,
    pair_conditions,
)
from candlecast.store.tables import candles

log = logging.getLogger(__name__)
# symbol, interval, the CandleRow's values, source, fetched_at: one row of the candles table.
StoredRow = tuple[object, ...]


# How many repaired candles a write result lists by name; the count is always complete.
_REPAIR_SAMPLE = 50


@dataclass
class WriteResult:
    """What one bulk write did. `repaired` rows had stored values that the exchange disagrees
    with; `enriched` rows gained fields (e.g. taker volumes) the stored copy lacked."""

    received: int = 0
    inserted: int = 0
    repaired: int = 0
    enriched: int = 0
    unchanged: int = 0
    repaired_sample: list[dict[str, object]] = field(default_factory=list)

    def add(self, other: WriteResult) -> None:
        """Adds another result's counts to this one."""
        self.received += other.received
        self.inserted += other.inserted
        self.repaired += other.repaired
        self.enriched += other.enriched
        self.unchanged += other.unchanged
        room = _REPAIR_SAMPLE - len(self.repaired_sample)
        self.repaired_sample.extend(other.repaired_sample[: max(room, 0)])


def _same_value(stored: object, incoming: object) -> bool:
    if stored == incoming:
        return True
    try:
        return Decimal(str(stored)) == Decimal(str(incoming))
    except InvalidOperation:
        return False


def _stored_rows(
    connection: Connection, symbol: str, interval: str, first: int, last: int
) -> dict[int, tuple[object, ...]]:
    query = select(candles.c.open_time, *exact_columns()).where(
        candles.c.symbol == symbol,
        candles.c.interval == interval,
        candles.c.open_time.between(first, last),
    )
    return {int(row[0]): tuple(row[1:]) for row in connection.execute(query)}


def upsert_candles(
    connection: Connection,
    *,
    symbol: str,
    interval: str,
    rows: Sequence[CandleRow],
    source: str,
    fetched_at: int,
) -> WriteResult:
    """Writes closed candles in bulk: new ones are inserted, differing ones repaired."""
    if source not in SOURCES:
        raise ValueError(f"unknown candle source {source!r}; expected one of {sorted(SOURCES)}")
    result = WriteResult(received=len(rows))
    if not rows:
        return result
    first = min(row[0] for row in rows)
    last = max(row[0] for row in rows)
    stored = _stored_rows(connection, symbol, interval, first, last)
    to_write: list[CandleRow] = []
    for row in rows:
        old = stored.get(row[0])
        if old is None:
            result.inserted += 1
            to_write.append(row)
            continue
        changed: dict[str, list[object]] = {}
        enriched = False
        for name, old_value, new_value in zip(VALUE_NAMES, old, row[1:], strict=True):
            if new_value is None or _same_value(old_value, new_value):
                continue
            if old_value is None:
                enriched = True
            else:
                changed[name] = [str(old_value), str(new_value)]
        if changed:
            result.repaired += 1
            if len(result.repaired_sample) < _REPAIR_SAMPLE:
                result.repaired_sample.append({"open_time": row[0], "changed": changed})
            log.info("repaired %s %s candle %d: %s", symbol, interval, row[0], changed)
        elif enriched:
            result.enriched += 1
        else:
            result.unchanged += 1
            continue
        to_write.append(row)
    if to_write:
        # The full table row: the pair and provenance around the exchange's values.
        stored_rows = [(symbol, interval, *row, source, fetched_at) for row in to_write]
        if connection.dialect.name == "postgresql":
            copied = not stored and _copy_new_postgresql(connection, stored_rows)
            if not copied:
                _write_postgresql(connection, stored_rows)
        else:
            _write_sqlite(connection, stored_rows)
    if result.repaired:
        log.warning(
            "repaired %d stored %s %s candle(s) that differed from %s",
            result.repaired,
            symbol,
            interval,
            source,
        )
    return result


def _conflict_updates(excluded: str) -> str:
    parts = []
    for name in (*VALUE_NAMES, "source", "fetched_at"):
        if name in NULLABLE_NAMES:
            parts.append(f'"{name}" = COALESCE({excluded}."{name}", candles."{name}")')
        else:
            parts.append(f'"{name}" = {excluded}."{name}"')
    return ", ".join(parts)


def _write_sqlite(connection: Connection, rows: Sequence[StoredRow]) -> None:
    columns = ", ".join(f'"{name}"' for name in ALL_COLUMNS)
    marks = ", ".join("?" for _ in ALL_COLUMNS)
    statement = (
        f"INSERT INTO candles ({columns}) VALUES ({marks}) "
        f'ON CONFLICT ("symbol", "interval", "open_time") DO UPDATE SET '
        f"{_conflict_updates('excluded')}"
    )
    connection.exec_driver_sql(statement, list(rows))


def _copy_rows(connection: Connection, table: str, rows: Iterable[StoredRow]) -> None:
    columns = ", ".join(f'"{name}"' for name in ALL_COLUMNS)
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


def _copy_new_postgresql(connection: Connection, rows: Sequence[StoredRow]) -> bool:
    """COPYs rows straight into candles when none of them can exist yet; False on a race."""
    savepoint = connection.begin_nested()
    try:
        _copy_rows(connection, "candles", rows)
    except psycopg.IntegrityError:
        # Another writer stored some of these candles meanwhile: take the upsert path. (COPY
        # runs on the raw psycopg cursor, so its error is psycopg's, not SQLAlchemy's.)
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def _write_postgresql(connection: Connection, rows: Sequence[StoredRow]) -> None:
    # COPY into a session-local staging table, then one set-based upsert: far faster than
    # multi-row INSERTs, and still atomic with the caller's transaction.
    columns = ", ".join(f'"{name}"' for name in ALL_COLUMNS)
    connection.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS candles_stage "
        "(LIKE candles INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    _copy_rows(connection, "candles_stage", rows)
    connection.exec_driver_sql(
        f"INSERT INTO candles ({columns}) SELECT {columns} FROM candles_stage "
        f'ON CONFLICT ("symbol", "interval", "open_time") DO UPDATE SET '
        f"{_conflict_updates('EXCLUDED')}"
    )
    connection.exec_driver_sql("TRUNCATE candles_stage")


def delete_pair(connection: Connection, *, symbol: str, interval: str) -> int:
    """Deletes every stored candle of one pair; returns how many went."""
    result = connection.execute(candles.delete().where(*pair_conditions(symbol, interval)))
    return int(result.rowcount)
