"""The one typed Settings class; read from CANDLECAST_* environment variables and `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from candlecast.domain import ConfigError, Pair, parse_pairs, validate_interval, validate_symbol


class Settings(BaseSettings):
    """Everything candlecast can be configured with; validated once, at start."""

    model_config = SettingsConfigDict(
        env_prefix="CANDLECAST_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///candlecast.db"
    binance_url: str = "https://data-api.binance.vision"
    binance_ws_url: str = "wss://data-stream.binance.vision"
    symbol: str = "BTCUSDT"
    interval: str = "5m"
    # The pairs to follow, `SYMBOL:INTERVAL,...`; unset means `symbol:interval`. They seed the
    # database's pair list on first start; `candlecast pairs` changes that list later.
    pairs: str | None = None
    # Cross-asset features: models of the other followed pairs at the same interval also read
    # this pair's recent returns and ranges while it is followed. Empty turns it off.
    reference_symbol: str = "BTCUSDT"
    # Each pair's backfill window.
    backfill_days: int = Field(default=90, ge=1, le=3650)

    http_timeout_seconds: float = Field(default=10.0, gt=0)
    http_max_retries: int = Field(default=6, ge=0, le=50)
    # Binance allows 6,000 weight per minute per IP; stay well clear so other tools fit too.
    weight_budget_per_minute: int = Field(default=4800, ge=10)

    ingest_every_seconds: int = Field(default=300, ge=1)
    train_every_seconds: int = Field(default=900, ge=1)
    reconcile_every_seconds: int = Field(default=3600, ge=1)
    stream: bool = True
    train_days: int = Field(default=90, ge=1, le=3650)
    # Training processes shared by every pair: trainings beyond this wait their turn.
    train_workers: int = Field(default=1, ge=1, le=64)
    # PostgreSQL only (the task queue): how often due ticks are handed out, in seconds (a
    # divisor of 60, at most 30); sync jobs one worker runs at once; how many stream shards
    # the pairs are split into.
    dispatch_every_seconds: int = Field(default=5, ge=1, le=30)
    worker_concurrency: int = Field(default=4, ge=1, le=256)
    stream_shards: int = Field(default=4, ge=1, le=1024)
    # Finished queue jobs are kept this long for the Jobs page and `candlecast jobs`.
    queue_keep_hours: int = Field(default=24, ge=1, le=24 * 90)
    # Memory for the API's in-memory chart columns across pairs, least recently used dropped.
    series_cache_mb: int = Field(default=256, ge=8, le=65536)
    api_token: str | None = None
    cors_origins: list[str] = Field(default_factory=list)

    # How long POST /api/train and /api/init/backfill hold the request before answering 202.
    train_wait_seconds: float = Field(default=30.0, ge=0, le=3600)
    # The path prefix a reverse proxy strips before forwarding (for example /candlecast).
    root_path: str = ""
    # When set, the dashboard's nav links to this Adminer for read-only browsing.
    adminer_url: str | None = None
    # `text` (readable) or `json` (one JSON object per line).
    log_format: Literal["text", "json"] = "text"
    # Per-request access log lines; off by default so polling pages do not flood the terminal.
    access_log: bool = False
    # Base URL of Binance's public kline dumps (the data.binance.vision layout).
    dumps_url: str = "https://data.binance.vision"
    # Locks and generated tokens; default: `<sqlite file>.state/` beside the SQLite database,
    # or `./candlecast-state/` for PostgreSQL.
    state_dir: Path | None = None
    # The read-only database role for browsing (Adminer); used by deploy/ and
    # `candlecast db create-readonly-role`.
    readonly_user: str | None = None
    readonly_password: SecretStr | None = None

    @field_validator("dispatch_every_seconds")
    @classmethod
    def _dispatch_divides_a_minute(cls, value: int) -> int:
        if 60 % value:
            raise ValueError(
                f"must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20 or 30), not {value}"
            )
        return value

    @field_validator("symbol")
    @classmethod
    def _symbol_is_wellformed(cls, value: str) -> str:
        return validate_symbol(value)

    @field_validator("reference_symbol")
    @classmethod
    def _reference_is_wellformed(cls, value: str) -> str:
        if not value.strip():
            return ""
        try:
            return validate_symbol(value.strip())
        except ConfigError as exc:
            raise ValueError(f"CANDLECAST_REFERENCE_SYMBOL: {exc}") from None

    @field_validator("interval")
    @classmethod
    def _interval_is_known(cls, value: str) -> str:
        return validate_interval(value)

    @field_validator("pairs")
    @classmethod
    def _pairs_are_wellformed(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return ",".join(str(pair) for pair in parse_pairs(value))
        except ConfigError as exc:
            raise ValueError(f"CANDLECAST_PAIRS: {exc}") from None

    def configured_pairs(self) -> tuple[Pair, ...]:
        """The pairs this configuration names, the first being the default of every route."""
        if self.pairs:
            return parse_pairs(self.pairs)
        return (Pair(self.symbol, self.interval),)

    @field_validator("root_path")
    @classmethod
    def _root_path_is_a_prefix(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError(
                f"CANDLECAST_ROOT_PATH must start with '/' (for example /candlecast), got {value!r}"
            )
        return value

    @field_validator("binance_url", "binance_ws_url", "dumps_url")
    @classmethod
    def _url_has_no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("api_token")
    @classmethod
    def _token_is_not_placeholder(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.lower() in {"changeme", "change-me", "secret", "token", "xxx"} or len(value) < 16:
            raise ValueError(
                "CANDLECAST_API_TOKEN is a placeholder or shorter than 16 characters; "
                "set a random token or leave it unset to have one generated"
            )
        return value
