"""The one typed Settings class; read from CANDLECAST_* environment variables and `.env`."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from candlecast.domain import validate_interval, validate_symbol


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
    api_token: str | None = None
    cors_origins: list[str] = Field(default_factory=list)

    @field_validator("symbol")
    @classmethod
    def _symbol_is_wellformed(cls, value: str) -> str:
        return validate_symbol(value)

    @field_validator("interval")
    @classmethod
    def _interval_is_known(cls, value: str) -> str:
        return validate_interval(value)

    @field_validator("binance_url", "binance_ws_url")
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
