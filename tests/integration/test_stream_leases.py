"""Stream shard leases on PostgreSQL: fair split, hand-over on stop, kill -9 and a lost session.

Every test runs in a fresh schema, so leases of other tests (and other engineers' runs on the
same database) are invisible: keys and the member count are scoped per database+schema.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from candlecast.store import db
from candlecast.store.leases import LeaseSession, lease_owners
from candlecast.stream_leases import ShardLeases

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

POLL = 0.5
SHARDS = 4
ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """Collects a ShardLeases' callbacks with the time they ran."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, float]] = []
        self._guard = threading.Lock()

    def acquired(self, shard: int) -> None:
        with self._guard:
            self.events.append(("acquired", shard, time.monotonic()))

    def lost(self, shard: int) -> None:
        with self._guard:
            self.events.append(("lost", shard, time.monotonic()))

    def of(self, kind: str) -> list[tuple[int, float]]:
        with self._guard:
            return [(shard, at) for what, shard, at in self.events if what == kind]


@pytest.fixture
def store_engine(database_url: str) -> Iterator[Engine]:
    engine = db.create_store_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def make_leases(database_url: str) -> Iterator[Callable[[str], tuple[ShardLeases, Recorder]]]:
    started: list[ShardLeases] = []
    tag = uuid.uuid4().hex[:8]

    def make(name: str) -> tuple[ShardLeases, Recorder]:
        recorder = Recorder()
        leases = ShardLeases(
            database_url,
            shards=SHARDS,
            on_acquired=recorder.acquired,
            on_lost=recorder.lost,
            poll_seconds=POLL,
            holder=f"{name}-{tag}",
        )
        started.append(leases)
        leases.start()
        return leases, recorder

    yield make
    for leases in started:
        leases.stop()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until the condition held; fails the test after `timeout`."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            pytest.fail(f"not true within {timeout} s: {condition}")
        time.sleep(0.02)
    return time.monotonic() - began


def split(*members: ShardLeases) -> list[set[int]]:
    return [member.owned() for member in members]


def covers_all_once(*members: ShardLeases) -> bool:
    owned = split(*members)
    return sum(map(len, owned)) == SHARDS and set().union(*owned) == set(range(SHARDS))


def test_two_processes_split_the_shards_two_and_two(
    make_leases: Callable[[str], tuple[ShardLeases, Recorder]], store_engine: Engine
) -> None:
    first, _ = make_leases("first")
    wait_for(lambda: len(first.owned()) == SHARDS)
    second, _ = make_leases("second")
    wait_for(lambda: [len(s) for s in split(first, second)] == [2, 2])
    assert covers_all_once(first, second)

    owners = lease_owners(store_engine, range(SHARDS))
    assert {owners[shard] for shard in first.owned()} == {first.application_name}
    assert {owners[shard] for shard in second.owned()} == {second.application_name}
    # Stable: no more hand-overs once the split is fair.
    time.sleep(4 * POLL)
    assert [len(s) for s in split(first, second)] == [2, 2]


def test_lease_owners_reports_holders_and_free_shards(
    database_url: str, store_engine: Engine
) -> None:
    session = LeaseSession(database_url, application="candlecast-stream:test-host:1")
    try:
        assert session.try_acquire(1) and session.try_acquire(1)  # twice, still one lock
        assert lease_owners(store_engine, range(3)) == {
            0: None,
            1: "candlecast-stream:test-host:1",
            2: None,
        }
        other = LeaseSession(database_url, application="candlecast-stream:other:2")
        try:
            assert not other.try_acquire(1)
            session.release(1)  # one release frees it, although acquired twice
            assert other.try_acquire(1)
            assert lease_owners(store_engine, [1]) == {1: "candlecast-stream:other:2"}
            assert other.view(3).members == {session.pid, other.pid}
        finally:
            other.close()
        assert lease_owners(store_engine, [1]) == {1: None}
        assert session.alive()
    finally:
        session.close()
    assert not session.alive()


