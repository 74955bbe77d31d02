"""Model jobs: train (with champion/challenger), forecast the next candle, score the ledger,
and walk-forward evaluation. The ml package stays pure; the I/O happens here."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine

from candlecast.domain import CandlecastError, ExchangeError, interval_ms, iso_utc
from candlecast.jobs import horizons as horizon_jobs
from candlecast.jobs.common import DAY_MS, now_ms, recorded_run
from candlecast.jobs.model_cache import ModelCache
from candlecast.jobs.reference import choose_reference, read_history, with_reference
from candlecast.ml.bundle import ModelBundle
from candlecast.ml.evaluate import prospective_metrics, walk_forward
from candlecast.ml.features import FEATURE_WINDOW
from candlecast.ml.promotion import comparison_window, decide
from candlecast.ml.quantiles import QUANTILE_COLUMNS
from candlecast.ml.train import TrainParams, train_with_inputs
from candlecast.store import candle_reads, ledger, predictions, registry
from candlecast.store.db import write_transaction
from candlecast.store.locks import job_lock

log = logging.getLogger(__name__)

ALGORITHM = "lightgbm-return-space"
StageCallback = Callable[[str], None]


def _no_stage(_name: str) -> None:
    return None


class NoData(CandlecastError):
    """There are not enough stored candles for the requested operation."""


class NoModel(CandlecastError):
    """No champion model exists yet for the pair."""


@dataclass(frozen=True)
class TrainOutcome:
    """What a train run did."""

    skipped: bool
    model_id: int | None
    promoted: bool
    details: dict[str, Any]


def _window_frame(
    connection: Connection, *, symbol: str, interval: str, days: float, reference: str | None
) -> pd.DataFrame:
    newest = candle_reads.last_open_time(connection, symbol=symbol, interval=interval)
    if newest is None:
        raise NoData(f"no {symbol} {interval} candles stored; run `candlecast backfill`")
    start = newest - int(days * DAY_MS) + interval_ms(interval)
    return read_history(
        connection, symbol=symbol, interval=interval, start=start, reference=reference
    )


def _comparison_frame(
    engine: Engine, frame: pd.DataFrame, new: ModelBundle, champion: ModelBundle | None
) -> pd.DataFrame:
    """The rows the champion comparison reads: the shared held-out window and its history.

    Features are causal over FEATURE_WINDOW rows, so both models' predictions inside the window
    are the same as over the whole frame, at a fraction of the cost of predicting all of it.
    A champion that reads another reference pair than the new model gets its candles beside.
    """
    if champion is None:
        return frame
    start, _end = comparison_window(new, champion)
    history = (FEATURE_WINDOW + 2) * int(new.meta["interval_ms"])
    window = frame[frame["open_time"] >= start - history].reset_index(drop=True)
    if champion.reference is None or champion.reference == new.reference:
        return window
    with engine.connect() as connection:
        return with_reference(
            connection, window, interval=str(new.meta["interval"]), reference=champion.reference
        )


def validation_summary(bundle: ModelBundle) -> dict[str, Any]:
    """The registry's metrics: validation figures per target with their baselines."""
    close = bundle.validation.get("close", {})
    return {
        "samples": int(bundle.meta.get("val_rows", 0)) + int(bundle.meta.get("fit_rows", 0)),
        "split_train": int(bundle.meta.get("fit_rows", 0)),
        "split_total": int(bundle.meta.get("fit_rows", 0)) + int(bundle.meta.get("val_rows", 0)),
        "validation_start": int(bundle.meta["validation_start_ms"]),
        "mae": close.get("mae"),
        "mape": close.get("mape"),
        "smape": close.get("smape"),
        "validation": bundle.validation,
    }


