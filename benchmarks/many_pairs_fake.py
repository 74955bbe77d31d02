"""The fake exchange serving N synthetic markets, as its own process, for benchmarks.many_pairs.

It prints its base URL on one line, then answers each line "stats" on stdin with one JSON line:
the fake's counters, the 429s and 418s it answered, and the peak request weight in any rolling
minute of real time. The fake answers 429 only when a fault asks it to, so the peak weight is
what tells whether real Binance (6,000 weight per minute per IP) would have answered 429.

Run: python -m benchmarks.many_pairs_fake --csv PATH --count 50 --start ISO --speed 1
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.fake_exchange.server import FakeExchange
from tests.fake_exchange.synthetic import synthetic_markets

from candlecast.domain import parse_iso_utc

# The fake's (and Binance's) request weights; every other /api/ route weighs 1.
WEIGHTS = {"/api/v3/klines": 2, "/api/v3/exchangeInfo": 20}
BINANCE_LIMIT_PER_MINUTE = 6000


def peak_weight(log: list[tuple[float, str]]) -> tuple[int, int]:
    """(highest weight in any rolling 60 s, requests that arrived above Binance's limit)."""
    window: deque[tuple[float, int]] = deque()
    total = peak = over = 0
    for at, path in log:
        weight = WEIGHTS.get(path, 1)
        window.append((at, weight))
        total += weight
        while window[0][0] <= at - 60.0:
            total -= window.popleft()[1]
        peak = max(peak, total)
        over += total > BINANCE_LIMIT_PER_MINUTE
    return peak, over


def stats(fake: FakeExchange) -> dict[str, Any]:
    """The counters a benchmark reports."""
    counters = fake.fault_counters()
    peak, over = peak_weight(fake.state.faults.request_log())
    counts = asdict(fake.stats)
    counts.pop("ws_stream_messages", None)
    return {
        **counts,
        "requests": counters.get("requests", 0),
        "answered_429": counters.get("limit_429", 0),
        "answered_418": counters.get("ban_418", 0),
        "peak_weight_1m": peak,
        "requests_over_binance_limit": over,
        "open_sockets": fake.open_sockets(),
        "now_ms": fake.clock.now_ms(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--start", required=True)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--ws-update-ms", type=int, default=250)
    args = parser.parse_args()
    fake = FakeExchange(
        markets=synthetic_markets(args.csv, args.count),
        start_ms=parse_iso_utc(args.start),
        speed=args.speed,
        ws_update_ms=args.ws_update_ms,
    )
    with fake:
        print(fake.base_url, flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                print(json.dumps(stats(fake)), flush=True)


if __name__ == "__main__":
    main()
