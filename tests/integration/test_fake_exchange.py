"""The fake exchange itself: Binance semantics, clock, control endpoints, process mode."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from candlecast.domain import parse_iso_utc
from tests.shared_data import MAIN_CSV, REPO_ROOT, shared_data_path

pytestmark = pytest.mark.shared_data

NOW = "2025-09-27T00:02:30Z"
STEP = 300_000


def test_klines_semantics(fake_exchange) -> None:
    fake = fake_exchange(start=NOW, speed=0)
    now = parse_iso_utc(NOW)
    with httpx.Client(base_url=fake.base_url) as http:
        q = {"symbol": "BTCUSDT", "interval": "5m"}
        latest = http.get("/api/v3/klines", params=q)
        assert len(latest.json()) == 500 and latest.json()[-1][0] == now - 150_000
        assert latest.headers["X-MBX-USED-WEIGHT-1M"] == "2"
        ended = http.get("/api/v3/klines", params={**q, "endTime": now - 10 * STEP, "limit": 2})
        assert [r[0] for r in ended.json()] == [
            now - 150_000 - 11 * STEP,
            now - 150_000 - 10 * STEP,
        ]
        too_many = http.get("/api/v3/klines", params={**q, "limit": 1001})
        assert too_many.status_code == 400 and too_many.json()["code"] == -1130
        assert http.get("/api/v3/klines", params={**q, "interval": "5M"}).json()["code"] == -1120
        assert http.get("/api/v3/klines", params={**q, "symbol": "X"}).json()["code"] == -1121
        assert http.get("/api/v3/ping").json() == {}
        fake.clock.advance(150_000)  # the candle closes: now served with final values
        final = http.get("/api/v3/klines", params={**q, "startTime": now - 150_000}).json()[0]
        assert final[5] != latest.json()[-1][5]


def test_clock_runs_at_speed_and_controls_work_over_http(fake_exchange) -> None:
    fake = fake_exchange(start=NOW, speed=600)
    with httpx.Client(base_url=fake.base_url) as http:
        before = http.get("/api/v3/time").json()["serverTime"]
        time.sleep(0.2)
        assert http.get("/api/v3/time").json()["serverTime"] - before >= 100_000
        view = http.post("/_fake/clock", json={"now": "2025-08-01T00:00:00Z", "speed": 0}).json()
        assert view["now_ms"] == parse_iso_utc("2025-08-01T00:00:00Z") and view["speed"] == 0
        http.post("/_fake/clock", json={"advance_ms": 1000})
        assert http.get("/api/v3/time").json()["serverTime"] == view["now_ms"] + 1000
        http.post("/_fake/faults", json={"every_429": 2, "retry_after_429": "0.5"})
        assert http.get("/api/v3/time").status_code == 200
        limited = http.get("/api/v3/time")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "0.5"
        assert http.post("/_fake/faults", json={"bogus": 1}).status_code == 400
        http.post("/_fake/faults", json={"reset": True})
        stats = http.get("/_fake/stats").json()
        assert stats["faults"] == {"requests": 0} and stats["api_calls"] >= 5


def test_runs_as_its_own_process() -> None:
    csv_path = shared_data_path(MAIN_CSV)
    cmd = [
        sys.executable,
        "-m",
        "tests.fake_exchange",
        "--csv",
        str(csv_path),
        "--start",
        NOW,
        "--speed",
        "0",
        "--port",
        "0",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/api/v3/time").json() == {"serverTime": parse_iso_utc(NOW)}
        assert httpx.post(f"{url}/_fake/ws/drop").json()["sockets"] == 0
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