def train_model(
    engine: Engine,
    *,
    symbol: str,
    interval: str,
    days: float,
    params: dict[str, Any] | None = None,
    force: bool = False,
    on_stage: StageCallback | None = None,
    reference: str | None = None,
) -> TrainOutcome:
    """Trains on the last `days` days, registers the model, and promotes it if not worse.

    `on_stage` hears the name of each stage as it begins (for a progress display). `reference`
    (settings.reference_symbol) is the pair whose candles the model also reads, when it is
    another followed pair of this interval (jobs.reference.choose_reference).
    """
    stage = on_stage or _no_stage
    with (
        job_lock(engine, f"train:{symbol}:{interval}"),
        recorded_run(engine, name="train", symbol=symbol, interval=interval) as details,
    ):
        stage("loading candles")
        with engine.connect() as connection:
            chosen = choose_reference(
                connection, symbol=symbol, interval=interval, wanted=reference
            )
            frame = _window_frame(
                connection, symbol=symbol, interval=interval, days=days, reference=chosen
            )
            previous = registry.latest(connection, symbol=symbol, interval=interval)
            champion_record = registry.champion(connection, symbol=symbol, interval=interval)
        train_params = TrainParams(
            **{"symbol": symbol, "interval": interval, "reference": chosen, **(params or {})}
        )
        newest = int(frame["open_time"].iloc[-1])
        same_params = (
            previous is not None
            and previous.params.get("days") == days
            and previous.params.get("reference") == train_params.reference
        )
        if not force and previous is not None and previous.train_end == newest and same_params:
            details.update(
                {
                    "skipped": True,
                    "reason": "no new candle since the last training",
                    "model_id": previous.id,
                }
            )
            return TrainOutcome(True, previous.id, False, details)
        stage(f"fitting on {len(frame)} candles: features, each target, validation")
        started = now_ms()
        try:
            bundle, inputs = train_with_inputs(frame, train_params)
        except ValueError as exc:
            raise NoData(f"cannot train on {symbol} {interval}: {exc}") from None
        train_seconds = (now_ms() - started) / 1000
        # One predict over the training frame, from the features train() built, so /api/series
        # reads this model's forecasts instead of recomputing them per request; the comparison
        # reads the new model's from them too.
        stage("comparing with the champion (one predict over the training window)")
        materialized = bundle.predict(frame, inputs)
        champion_bundle = load_bundle(engine, champion_record.id) if champion_record else None
        compared = _comparison_frame(engine, frame, bundle, champion_bundle)
        decision = decide(bundle, champion_bundle, compared, new_predictions=materialized)
        decision["champion_id"] = champion_record.id if champion_record else None
        metrics = validation_summary(bundle)
        stage("storing the model and its predictions")
        with write_transaction(engine) as connection:
            model_id = registry.register_model(
                connection,
                created_at=now_ms(),
                symbol=symbol,
                interval=interval,
                algorithm=ALGORITHM,
                params={**bundle.params, "days": days},
                train_start=int(bundle.meta["train_start_ms"]),
                train_end=int(bundle.meta["train_end_ms"]),
                data_fingerprint=str(bundle.meta["data_fingerprint"]),
                metrics=metrics,
                artifact=bundle.to_bytes(),
            )
            registry.decide(
                connection, model_id=model_id, promote=bool(decision["promote"]), decision=decision
            )
            details["materialized"] = predictions.write(
                connection, model_id=model_id, symbol=symbol, interval=interval, frame=materialized
            )
        details.update(
            {
                "model_id": model_id,
                "promoted": bool(decision["promote"]),
                "decision": decision["reason"],
                "samples": metrics["samples"],
                "mae": metrics["mae"],
                "mape": metrics["mape"],
                "smape": metrics["smape"],
                "train_seconds": train_seconds,
                "rows": len(frame),
            }
        )
        return TrainOutcome(False, model_id, bool(decision["promote"]), details)


def load_bundle(engine: Engine, model_id: int, *, cache: ModelCache | None = None) -> ModelBundle:
    """Loads a model's bundle from the registry; through `cache` (services.models) when given,
    which decodes each artifact once. Without it, the artifact is read and decoded every time."""
    with engine.connect() as connection:
        record = registry.get_model(connection, model_id=model_id)
        if record is None:
            raise NoModel(f"no model {model_id}")
        cached = None if cache is None else cache.get(record.artifact_sha256)
        if cached is not None:
            return cached
        data = registry.load_artifact(connection, sha256=record.artifact_sha256)
    bundle = ModelBundle.from_bytes(data)
    if cache is not None:
        cache.put(record.artifact_sha256, bundle, size=len(data))
    return bundle


