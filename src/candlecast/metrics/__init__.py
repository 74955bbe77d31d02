"""Prometheus metrics for one process: a registry owned by a Metrics object, never a global.

Events (exchange requests, stream messages, HTTP requests) are counted as they happen, through
small observer hooks the exchange clients and the HTTP middleware call. Figures that live in
the database (candles, repairs, job runs, the ledger) are read when scraped, by a collector that
keeps them for `ttl` seconds and never makes a scrape wait long for the database.
"""

from candlecast.metrics.collector import StoreCollector
from candlecast.metrics.registry import Metrics
from candlecast.metrics.snapshot import Figures, RunTally, read_figures

__all__ = ["Figures", "Metrics", "RunTally", "StoreCollector", "read_figures"]
