"""Stream shards without a database: the pair-to-shard hash, advisory key halves, conninfo."""

from __future__ import annotations

import zlib
from collections import Counter

import pytest
from psycopg.conninfo import conninfo_to_dict

from candlecast.domain import ConfigError, Pair
from candlecast.store.leases import (
    LeaseView,
    advisory_ids,
    application_name,
    lease_conninfo,
    lease_key,
)
from candlecast.stream_leases import ShardLeases, shard_of


def test_shard_of_is_the_crc32_of_symbol_and_interval() -> None:
    pair = Pair.of("BTCUSDT", "5m")
    assert shard_of(pair, 4) == zlib.crc32(b"BTCUSDT:5m") % 4
    # Fixed values: a change here reshuffles every deployment's shards.
    assert [shard_of(pair, n) for n in (1, 2, 3, 4, 8)] == [
        zlib.crc32(b"BTCUSDT:5m") % n for n in (1, 2, 3, 4, 8)
    ]
    assert shard_of(Pair.of("ethusdt", "1h"), 7) == shard_of(Pair("ETHUSDT", "1h"), 7)


def test_shard_of_spreads_a_hundred_pairs_roughly_evenly() -> None:
    pairs = [
        Pair.of(f"{base}USDT", interval)
        for base in ("BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "DOT", "LTC", "AVAX")
        for interval in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "1d", "1w")
    ]
    assert len(set(pairs)) == 100
    counts = Counter(shard_of(pair, 4) for pair in pairs)
    assert set(counts) == {0, 1, 2, 3}
    assert all(15 <= count <= 35 for count in counts.values()), counts


def test_advisory_ids_are_the_unsigned_halves_of_the_key() -> None:
    assert advisory_ids(1) == (0, 1)
    assert advisory_ids(-1) == (0xFFFF_FFFF, 0xFFFF_FFFF)
    assert advisory_ids((5 << 32) | 7) == (5, 7)
    key = lease_key("test", "public", 3)
    high, low = advisory_ids(key)
    assert ((high << 32) | low) == key & 0xFFFF_FFFF_FFFF_FFFF


def test_lease_keys_are_scoped_per_database_schema_and_shard() -> None:
    keys = {
        lease_key(database, schema, shard)
        for database in ("a", "b")
        for schema in ("public", "other")
        for shard in range(4)
    }
    assert len(keys) == 16
    assert all(-(2**63) <= key < 2**63 for key in keys)


def test_lease_conninfo_keeps_the_url_options_and_adds_keepalives() -> None:
    url = "postgresql://u:secret@db.example:5433/cc?options=-c%20search_path%3Dt1&sslmode=require"
    params = conninfo_to_dict(lease_conninfo(url, "candlecast-stream:h:1"))
    assert params["host"] == "db.example" and params["port"] == "5433"
    assert params["user"] == "u" and params["password"] == "secret" and params["dbname"] == "cc"
    assert params["sslmode"] == "require"
    assert str(params["options"]).startswith("-c search_path=t1 ")
    assert "-c tcp_keepalives_idle=5" in str(params["options"])
    assert params["keepalives_idle"] == "5" and params["keepalives_count"] == "2"
    assert params["tcp_user_timeout"] == "10000"
    assert params["application_name"] == "candlecast-stream:h:1"


def test_leases_need_postgresql_and_a_shard() -> None:
    with pytest.raises(ConfigError):
        lease_conninfo("sqlite:///x.db", "x")
    with pytest.raises(ConfigError):
        ShardLeases("postgresql://x/y", shards=0, on_acquired=print, on_lost=print)


def test_application_name_names_host_and_pid_by_default() -> None:
    assert application_name("h:1") == "candlecast-stream:h:1"
    prefix, host, pid = application_name().split(":")
    assert prefix == "candlecast-stream" and host and pid.isdigit()


def test_lease_view_counts_members_holding_nothing() -> None:
    view = LeaseView(frozenset({10, 20, 30}), {0: 10, 1: 10, 2: 20})
    assert view.counts() == {10: 2, 20: 1, 30: 0}


def test_an_unreachable_database_is_logged_once_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    leases = ShardLeases(
        "postgresql://nobody@127.0.0.1:1/none", shards=2, on_acquired=print, on_lost=print
    )
    with caplog.at_level("WARNING", logger="candlecast.stream_leases"):
        for _ in range(3):
            leases.poll()
    assert leases.owned() == set()
    assert len([r for r in caplog.records if "no lease session" in r.getMessage()]) == 1
