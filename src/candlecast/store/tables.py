"""SQLAlchemy tables. Alembic (store/migrations) owns the schema; these mirror it.

Times are BIGINT epoch milliseconds UTC, so nothing depends on a server's or session's
timezone. Prices and volumes are NUMERIC on PostgreSQL (which keeps the exchange's scale,
"97592.0" stays "97592.0") and TEXT on SQLite; both round-trip the exchange's strings exactly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Dialect,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

metadata = MetaData()


class ExactDecimal(TypeDecorator[Decimal]):
    """A decimal stored exactly: NUMERIC on PostgreSQL, the decimal string on SQLite."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return value if isinstance(value, Decimal) else Decimal(str(value))
        return format(value, "f") if isinstance(value, Decimal) else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


candles = Table(
    "candles",
    metadata,
    Column("symbol", String(20), primary_key=True),
    Column("interval", String(4), primary_key=True),
    Column("open_time", BigInteger, primary_key=True, autoincrement=False),
    Column("open", ExactDecimal, nullable=False),
    Column("high", ExactDecimal, nullable=False),
    Column("low", ExactDecimal, nullable=False),
    Column("close", ExactDecimal, nullable=False),
    Column("volume", ExactDecimal, nullable=False),
    Column("close_time", BigInteger, nullable=False),
    Column("quote_volume", ExactDecimal, nullable=True),
    Column("trades", BigInteger, nullable=True),
    Column("taker_buy_base", ExactDecimal, nullable=True),
    Column("taker_buy_quote", ExactDecimal, nullable=True),
    # Provenance: rest, ws, archive (data.binance.vision dump) or file (a CSV with a header).
    Column("source", String(8), nullable=False),
    Column("fetched_at", BigInteger, nullable=False),
)

known_gaps = Table(
    "known_gaps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("symbol", String(20), nullable=False),
    Column("interval", String(4), nullable=False),
    # The first and last missing open_time, inclusive.
    Column("first_open_time", BigInteger, nullable=False),
    Column("last_open_time", BigInteger, nullable=False),
    Column("detected_at", BigInteger, nullable=False),
    Column("checked_at", BigInteger, nullable=False),
    UniqueConstraint("symbol", "interval", "first_open_time", name="uq_known_gaps_start"),
)