def _decimal(value: float, places: int = 8) -> Decimal:
    return Decimal(str(round(float(value), places)))


def forecast_next(
    engine: Engine,
    *,
    symbol: str,
    interval: str,
    exchange_clock: Callable[[], int] | None = None,
    models: ModelCache | None = None,
) -> dict[str, Any] | None:
    """Records the champion's forecast for the candle after the last closed one, and its
    forecasts 3 and 12 candles ahead (store.horizons) when the bundle has horizon models.

    `exchange_clock` reads the exchange's time; it is read after predicting, so it bounds when
    the forecast existed, and a target that had closed by then is refused. Returns the recorded
    forecast, or None when refused (a forecast is never rewritten). `models` (services.models)
    keeps the champion decoded between candles.
    """
    with engine.connect() as connection:
        record = registry.champion(connection, symbol=symbol, interval=interval)
    if record is None:
        raise NoModel(f"no {symbol} {interval} model yet; run `candlecast train`")
    bundle = load_bundle(engine, record.id, cache=models)
    step = interval_ms(interval)
    with engine.connect() as connection:
        newest = candle_reads.last_open_time(connection, symbol=symbol, interval=interval)
        if newest is None:
            raise NoData(f"no {symbol} {interval} candles stored")
        history = read_history(
            connection,
            symbol=symbol,
            interval=interval,
            start=newest - (FEATURE_WINDOW + 2) * step,
            reference=bundle.reference,
        )
    if bundle.reference is not None:
        _warn_without_reference(history, bundle.reference, newest - step, symbol, interval)
    prediction = bundle.predict(history).iloc[-1]
    # The forecasts 3 and 12 candles ahead, from the same candles and before the same clock
    # reading, so that both are held to "made before candle t+1 closed".
    ahead = bundle.forecast_horizons(history)
    exchange_now = _read_clock(exchange_clock)
    # Non-finite values (e.g. the anchors of a pre-anchor bundle) are left out: JSON has no NaN,
    # and PostgreSQL's json type rejects it.
    baselines = {
        name: float(prediction[name])
        for name in prediction.index
        if str(name).startswith(("base_", "strong_base_")) and math.isfinite(prediction[name])
    }
    quantiles = {
        name: float(prediction[name])
        for name in QUANTILE_COLUMNS
        if name in prediction.index and math.isfinite(prediction[name])
    }
    forecast = ledger.Forecast(
        model_id=record.id,
        symbol=symbol,
        interval=interval,
        made_at=now_ms(),
        made_at_exchange=exchange_now,
        asof_open_time=newest,
        target_open_time=newest + step,
        asof_close=_decimal(float(prediction["last_close"])),
        pred_open=_decimal(float(prediction["open_next"])),
        pred_high=_decimal(float(prediction["high_next"])),
        pred_low=_decimal(float(prediction["low_next"])),
        pred_close=_decimal(float(prediction["close_next"])),
        pred_range=_decimal(float(prediction["range_next"])),
        close_lo=_decimal(float(prediction["close_lo"])),
        close_hi=_decimal(float(prediction["close_hi"])),
        interval_level=_decimal(bundle.interval_level, 4),
        prob_up=_decimal(float(prediction["prob_up"]), 6),
        baselines=baselines,
        quantiles=quantiles or None,
    )
    with write_transaction(engine) as connection:
        recorded = ledger.record(connection, forecast=forecast, close_time=newest + 2 * step - 1)
        horizon_jobs.record(
            connection,
            forecasts=ahead,
            model_id=record.id,
            symbol=symbol,
            interval=interval,
            made_at=forecast.made_at,
            made_at_exchange=exchange_now,
            step=step,
        )
    lateness = 0 if exchange_now is None else exchange_now - (newest + 2 * step - 1)
    if not recorded and lateness > 0:
        # Not an error (hindsight never enters the ledger), but a sign the service lags.
        log.warning(
            "%s %s: the forecast of %s came %d ms after that candle closed; not recorded",
            symbol,
            interval,
            iso_utc(newest + step),
            lateness,
        )
    return forecast.__dict__ if recorded else None


