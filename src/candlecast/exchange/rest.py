"""Binance REST client: klines paging, server time, rate governor, retries, error mapping."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol, TypeVar

import httpx

from candlecast.config import Settings
from candlecast.domain import (
    Candle,
    ExchangeUnavailable,
    InvalidSymbol,
    IPBanned,
    RateLimited,
    interval_ms,
    validate_symbol,
)
from candlecast.exchange.governor import ConcurrencyGate, WeightGovernor
from candlecast.exchange.rest_responses import (
    SymbolInfo,
    parse_kline,
    parse_klines,
    raise_rejected,
    retry_after,
)

T = TypeVar("T")
PAGE_LIMIT = 1000
KLINES_WEIGHT = 2
_USER_AGENT = "candlecast/0.1"
_CLOCK_TRIP_MAX_MS = 2_000


@dataclass(frozen=True, slots=True)
class RestStats:
    """What a client has done so far: HTTP attempts, retries, weight and throttling."""

    calls: int = 0
    retries: int = 0
    weight_used: int = 0
    max_weight_seen: int = 0
    throttle_seconds: float = 0.0


class RequestObserver(Protocol):
    """Told about every HTTP attempt (for metrics): the path, the status code or "error" when
    no answer came, and the weight the exchange says was used this minute."""

    def exchange_request(self, endpoint: str, status: str, weight_used: int | None) -> None: ...


class _RetryableError(Exception):
    """One attempt failed in a way worth another try, after `delay` seconds (None: backoff)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class BinanceRest:
    """Synchronous Binance market-data client; the only code that speaks HTTP to Binance."""

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float = 10.0,
        max_retries: int = 6,
        weight_budget_per_minute: int = 4800,
        max_workers: int = 4,
        backoff_base: float = 0.25,
        backoff_max: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
        on_server_time: Callable[[int, int, int], None] | None = None,
        banned_until_ms: int | None = None,
        on_ban: Callable[[int], None] | None = None,
        observer: RequestObserver | None = None,
        governor: WeightGovernor | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._max_retries = max_retries
        self._max_workers = max(1, min(4, max_workers))
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._wall = wall_clock
        self._rng = rng or random.Random()
        # Told (server ms, sent ms, received ms) after each clock read: the exchange-clock offset.
        self._on_server_time = on_server_time
        self._lock = threading.Lock()
        self._stats = RestStats()
        # A shared governor keeps every client of one process (one IP) within one budget.
        self.governor = governor or WeightGovernor(
            budget_per_minute=weight_budget_per_minute, sleep=sleep, wall_clock=wall_clock
        )
        # A 418 ban outlives this client: on_ban persists it, banned_until_ms restores it.
        self._on_ban = on_ban
        self._observer = observer
        if banned_until_ms is not None:
            self.governor.ban(banned_until_ms / 1000)
        self._gate = ConcurrencyGate()
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": _USER_AGENT},
            limits=httpx.Limits(max_connections=self._max_workers + 2),
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> BinanceRest:
        """Builds a client from Settings; keyword overrides win."""
        options: dict[str, Any] = {
            "base_url": settings.binance_url,
            "timeout": settings.http_timeout_seconds,
            "max_retries": settings.http_max_retries,
            "weight_budget_per_minute": settings.weight_budget_per_minute,
        }
        return cls(**{**options, **overrides})

    @property
    def stats(self) -> RestStats:
        """A snapshot of calls, retries and weight used."""
        with self._lock:
            return replace(self._stats, throttle_seconds=self.governor.slept)

    def server_time(self) -> int:
        """The exchange's clock, epoch ms, from GET /api/v3/time."""
        sent = time.time_ns() // 1_000_000
        server = self._call(
            "/api/v3/time", {}, weight=1, parse=lambda body: int(body["serverTime"])
        )
        received = time.time_ns() // 1_000_000
        # A read slowed by retries says little about the offset; only quick trips count.
        if self._on_server_time is not None and received - sent < _CLOCK_TRIP_MAX_MS:
            self._on_server_time(server, sent, received)
        return server

    def ping(self) -> None:
        """Checks connectivity with GET /api/v3/ping."""
        self._call("/api/v3/ping", {}, weight=1, parse=lambda body: body)

    def check_symbol(self, symbol: str) -> SymbolInfo:
        """Returns the symbol's exchangeInfo; raises InvalidSymbol if Binance does not list it."""
        wanted = validate_symbol(symbol)

        def parse(body: Any) -> SymbolInfo:
            for info in body.get("symbols", []):
                if info.get("symbol") == wanted:
                    return SymbolInfo(
                        wanted, str(info["status"]), str(info["baseAsset"]), str(info["quoteAsset"])
                    )
            raise InvalidSymbol(f"{self.base_url} does not list {wanted}")

        return self._call("/api/v3/exchangeInfo", {"symbol": wanted}, weight=20, parse=parse)

    def klines(
        self,
        symbol: str,
        interval: str,
        *,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = PAGE_LIMIT,
    ) -> list[Candle]:
        """One raw GET /api/v3/klines; the last candle may still be open."""
        interval_ms(interval)
        params: dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": limit}
        if start_time is not None:
            params["startTime"] = start_time
        if end_time is not None:
            params["endTime"] = end_time
        return self._call(
            "/api/v3/klines",
            params,
            weight=KLINES_WEIGHT,
            parse=lambda body: parse_klines(body, symbol=symbol, interval=interval),
        )

    def closed_kline_pages(
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int,
        end_ms: int | None = None,
        server_time_ms: int | None = None,
    ) -> Iterator[list[Candle]]:
        """Yields pages of closed candles in order, open_time in [start_ms, end_ms]."""
        step = interval_ms(interval)
        now = self.server_time() if server_time_ms is None else server_time_ms
        # A candle is closed once close_time (open_time + step - 1) < server time.
        last_open = now - step if end_ms is None else min(end_ms, now - step)
        span = PAGE_LIMIT * step
        windows = [(s, min(s + span - 1, last_open)) for s in range(start_ms, last_open + 1, span)]
        previous = start_ms - 1
        with ThreadPoolExecutor(self._max_workers, thread_name_prefix="klines") as pool:
            pending: deque[Future[list[Candle]]] = deque()
            todo = iter(windows)
            try:
                for window in todo:
                    pending.append(pool.submit(self._window, symbol, interval, window, now))
                    if len(pending) < 2 * self._max_workers:
                        continue
                    page = [c for c in pending.popleft().result() if c.open_time > previous]
                    previous = page[-1].open_time if page else previous
                    yield page
                while pending:
                    page = [c for c in pending.popleft().result() if c.open_time > previous]
                    previous = page[-1].open_time if page else previous
                    yield page
            finally:
                for future in pending:
                    future.cancel()

    def closed_klines(
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int,
        end_ms: int | None = None,
        server_time_ms: int | None = None,
        on_page: Callable[[list[Candle]], None] | None = None,
    ) -> list[Candle]:
        """All closed candles from start_ms (to end_ms); never the still-open one."""
        candles: list[Candle] = []
        pages = self.closed_kline_pages(
            symbol, interval, start_ms=start_ms, end_ms=end_ms, server_time_ms=server_time_ms
        )
        for page in pages:
            if on_page is not None:
                on_page(page)
            candles.extend(page)
        return candles

    def _window(
        self, symbol: str, interval: str, window: tuple[int, int], now: int
    ) -> list[Candle]:
        """Every closed candle with open_time in the window; pages on if a page came back full."""
        start, end = window
        out: list[Candle] = []
        while start <= end:
            page = self.klines(symbol, interval, start_time=start, end_time=end, limit=PAGE_LIMIT)
            out.extend(c for c in page if c.close_time < now and c.open_time <= end)
            if len(page) < PAGE_LIMIT:
                break
            start = page[-1].open_time + interval_ms(interval)
        return out

    def _call(
        self, path: str, params: dict[str, Any], *, weight: int, parse: Callable[[Any], T]
    ) -> T:
        """The single retry loop: gate, governor, request, error mapping, backoff."""
        last: _RetryableError | None = None
        with self._gate.slot() as slot:
            for attempt in range(self._max_retries + 1):
                if last is not None:
                    self._count(retries=1)
                    if last.delay is None:
                        cap = min(self._backoff_max, self._backoff_base * 2.0 ** (attempt - 1))
                        self._sleep(cap * (0.5 + self._rng.random() / 2))
                self.governor.acquire(weight)
                try:
                    result = self._attempt(path, params, parse)
                except _RetryableError as retry:
                    self._gate.failed(slot)
                    last = retry
                    continue
                self._gate.succeeded()
                return result
        assert last is not None
        if last.delay is not None:
            raise RateLimited(last.delay, f"still rate limited after {self._max_retries} retries")
        raise ExchangeUnavailable(
            f"{self.base_url}{path} failed {self._max_retries + 1} times; last: {last.reason}"
        )

    def _attempt(self, path: str, params: dict[str, Any], parse: Callable[[Any], T]) -> T:
        """One HTTP request, mapped to a result, a _RetryableError or a candlecast error."""
        self._count(calls=1)
        try:
            response = self._http.get(path, params=params)
        except httpx.TransportError as exc:
            if self._observer is not None:
                self._observer.exchange_request(path, "error", None)
            raise _RetryableError(f"{type(exc).__name__}: {exc}") from exc
        used = self.governor.observe(response.headers.get("X-MBX-USED-WEIGHT-1M"))
        if self._observer is not None:
            self._observer.exchange_request(path, str(response.status_code), used)
        if used is not None:
            self._count(weight=used)
        status = response.status_code
        if status == 200:
            try:
                return parse(response.json(parse_float=Decimal))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise _RetryableError(f"malformed response body: {exc}") from exc
        if status == 429:
            delay = retry_after(response, 1.0)
            self.governor.pause(delay)
            raise _RetryableError(f"HTTP 429, Retry-After {delay:g} s", delay=delay)
        if status == 418:
            until_ms = int((self._wall() + retry_after(response, 120.0)) * 1000)
            self.governor.ban(until_ms / 1000)
            if self._on_ban is not None:
                self._on_ban(until_ms)
            raise IPBanned(until_ms)
        if status >= 500:
            raise _RetryableError(f"HTTP {status}")
        raise_rejected(response, base_url=self.base_url, params=params)

    def _count(self, *, calls: int = 0, retries: int = 0, weight: int | None = None) -> None:
        with self._lock:
            s = self._stats
            self._stats = replace(
                s,
                calls=s.calls + calls,
                retries=s.retries + retries,
                weight_used=s.weight_used if weight is None else weight,
                max_weight_seen=max(s.max_weight_seen, weight or 0),
            )

    def close(self) -> None:
        """Closes the keep-alive connections."""
        self._http.close()

    def __enter__(self) -> BinanceRest:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = [
    "BinanceRest",
    "RestStats",
    "SymbolInfo",
    "WeightGovernor",
    "parse_kline",
    "parse_klines",
]
