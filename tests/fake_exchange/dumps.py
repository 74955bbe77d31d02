"""data.binance.vision as the fake exchange serves it: kline dumps built from the loaded candles.

Every served market has its own files. A monthly or daily file exists only when the loaded
candles span its whole period, as on the real server, and is a zip holding one headerless
12-column CSV with a `.CHECKSUM` beside it.
Times are microseconds from 2025-01-01 on and milliseconds before, as in Binance's spot dumps.
Through /_fake/dumps, tests can make a file corrupt (its bytes no longer match its checksum)
or make its next requests fail with 503.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import re
import threading
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

from aiohttp import web

from tests.fake_exchange.market import Market, kline_array
from tests.fake_exchange.state import FakeState

MICROSECONDS_FROM_MS = calendar.timegm((2025, 1, 1, 0, 0, 0)) * 1000
_FILE_RE = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>\w+)-(?P<period>\d{4}-\d{2}(?:-\d{2})?)\.zip"
    r"(?P<checksum>\.CHECKSUM)?$"
)
_DAY_MS = 86_400_000


@dataclass
class DumpShelf:
    """Built files, the requests they got, and the ones tests made corrupt."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    built: dict[str, bytes | None] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    corrupt: set[str] = field(default_factory=set)
    # File name -> how many more requests for it answer 503.
    failing: Counter[str] = field(default_factory=Counter)


DUMPS: web.AppKey[DumpShelf] = web.AppKey("dumps", DumpShelf)
STATE: web.AppKey[FakeState] = web.AppKey("dump_state", FakeState)


def _period_ms(period: str) -> tuple[int, int]:
    """[start, end) of a YYYY-MM or YYYY-MM-DD period in epoch ms."""
    if len(period) == 7:
        year, month = (int(part) for part in period.split("-"))
        days = calendar.monthrange(year, month)[1]
        start = calendar.timegm(date(year, month, 1).timetuple()) * 1000
        return start, start + days * _DAY_MS
    start = calendar.timegm(datetime.strptime(period, "%Y-%m-%d").timetuple()) * 1000
    return start, start + _DAY_MS


def dump_csv(market: Market, start: int, end: int) -> str:
    """The dump's CSV body for candles with open_time in [start, end)."""
    lo, hi = market.index_at_or_after(start), market.index_at_or_after(end)
    scale = 1000 if start >= MICROSECONDS_FROM_MS else 1
    lines = []
    for row in market.rows[lo:hi]:
        fields = kline_array(row)
        fields[0] = int(str(fields[0])) * scale
        fields[6] = int(str(fields[6])) * scale
        lines.append(",".join(str(value) for value in fields))
    return "\n".join(lines) + "\n"


def build_zip(market: Market, name: str, period: str) -> bytes | None:
    """The zip for a period, or None when the loaded candles do not span all of it."""
    start, end = _period_ms(period)
    if (
        not market.rows
        or market.open_times[0] > start
        or market.open_times[-1] < end - market.step_ms
    ):
        return None
    body = dump_csv(market, start, end)
    buffer = io.BytesIO()
    # A fixed timestamp keeps the bytes, hence the checksum, the same on every build.
    info = zipfile.ZipInfo(name.replace(".zip", ".csv"), date_time=(2025, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, body)
    return buffer.getvalue()


def _file(shelf: DumpShelf, market: Market, name: str, period: str) -> bytes | None:
    with shelf.lock:
        if name not in shelf.built:
            shelf.built[name] = build_zip(market, name, period)
        return shelf.built[name]


async def _serve(request: web.Request) -> web.StreamResponse:
    shelf = request.app[DUMPS]
    symbol, interval = request.match_info["symbol"], request.match_info["interval"]
    market = request.app[STATE].find(symbol, interval)
    match = _FILE_RE.match(request.match_info["file"])
    monthly = request.match_info["span"] == "monthly"
    if (
        match is None
        or market is None
        or (match["symbol"], match["interval"]) != (symbol, interval)
        or (len(match["period"]) == 7) != monthly
    ):
        raise web.HTTPNotFound(text="<Error><Code>NoSuchKey</Code></Error>")
    name = f"{symbol}-{interval}-{match['period']}.zip"
    shelf.requests[request.match_info["file"]] += 1
    if shelf.failing[request.match_info["file"]] > 0:
        shelf.failing[request.match_info["file"]] -= 1
        raise web.HTTPServiceUnavailable(text="<html>503 Service Unavailable</html>")
    content = _file(shelf, market, name, match["period"])
    if content is None:
        raise web.HTTPNotFound(text="<Error><Code>NoSuchKey</Code></Error>")
    if match["checksum"]:
        digest = hashlib.sha256(content).hexdigest()
        return web.Response(text=f"{digest}  {name}\n", content_type="text/plain")
    if name in shelf.corrupt:
        content = content[:-40] + bytes(b ^ 0xFF for b in content[-40:])
    return web.Response(body=content, content_type="application/zip")


async def _control(request: web.Request) -> web.Response:
    shelf = request.app[DUMPS]
    if request.method == "POST":
        body = await request.json()
        if body.get("reset"):
            shelf.requests.clear()
            shelf.corrupt.clear()
            shelf.failing.clear()
        shelf.corrupt.update(body.get("corrupt", []))
        shelf.failing.update(body.get("fail", {}))
    return web.json_response({"requests": dict(shelf.requests), "corrupt": sorted(shelf.corrupt)})


def add_dump_routes(app: web.Application, state: FakeState) -> None:
    """Serves /data/spot/{monthly,daily}/klines/... and the /_fake/dumps control."""
    app[DUMPS] = DumpShelf()
    app[STATE] = state
    app.router.add_get("/data/spot/{span:monthly|daily}/klines/{symbol}/{interval}/{file}", _serve)
    app.router.add_route("*", "/_fake/dumps", _control)