job_ticks = Table(
    "job_ticks",
    metadata,
    # One row per (job, scheduled tick): the replica that inserts it runs that tick's job.
    Column("name", String(64), primary_key=True),
    Column("tick", BigInteger, primary_key=True, autoincrement=False),
    Column("claimed_by", String(128), nullable=False),
    Column("claimed_at", BigInteger, nullable=False),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(32), nullable=False),
    Column("symbol", String(20), nullable=True),
    Column("interval", String(4), nullable=True),
    Column("status", String(16), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Column("details", JSON, nullable=False),
    Column("host", String(128), nullable=True),
    Index("ix_job_runs_name_started", "name", "started_at"),
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", BigInteger, nullable=False),
    Column("symbol", String(20), nullable=False),
    Column("interval", String(4), nullable=False),
    Column("algorithm", String(64), nullable=False),
    Column("params", JSON, nullable=False),
    Column("train_start", BigInteger, nullable=False),
    Column("train_end", BigInteger, nullable=False),
    Column("data_fingerprint", String(64), nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("decision", JSON, nullable=True),
    Index("ix_models_pair_status", "symbol", "interval", "status"),
)

model_artifacts = Table(
    "model_artifacts",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
)

forecasts = Table(
    "forecasts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, nullable=False),
    Column("symbol", String(20), nullable=False),
    Column("interval", String(4), nullable=False),
    Column("made_at", BigInteger, nullable=False),
    # The exchange's clock when the forecast was made (local clock + measured offset), so
    # "made before its candle closed" is checked on the exchange's time, not ours.
    Column("made_at_exchange", BigInteger, nullable=True),
    Column("asof_open_time", BigInteger, nullable=False),
    Column("target_open_time", BigInteger, nullable=False),
    Column("asof_close", ExactDecimal, nullable=False),
    Column("pred_open", ExactDecimal, nullable=False),
    Column("pred_high", ExactDecimal, nullable=False),
    Column("pred_low", ExactDecimal, nullable=False),
    Column("pred_close", ExactDecimal, nullable=False),
    Column("pred_range", ExactDecimal, nullable=False),
    Column("close_lo", ExactDecimal, nullable=False),
    Column("close_hi", ExactDecimal, nullable=False),
    Column("interval_level", ExactDecimal, nullable=False),
    Column("prob_up", ExactDecimal, nullable=False),
    # The baselines' forecasts for the same candle, made at the same time, for honest skill.
    Column("baselines", JSON, nullable=False),
    # The forecast's quantiles by prediction column (close_q050 ... range_q975); null for
    # forecasts of models without quantiles. Written with the forecast, never updated.
    Column("quantiles", JSON, nullable=True),
    # Filled in once, when the target candle has closed; never before.
    Column("real_open", ExactDecimal, nullable=True),
    Column("real_high", ExactDecimal, nullable=True),
    Column("real_low", ExactDecimal, nullable=True),
    Column("real_close", ExactDecimal, nullable=True),
    Column("scored_at", BigInteger, nullable=True),
    UniqueConstraint("model_id", "target_open_time", name="uq_forecasts_model_target"),
    # One forecast per target candle and pair: the database keeps the first (migration 0005).
    Index("uq_forecasts_pair_target", "symbol", "interval", "target_open_time", unique=True),
)

# Forecasts of the close and of the range (max high - min low) over the next `horizon` candles
# (migration 0009), written once before the first of those candles closes, like the ledger's.
# Forecast values are floats (model outputs, as in model_predictions); the realized close and
# range come from the stored candles and stay exact. The first forecast per origin wins.
horizon_forecasts = Table(
    "horizon_forecasts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, nullable=False),
    Column("symbol", String(20), nullable=False),
    Column("interval", String(4), nullable=False),
    Column("horizon", Integer, nullable=False),
    # The last closed candle t the forecast is made from, and candle t + horizon.
    Column("origin_open_time", BigInteger, nullable=False),
    Column("end_open_time", BigInteger, nullable=False),
    Column("made_at", BigInteger, nullable=False),
    Column("made_at_exchange", BigInteger, nullable=True),
    Column("last_close", Double, nullable=False),
    # Quantile key (q025 ... q975) -> price level of close[t + horizon], and -> range level.
    Column("close_quantiles", JSON, nullable=False),
    Column("range", Double, nullable=False),
    Column("range_quantiles", JSON, nullable=False),
    # The baselines' range forecasts made at the same time; null when a baseline had no value.
    Column("persistence_range", Double, nullable=True),
    Column("random_walk_range", Double, nullable=True),
    Column("har_range", Double, nullable=True),
    # Filled in once, when all `horizon` candles are stored; never before.
    Column("real_close", ExactDecimal, nullable=True),
    Column("real_range", ExactDecimal, nullable=True),
    Column("scored_at", BigInteger, nullable=True),
    UniqueConstraint(
        "symbol", "interval", "horizon", "origin_open_time", name="uq_horizon_forecasts_origin"
    ),
    Index("ix_horizon_forecasts_pair_end", "symbol", "interval", "end_open_time"),
)

PREDICTION_VALUE_COLUMNS = (
    "last_close",
    "open_next",
    "high_next",
    "low_next",
    "close_next",
    "range_next",
    "close_lo",
    "close_hi",
    "prob_up",
    "base_close_next",
    "base_range_next",
    "base_prob_up",
)

# Each model's forecast made at every candle t for t+1 (open_time = t), materialized once so
# that charts never recompute models per request. Floats: they are model outputs, not prices
# the exchange quoted, and double precision is what the model computed.
model_predictions = Table(
    "model_predictions",
    metadata,
    Column("model_id", Integer, primary_key=True, autoincrement=False),
    Column("open_time", BigInteger, primary_key=True, autoincrement=False),
    Column("symbol", String(20), nullable=False),
    Column("interval", String(4), nullable=False),
    *(Column(name, Double, nullable=True) for name in PREDICTION_VALUE_COLUMNS),
)

# An HTTP 418 ban from the exchange, until its end (epoch ms), shared by every process.
exchange_bans = Table(
    "exchange_bans",
    metadata,
    Column("base_url", String(255), primary_key=True),
    Column("banned_until", BigInteger, nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
)

# The pairs this installation follows. A removed pair keeps its row (removed_at set), so that
# a pair named in CANDLECAST_PAIRS stays removed across restarts until `pairs add` revives it.
pairs = Table(
    "pairs",
    metadata,
    Column("symbol", String(20), primary_key=True),
    Column("interval", String(4), primary_key=True),
    # The order pairs are listed in; the first followed pair is every route's default.
    Column("position", Integer, nullable=False),
    Column("added_at", BigInteger, nullable=False),
    Column("removed_at", BigInteger, nullable=True),
    # The end of the pair's first complete backfill; null while it is still backfilling.
    Column("backfilled_at", BigInteger, nullable=True),
)

# The host and process of each task-queue worker (migration 0008), keyed by procrastinate's
# worker id, so that the Jobs page can say where a job runs. Empty on SQLite (no queue).
queue_worker_hosts = Table(
    "queue_worker_hosts",
    metadata,
    Column("worker_id", BigInteger, primary_key=True, autoincrement=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("name", String(255), nullable=False),
    # Comma-separated queue names; '' when the worker serves every queue.
    Column("queues", String(255), nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("started_at", BigInteger, nullable=False),
)

# The error of a task-queue job's latest failure: procrastinate keeps no exception text.
queue_job_errors = Table(
    "queue_job_errors",
    metadata,
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("error", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
)
