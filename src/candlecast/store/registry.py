"""The model registry: models with their metrics, content-addressed artifacts, and the champion."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from candlecast.domain import StoreError
from candlecast.store.tables import model_artifacts, models

CHAMPION = "champion"
CHALLENGER = "challenger"
RETIRED = "retired"


@dataclass(frozen=True)
class ModelRecord:
    """One registered model (without its artifact bytes)."""

    id: int
    created_at: int
    symbol: str
    interval: str
    algorithm: str
    params: dict[str, Any]
    train_start: int
    train_end: int
    data_fingerprint: str
    metrics: dict[str, Any]
    artifact_sha256: str
    status: str
    decision: dict[str, Any] | None


_RECORD_COLUMNS = [c for c in models.c]


def save_artifact(connection: Connection, *, content: bytes) -> str:
    """Stores artifact bytes under their sha256 (once) and returns the hash."""
    digest = hashlib.sha256(content).hexdigest()
    values = {"sha256": digest, "size": len(content), "content": content}
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(model_artifacts).values(**values).on_conflict_do_nothing()
    connection.execute(statement)
    return digest


def load_artifact(connection: Connection, *, sha256: str) -> bytes:
    """Loads artifact bytes and checks them against their hash; a corrupt blob is never served."""
    content = connection.execute(
        select(model_artifacts.c.content).where(model_artifacts.c.sha256 == sha256)
    ).scalar()
    if content is None:
        raise StoreError(f"model artifact {sha256} is missing")
    data = bytes(content)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise StoreError(f"model artifact {sha256} is corrupt (hash mismatch)")
    return data


def register_model(
    connection: Connection,
    *,
    created_at: int,
    symbol: str,
    interval: str,
    algorithm: str,
    params: dict[str, Any],
    train_start: int,
    train_end: int,
    data_fingerprint: str,
    metrics: dict[str, Any],
    artifact: bytes,
) -> int:
    """Stores the artifact and the model row (as a challenger) in the caller's transaction."""
    digest = save_artifact(connection, content=artifact)
    result = connection.execute(
        models.insert().values(
            created_at=created_at,
            symbol=symbol,
            interval=interval,
            algorithm=algorithm,
            params=params,
            train_start=train_start,
            train_end=train_end,
            data_fingerprint=data_fingerprint,
            metrics=metrics,
            artifact_sha256=digest,
            status=CHALLENGER,
            decision=None,
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def _record(row: Any) -> ModelRecord:
    return ModelRecord(**row._mapping)


def get_model(connection: Connection, *, model_id: int) -> ModelRecord | None:
    """One model by id."""
    row = connection.execute(select(*_RECORD_COLUMNS).where(models.c.id == model_id)).first()
    return None if row is None else _record(row)


def champion(connection: Connection, *, symbol: str, interval: str) -> ModelRecord | None:
    """The serving model of a pair, or None before the first training."""
    row = connection.execute(
        select(*_RECORD_COLUMNS)
        .where(models.c.symbol == symbol, models.c.interval == interval)
        .where(models.c.status == CHAMPION)
        .order_by(models.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _record(row)


def latest(connection: Connection, *, symbol: str, interval: str) -> ModelRecord | None:
    """The most recently trained model of a pair, whatever its status."""
    row = connection.execute(
        select(*_RECORD_COLUMNS)
        .where(models.c.symbol == symbol, models.c.interval == interval)
        .order_by(models.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _record(row)


def list_models(
    connection: Connection, *, symbol: str, interval: str, limit: int = 50
) -> list[ModelRecord]:
    """The newest models of a pair first."""
    rows = connection.execute(
        select(*_RECORD_COLUMNS)
        .where(models.c.symbol == symbol, models.c.interval == interval)
        .order_by(models.c.id.desc())
        .limit(limit)
    )
    return [_record(row) for row in rows]


def decide(
    connection: Connection, *, model_id: int, promote: bool, decision: dict[str, Any]
) -> None:
    """Records a promotion decision; promoting retires the previous champion atomically."""
    record = get_model(connection, model_id=model_id)
    if record is None:
        raise StoreError(f"no model {model_id}")
    if promote:
        connection.execute(
            update(models)
            .where(models.c.symbol == record.symbol, models.c.interval == record.interval)
            .where(models.c.status == CHAMPION)
            .values(status=RETIRED)
        )
    connection.execute(
        update(models)
        .where(models.c.id == model_id)
        .values(status=CHAMPION if promote else CHALLENGER, decision=decision)
    )


def champion_id(connection: Connection, *, symbol: str, interval: str) -> int | None:
    """The champion's id only: a cheap probe for caches keyed on the serving model."""
    value = connection.execute(
        select(models.c.id)
        .where(models.c.symbol == symbol, models.c.interval == interval)
        .where(models.c.status == CHAMPION)
        .order_by(models.c.id.desc())
        .limit(1)
    ).scalar()
    return None if value is None else int(value)