def _warn_without_reference(
    history: pd.DataFrame, reference: str, wanted: int, symbol: str, interval: str
) -> None:
    """Logs when the reference pair's candle that the newest row's features read is missing:
    the forecast is still made (the trees route missing features), but it is a weaker one."""
    found = history.loc[history["open_time"] == wanted, "ref_close"]
    if found.empty or not math.isfinite(float(found.iloc[0])):
        log.warning(
            "%s %s: the %s candle of %s is not stored; forecasting without it",
            symbol,
            interval,
            reference,
            iso_utc(wanted),
        )


def _read_clock(exchange_clock: Callable[[], int] | None) -> int | None:
    """The exchange's time, or None when unknown (no clock, or the exchange unreachable)."""
    if exchange_clock is None:
        return None
    try:
        return exchange_clock()
    except ExchangeError as exc:
        log.warning("cannot read the exchange clock for the forecast: %s", exc)
        return None


def score_ledger(engine: Engine, *, symbol: str, interval: str) -> int:
    """Fills realized values beside every forecast whose candle has closed since."""
    with write_transaction(engine) as connection:
        return ledger.score(connection, symbol=symbol, interval=interval, scored_at=now_ms())


def ledger_metrics(
    engine: Engine, *, symbol: str, interval: str, start: int | None, end: int | None
) -> dict[str, Any]:
    """Prospective metrics of recorded forecasts in [start, end], with the same baselines."""
    with engine.connect() as connection:
        forecasts = ledger.frame(connection, symbol=symbol, interval=interval, start=start, end=end)
        return score_forecasts(connection, symbol=symbol, interval=interval, forecasts=forecasts)


def score_forecasts(
    connection: Connection, *, symbol: str, interval: str, forecasts: pd.DataFrame
) -> dict[str, Any]:
    """Prospective metrics of ledger rows (as ledger.frame reads them) against the candles."""
    if forecasts.empty:
        return {"rows": 0}
    first = int(forecasts["target_open_time"].min())
    last = int(forecasts["target_open_time"].max())
    realized = candle_reads.read_frame(
        connection, symbol=symbol, interval=interval, start=first, end=last
    )
    # The ledger's own realized copies are dropped: the candles are the single source of truth.
    return prospective_metrics(forecasts.drop(columns=list(ledger.REALIZED)), realized)


def evaluate(
    engine: Engine,
    *,
    symbol: str,
    interval: str,
    start: int | None,
    end: int | None,
    folds: int,
    train_days: float,
    params: dict[str, Any] | None = None,
    on_stage: StageCallback | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    """Walk-forward evaluation over stored candles, exactly as `train` fits each fold (with the
    same reference pair: `reference` as train_model takes it)."""
    stage = on_stage or _no_stage
    with recorded_run(engine, name="evaluate", symbol=symbol, interval=interval) as details:
        stage("loading candles")
        with engine.connect() as connection:
            chosen = choose_reference(
                connection, symbol=symbol, interval=interval, wanted=reference
            )
            frame = read_history(
                connection,
                symbol=symbol,
                interval=interval,
                start=start,
                end=end,
                reference=chosen,
            )
        if frame.empty:
            raise NoData(f"no {symbol} {interval} candles stored in that window")
        rows = len(frame)

        def on_fold(number: int, total: int) -> None:
            stage(f"walk-forward on {rows} candles: fold {number} of {total}, training and testing")

        report = walk_forward(
            frame,
            folds=folds,
            train_days=train_days,
            interval_ms=interval_ms(interval),
            params={"symbol": symbol, "interval": interval, "reference": chosen, **(params or {})},
            symbol=symbol,
            interval=interval,
            on_fold=on_fold,
        )
        report["reference"] = chosen
        details.update(
            {
                "rows": report["rows"],
                "folds": report["folds"],
                "train_days": train_days,
                "reference": chosen,
                "skill": {k: v["skill"] for k, v in report["targets"].items()},
                "brier": report["direction"]["brier"],
                "brier_baseline": report["direction"]["brier_baseline"],
            }
        )
    return report
