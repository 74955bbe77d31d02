"""Cross-asset models in the store: ETHUSDT's model reads BTCUSDT's candles while BTCUSDT is
followed, on SQLite and PostgreSQL; training, the recorded forecast and the charts agree."""

from __future__ import annotations

import logging
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import Engine, delete

from candlecast.domain import Pair, parse_iso_utc
from candlecast.jobs import modeling, pipeline
from candlecast.jobs.reference import read_history
from candlecast.ml.bundle import ModelBundle
from candlecast.ml.features import REFERENCE_FEATURES
from candlecast.store import candles as store
from candlecast.store import pairs as pair_store
from candlecast.store import predictions
from candlecast.store.candle_rows import pair_conditions
from candlecast.store.db import write_transaction
from candlecast.store.tables import candles, model_predictions
from tests.integration.api_support import csv_rows
from tests.shared_data import MAIN_CSV

STEP = 300_000
DAY = 86_400_000
FIRST = parse_iso_utc("2025-08-21T00:00:00Z")
DAYS = 6
LAST = FIRST + DAYS * DAY - STEP
ETH_CSV = "ethusdt-5m-2025-08-19_2025-09-20-full.csv"
PARAMS = {"n_estimators": 40, "min_val_skill": -10.0}


@pytest.fixture
def two_pairs(engine: Engine) -> Engine:
    with write_transaction(engine) as connection:
        for symbol, name in (("BTCUSDT", MAIN_CSV), ("ETHUSDT", ETH_CSV)):
            store.upsert_candles(
                connection,
                symbol=symbol,
                interval="5m",
                rows=csv_rows(name, first=FIRST, last=LAST),
                source="file",
                fetched_at=0,
            )
            pair_store.add(connection, Pair(symbol, "5m"), added_at=0)
    return engine


def _train(engine: Engine, symbol: str) -> ModelBundle:
    outcome = modeling.train_model(
        engine, symbol=symbol, interval="5m", days=DAYS, params=PARAMS, reference="BTCUSDT"
    )
    return modeling.load_bundle(engine, int(outcome.model_id or 0))


def test_a_followed_reference_is_read_by_the_others_models_not_by_its_own(
    two_pairs: Engine,
) -> None:
    eth = _train(two_pairs, "ETHUSDT")
    assert eth.reference == "BTCUSDT"
    assert set(REFERENCE_FEATURES) <= set(eth.feature_names)
    btc = _train(two_pairs, "BTCUSDT")
    assert btc.reference is None
    assert not set(REFERENCE_FEATURES) & set(btc.feature_names)


def test_the_recorded_forecast_is_the_models_forecast_with_the_references_candles(
    two_pairs: Engine,
) -> None:
    bundle = _train(two_pairs, "ETHUSDT")
    recorded = modeling.forecast_next(two_pairs, symbol="ETHUSDT", interval="5m")
    assert recorded is not None and recorded["target_open_time"] == LAST + STEP
    with two_pairs.connect() as connection:
        beside = read_history(
            connection, symbol="ETHUSDT", interval="5m", start=FIRST, reference="BTCUSDT"
        )
        alone = read_history(connection, symbol="ETHUSDT", interval="5m", start=FIRST)
    with_reference = bundle.predict(beside).iloc[-1]
    assert recorded["pred_range"] == Decimal(str(round(float(with_reference["range_next"]), 8)))
    # The same model without BTC's candles forecasts otherwise: the forecast did read them.
    assert float(bundle.predict(alone).iloc[-1]["range_next"]) != pytest.approx(
        float(with_reference["range_next"]), rel=1e-9
    )
    # The charts' predictions, stored again for candles that lack them (pipeline), too.
    model_id = int(recorded["model_id"])
    with write_transaction(two_pairs) as connection:
        connection.execute(
            delete(model_predictions).where(
                model_predictions.c.model_id == model_id,
                model_predictions.c.open_time >= LAST - 10 * STEP,
            )
        )
    assert pipeline.fill_unpredicted(two_pairs, symbol="ETHUSDT", interval="5m") == 11
    with two_pairs.connect() as connection:
        stored = predictions.read_columns(
            connection, model_id=model_id, start=LAST, end=LAST, columns=("range_next",)
        )
    assert float(stored["range_next"][0]) == pytest.approx(float(with_reference["range_next"]))


def test_a_missing_reference_candle_is_logged_and_the_forecast_still_made(
    two_pairs: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    _train(two_pairs, "ETHUSDT")
    with write_transaction(two_pairs) as connection:
        connection.execute(
            delete(candles).where(
                *pair_conditions("BTCUSDT", "5m"), candles.c.open_time == LAST - STEP
            )
        )
    with caplog.at_level(logging.WARNING, logger="candlecast.jobs.modeling"):
        recorded = modeling.forecast_next(two_pairs, symbol="ETHUSDT", interval="5m")
    assert recorded is not None
    assert "BTCUSDT candle of 2025-08-26T23:50:00Z is not stored" in caplog.text


def test_an_unfollowed_reference_is_not_used_until_it_is_followed_again(two_pairs: Engine) -> None:
    with write_transaction(two_pairs) as connection:
        pair_store.remove(connection, Pair("BTCUSDT", "5m"), removed_at=1)
    eth = _train(two_pairs, "ETHUSDT")
    assert eth.reference is None
    # Following it again makes the next training use it, without waiting for a new candle.
    with write_transaction(two_pairs) as connection:
        pair_store.add(connection, Pair("BTCUSDT", "5m"), added_at=2)
    assert _train(two_pairs, "ETHUSDT").reference == "BTCUSDT"


def test_a_champion_with_a_reference_is_compared_on_its_references_candles(
    two_pairs: Engine,
) -> None:
    champion = _train(two_pairs, "ETHUSDT")
    with write_transaction(two_pairs) as connection:
        pair_store.remove(connection, Pair("BTCUSDT", "5m"), removed_at=1)
    new = _train(two_pairs, "ETHUSDT")
    assert champion.reference == "BTCUSDT" and new.reference is None
    with two_pairs.connect() as connection:
        alone = read_history(connection, symbol="ETHUSDT", interval="5m", start=FIRST)
        beside = read_history(
            connection, symbol="ETHUSDT", interval="5m", start=FIRST, reference="BTCUSDT"
        )
    compared = modeling._comparison_frame(two_pairs, alone, new, champion)
    expected = beside[beside["open_time"] >= int(compared["open_time"].iloc[0])]
    pd.testing.assert_frame_equal(compared, expected.reset_index(drop=True))
