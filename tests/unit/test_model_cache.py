"""ModelCache: least recently used bundles go first, past a count or an artifact-bytes bound."""

from __future__ import annotations

import threading
from typing import cast

import pytest

from candlecast.jobs.model_cache import ModelCache
from candlecast.ml.bundle import ModelBundle


def _bundle() -> ModelBundle:
    # The cache never looks inside a bundle: any distinct object stands for one.
    return cast(ModelBundle, object())


def test_the_least_recently_used_bundle_goes_past_the_count() -> None:
    cache = ModelCache(max_entries=2)
    a, b, c = _bundle(), _bundle(), _bundle()
    cache.put("a", a, size=1)
    cache.put("b", b, size=1)
    assert cache.get("a") is a  # "b" is now the least recently used
    cache.put("c", c, size=1)
    assert len(cache) == 2 and "b" not in cache
    assert cache.get("a") is a and cache.get("c") is c and cache.get("b") is None


def test_artifact_bytes_bound_the_cache_but_the_newest_bundle_stays() -> None:
    cache = ModelCache(max_bytes=100)
    cache.put("a", _bundle(), size=60)
    cache.put("b", _bundle(), size=30)
    assert cache.nbytes == 90
    cache.put("c", _bundle(), size=30)
    assert "a" not in cache and cache.nbytes == 60
    big = _bundle()
    cache.put("big", big, size=500)
    assert len(cache) == 1 and cache.get("big") is big and cache.nbytes == 500
    cache.put("big", big, size=500)  # the same hash again is counted once
    assert cache.nbytes == 500
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_a_cache_holds_at_least_one_bundle() -> None:
    with pytest.raises(ValueError):
        ModelCache(max_entries=0)


def test_threads_share_one_cache_within_its_bounds() -> None:
    cache = ModelCache(max_entries=8, max_bytes=1000)

    def work(offset: int) -> None:
        for index in range(500):
            key = f"{(offset + index) % 20}"
            if cache.get(key) is None:
                cache.put(key, _bundle(), size=10)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 8 and cache.nbytes == 80


def test_separate_caches_share_nothing() -> None:
    first, second = ModelCache(), ModelCache()
    first.put("a", _bundle(), size=1)
    assert "a" not in second
