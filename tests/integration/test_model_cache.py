"""load_bundle through a ModelCache (services.models): decoded once, then served from memory;
without a cache, every load decodes the stored artifact afresh (no module holds bundles)."""

from __future__ import annotations

from sqlalchemy import Engine

from candlecast.jobs import modeling, pipeline
from candlecast.jobs.model_cache import ModelCache
from tests.integration.api_support import load

FAST = {"n_estimators": 15, "classifier_estimators": 10}


def test_a_cache_decodes_each_artifact_once_and_no_cache_decodes_every_time(
    engine: Engine,
) -> None:
    load(engine, days=3)
    outcome = modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=3, params=FAST)
    model_id = int(outcome.model_id or 0)
    cache = ModelCache()
    first = modeling.load_bundle(engine, model_id, cache=cache)
    assert modeling.load_bundle(engine, model_id, cache=cache) is first
    assert len(cache) == 1 and cache.nbytes > 0
    uncached = modeling.load_bundle(engine, model_id)
    assert uncached is not first and modeling.load_bundle(engine, model_id) is not uncached
    other = ModelCache()
    assert modeling.load_bundle(engine, model_id, cache=other) is not first


def test_a_refresh_through_the_cache_keeps_the_champion_decoded(engine: Engine) -> None:
    load(engine, days=3)
    modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=3, params=FAST)
    cache = ModelCache()
    result = pipeline.refresh_after_candles(engine, symbol="BTCUSDT", interval="5m", models=cache)
    assert result["champion_id"] is not None and len(cache) == 1