def test_stopping_one_hands_its_shards_to_the_other_within_two_polls(
    make_leases: Callable[[str], tuple[ShardLeases, Recorder]], store_engine: Engine
) -> None:
    first, first_events = make_leases("first")
    second, _ = make_leases("second")
    wait_for(lambda: [len(s) for s in split(first, second)] == [2, 2])
    held = first.owned()

    first.stop()
    stopped = time.monotonic()
    assert {shard for shard, _ in first_events.of("lost")} >= held
    took = wait_for(lambda: len(second.owned()) == SHARDS, timeout=5)
    print(f"takeover after stop: {took:.2f} s (poll {POLL} s)")
    assert time.monotonic() - stopped <= 2 * POLL + 0.5
    assert set(lease_owners(store_engine, range(SHARDS)).values()) == {second.application_name}


_CHILD = textwrap.dedent(
    """
    import sys, time
    from candlecast.stream_leases import ShardLeases
    leases = ShardLeases(sys.argv[1], shards=int(sys.argv[2]), poll_seconds=float(sys.argv[3]),
                         holder=sys.argv[4], on_acquired=lambda s: None, on_lost=lambda s: None)
    leases.start()
    time.sleep(600)
    """
)


def test_survivor_takes_the_shards_of_a_process_killed_with_sigkill(
    database_url: str,
    make_leases: Callable[[str], tuple[ShardLeases, Recorder]],
    store_engine: Engine,
) -> None:
    survivor, _ = make_leases("survivor")
    wait_for(lambda: len(survivor.owned()) == SHARDS)
    name = f"child-{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, database_url, str(SHARDS), str(POLL), name],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    try:

        def child_holds_two() -> bool:
            owners = list(lease_owners(store_engine, range(SHARDS)).values())
            return owners.count(f"candlecast-stream:{name}") == 2

        wait_for(child_holds_two, timeout=20)
        assert len(survivor.owned()) == 2

        child.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        child.wait(10)
        took = wait_for(lambda: len(survivor.owned()) == SHARDS, timeout=10)
        print(f"takeover after kill -9: {took:.2f} s (poll {POLL} s)")
        assert time.monotonic() - killed <= 5
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def test_an_owner_whose_session_is_terminated_loses_its_shards_then_gets_them_back(
    make_leases: Callable[[str], tuple[ShardLeases, Recorder]], store_engine: Engine
) -> None:
    first, first_events = make_leases("first")
    second, _ = make_leases("second")
    wait_for(lambda: [len(s) for s in split(first, second)] == [2, 2])
    held = first.owned()
    acquired_before = len(first_events.of("acquired"))

    with store_engine.begin() as connection:
        terminated = (
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": first.application_name},
            )
            .scalars()
            .all()
        )
    assert terminated == [True]
    cut = time.monotonic()

    def lost_all() -> bool:
        return {shard for shard, at in first_events.of("lost") if at >= cut} >= held

    noticed = wait_for(lost_all, timeout=5)
    print(f"on_lost after pg_terminate_backend: {noticed:.2f} s (poll {POLL} s)")
    assert noticed <= POLL + 1
    # Back on a new session: every shard owned again, the fair split restored.
    wait_for(lambda: covers_all_once(first, second), timeout=10)
    wait_for(lambda: [len(s) for s in split(first, second)] == [2, 2], timeout=10)
    assert len(first_events.of("acquired")) > acquired_before
    assert first.session_pid() is not None


def test_a_failing_callback_does_not_stop_the_lease_thread(database_url: str) -> None:
    def explode(shard: int) -> None:
        raise RuntimeError(f"boom {shard}")

    leases = ShardLeases(
        database_url, shards=2, on_acquired=explode, on_lost=explode, poll_seconds=POLL
    )
    leases.start()
    try:
        wait_for(lambda: leases.owned() == {0, 1})
        time.sleep(2 * POLL)
        assert leases.owned() == {0, 1}
    finally:
        leases.stop()
    assert leases.owned() == set()
    assert leases.session_pid() is None


def test_three_processes_on_four_shards_each_stream_some(
    make_leases: Callable[[str], tuple[ShardLeases, Recorder]],
) -> None:
    first, _ = make_leases("first")
    second, _ = make_leases("second")
    wait_for(lambda: [len(s) for s in split(first, second)] == [2, 2])
    third, _ = make_leases("third")
    # 2/2/0 is within everyone's share (2), yet the richest hands one shard to the third.
    wait_for(lambda: sorted(len(s) for s in split(first, second, third)) == [1, 1, 2])
    assert covers_all_once(first, second, third)
