"""Runs the fake exchange as its own process: python -m tests.fake_exchange --csv PATH.

--csv may repeat (the first is the main market); --synthetic N adds N markets SYN001USDT..
made from --synthetic-csv (default: the first CSV), all on one virtual clock.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from candlecast.domain import parse_iso_utc
from tests.fake_exchange.market import Market
from tests.fake_exchange.server import FakeExchange, MarketSpec
from tests.fake_exchange.synthetic import synthetic_markets


def main(argv: list[str] | None = None) -> int:
    """Parses arguments, serves until SIGINT/SIGTERM, prints the base URL on one line."""
    parser = argparse.ArgumentParser(prog="python -m tests.fake_exchange", description=__doc__)
    parser.add_argument(
        "--csv", required=True, type=Path, action="append", help="a CSV from ../shared/data"
    )
    parser.add_argument("--synthetic", type=int, default=0, help="add N synthetic markets")
    parser.add_argument("--synthetic-csv", type=Path, help="their base CSV (default: --csv)")
    parser.add_argument("--start", help="virtual start time, ISO 8601 UTC or epoch ms")
    parser.add_argument("--speed", type=float, default=1.0, help="virtual seconds per second")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--symbol", help="of the first CSV; default: from its file name")
    parser.add_argument("--interval", help="of the first CSV; default: from its file name")
    parser.add_argument("--ws-update-ms", type=int, default=250)
    parser.add_argument("--ws-heartbeat", type=float, default=20.0, help="ping every N s")
    args = parser.parse_args(argv)
    extra: list[Market | MarketSpec] = [MarketSpec(path) for path in args.csv[1:]]
    extra += synthetic_markets(args.synthetic_csv or args.csv[0], args.synthetic)
    fake = FakeExchange(
        csv_path=args.csv[0],
        markets=extra,
        start_ms=parse_iso_utc(args.start) if args.start else None,
        speed=args.speed,
        symbol=args.symbol,
        interval=args.interval,
        host=args.host,
        port=args.port,
        ws_update_ms=args.ws_update_ms,
        ws_heartbeat_s=args.ws_heartbeat,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with fake:
        print(fake.base_url, flush=True)
        print(
            f"fake exchange: {len(fake.markets)} markets, first {fake.market.symbol} "
            f"{fake.market.interval} ({len(fake.market.rows)} candles); ws "
            f"{fake.ws_url}/ws/{fake.market.stream} or {fake.stream_url(fake.market.stream)}",
            file=sys.stderr,
            flush=True,
        )
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
