"""The followed pairs: which symbols and intervals this installation keeps, in what order.

Every process reads this list (it changes while the service runs); `candlecast pairs` and the
pairs API write it. Removing a pair keeps its row with `removed_at`, and its data, unless purged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from candlecast.domain import Pair
from candlecast.store.tables import (
    candles,
    forecasts,
    horizon_forecasts,
    job_runs,
    known_gaps,
    model_artifacts,
    model_predictions,
    models,
    pairs,
)


@dataclass(frozen=True, slots=True)
class FollowedPair:
    """A followed pair and its bookkeeping."""

    pair: Pair
    position: int
    added_at: int
    backfilled_at: int | None

    @property
    def symbol(self) -> str:
        """The pair's symbol."""
        return self.pair.symbol

    @property
    def interval(self) -> str:
        """The pair's interval."""
        return self.pair.interval


def _key(pair: Pair) -> tuple[ColumnElement[bool], ...]:
    return (pairs.c.symbol == pair.symbol, pairs.c.interval == pair.interval)


def followed(connection: Connection) -> list[FollowedPair]:
    """The followed pairs in their order; the first is the default of every route."""
    rows = connection.execute(
        select(
            pairs.c.symbol,
            pairs.c.interval,
            pairs.c.position,
            pairs.c.added_at,
            pairs.c.backfilled_at,
        )
        .where(pairs.c.removed_at.is_(None))
        .order_by(pairs.c.position, pairs.c.symbol, pairs.c.interval)
    ).all()
    return [
        FollowedPair(Pair(row.symbol, row.interval), row.position, row.added_at, row.backfilled_at)
        for row in rows
    ]


def is_followed(connection: Connection, pair: Pair) -> bool:
    """Whether the pair is followed now."""
    found = connection.execute(
        select(pairs.c.symbol).where(*_key(pair), pairs.c.removed_at.is_(None))
    ).first()
    return found is not None


def is_known(connection: Connection, pair: Pair) -> bool:
    """Whether the pair is followed or was followed once (and removed)."""
    return connection.execute(select(pairs.c.symbol).where(*_key(pair))).first() is not None


def _next_position(connection: Connection) -> int:
    highest = connection.execute(select(func.max(pairs.c.position))).scalar_one_or_none()
    return 0 if highest is None else int(highest) + 1


def add(connection: Connection, pair: Pair, *, added_at: int) -> bool:
    """Follows the pair (reviving a removed one); False if it was followed already."""
    row = connection.execute(select(pairs.c.removed_at).where(*_key(pair))).first()
    if row is None:
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        # Replicas starting together seed the same pairs: the first insert wins, quietly.
        inserted = connection.execute(
            dialect.insert(pairs)
            .values(
                symbol=pair.symbol,
                interval=pair.interval,
                position=_next_position(connection),
                added_at=added_at,
            )
            .on_conflict_do_nothing()
            # RETURNING says whether the row went in: psycopg reports rowcount -1 here.
            .returning(pairs.c.symbol)
        )
        return inserted.first() is not None
    if row.removed_at is None:
        return False
    connection.execute(
        update(pairs)
        .where(*_key(pair))
        .values(removed_at=None, added_at=added_at, position=_next_position(connection))
    )
    return True


def seed(connection: Connection, configured: Iterable[Pair], *, added_at: int) -> list[Pair]:
    """Follows the configured pairs never seen before; a pair removed by a user stays removed.

    Returns the pairs added."""
    added: list[Pair] = []
    for pair in configured:
        known = connection.execute(select(pairs.c.symbol).where(*_key(pair))).first()
        if known is None and add(connection, pair, added_at=added_at):
            added.append(pair)
    return added


def remove(connection: Connection, pair: Pair, *, removed_at: int) -> bool:
    """Stops following the pair; False if it was not followed."""
    result = connection.execute(
        update(pairs).where(*_key(pair), pairs.c.removed_at.is_(None)).values(removed_at=removed_at)
    )
    return result.rowcount > 0


def mark_backfilled(connection: Connection, pair: Pair, *, at: int) -> None:
    """Records that the pair's first backfill completed (it is no longer `backfilling`)."""
    connection.execute(
        update(pairs).where(*_key(pair), pairs.c.backfilled_at.is_(None)).values(backfilled_at=at)
    )


def purge(connection: Connection, pair: Pair, *, removed_at: int) -> dict[str, int]:
    """Deletes every row that belongs to the pair (candles, models, forecasts of the next candle
    and of the horizons, runs, gaps) and
    marks it removed; the mark keeps a pair named in CANDLECAST_PAIRS from coming back."""
    of_pair = and_(models.c.symbol == pair.symbol, models.c.interval == pair.interval)
    model_ids = select(models.c.id).where(of_pair)
    # An artifact is content-addressed: keep it while another pair's model still uses it.
    orphaned = and_(
        model_artifacts.c.sha256.in_(select(models.c.artifact_sha256).where(of_pair)),
        model_artifacts.c.sha256.not_in(select(models.c.artifact_sha256).where(~of_pair)),
    )
    counts: dict[str, int] = {}
    for name, table, condition in (
        (
            "forecasts",
            forecasts,
            and_(forecasts.c.symbol == pair.symbol, forecasts.c.interval == pair.interval),
        ),
        (
            "horizon_forecasts",
            horizon_forecasts,
            and_(
                horizon_forecasts.c.symbol == pair.symbol,
                horizon_forecasts.c.interval == pair.interval,
            ),
        ),
        ("predictions", model_predictions, model_predictions.c.model_id.in_(model_ids)),
        ("artifacts", model_artifacts, orphaned),
        ("models", models, of_pair),
        (
            "candles",
            candles,
            and_(candles.c.symbol == pair.symbol, candles.c.interval == pair.interval),
        ),
        (
            "gaps",
            known_gaps,
            and_(known_gaps.c.symbol == pair.symbol, known_gaps.c.interval == pair.interval),
        ),
        (
            "job_runs",
            job_runs,
            and_(job_runs.c.symbol == pair.symbol, job_runs.c.interval == pair.interval),
        ),
    ):
        counts[name] = connection.execute(delete(table).where(condition)).rowcount
    remove(connection, pair, removed_at=removed_at)
    return counts
