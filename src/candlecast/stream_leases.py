"""Stream shards: which process streams which followed pairs, across machines on PostgreSQL.

The followed pairs are split into `shards` groups by a stable hash (shard_of). Each shard is
streamed by the one process holding its lease, a PostgreSQL advisory lock on that process's
dedicated lease session (store.leases). ShardLeases runs the lease loop in a thread of its own:

- every `poll_seconds` it checks the session; a session that stopped answering (the database
  went away, or the backend was terminated) loses every shard at once: `on_lost` for each,
  then a new session as soon as the database answers again (logged once per outage);
- it takes free shards up to its fair share, ceil(shards / live lease sessions of this
  schema), so a second machine gets half the shards rather than none; one holding more than
  its share (it was alone a moment ago) hands the surplus back, `on_lost` first;
- a shard nobody took for two polls in a row is taken whatever the share, so no shard is
  ever left without a stream.

A process killed with -9 frees its shards as soon as the kernel closes its socket, so a
survivor owns them within one poll; a vanished host frees them when the server's keepalives
give up (~10 s). Either way the new owner's `on_acquired` is where the gap is filled by REST.

Callbacks run in the lease thread and must return quickly (start or stop a stream, do not
run it); an exception in one is logged and the loop goes on (the lease is kept). All
processes of a deployment must use the same shard count, or some pairs go unstreamed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import zlib
from collections.abc import Callable

from candlecast.domain import ConfigError, Pair, StoreError
from candlecast.store.leases import LeaseSession, LeaseView, application_name

log = logging.getLogger(__name__)

# After handing shards back, wait this many polls before handing any more: the new owners
# need a poll to take them, and views read meanwhile are stale.
SHED_PAUSE_POLLS = 5


def shard_of(pair: Pair, shards: int) -> int:
    """The stream shard of a pair: stable across processes, hosts and Python versions."""
    return zlib.crc32(f"{pair.symbol}:{pair.interval}".encode()) % shards


class ShardLeases:
    """Holds this process's share of the stream shard leases, in a background thread."""

    def __init__(
        self,
        database_url: str,
        *,
        shards: int,
        on_acquired: Callable[[int], None],
        on_lost: Callable[[int], None],
        poll_seconds: float = 2.0,
        holder: str | None = None,
    ) -> None:
        if shards < 1:
            raise ConfigError(f"stream shards must be at least 1, not {shards}")
        if poll_seconds <= 0:
            raise ConfigError(f"the lease poll must be positive, not {poll_seconds}")
        self.database_url = database_url
        self.shards = shards
        self.poll_seconds = poll_seconds
        self.application_name = application_name(holder)
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._session: LeaseSession | None = None
        self._owned: set[int] = set()
        self._guard = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._outage = False
        self._polls = 0
        self._free_before: set[int] = set()
        self._cooling: dict[int, int] = {}  # shard handed back -> last poll it is left alone
        self._shed_after = 0

    def start(self) -> None:
        """Starts the lease thread; its first poll runs at once."""
        if self._thread is not None:
            raise RuntimeError("ShardLeases already started")
        self._thread = threading.Thread(
            target=self._run, name="candlecast-stream-leases", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stops the thread: `on_lost` for every held shard, then the leases are released."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def owned(self) -> set[int]:
        """The shards this process holds now."""
        with self._guard:
            return set(self._owned)

    def session_pid(self) -> int | None:
        """The backend pid of the lease session, None while there is none."""
        session = self._session
        return None if session is None else session.pid

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self.poll()
                except Exception:
                    log.exception("stream leases: the poll failed")
                    self._drop("the poll failed")
                self._stopping.wait(self.poll_seconds)
        finally:
            self._release_all()

    def poll(self) -> None:
        """One round of the loop (the thread runs it; tests may call it directly instead)."""
        self._polls += 1
        session = self._session
        if session is not None and not session.alive():
            self._drop("the database stopped answering on the lease session")
        session = self._session or self._connect()
        if session is None:
            return
        try:
            view = session.view(self.shards)
            self._shed(session, view)
            self._acquire(session, view)
        except StoreError as exc:
            self._drop(str(exc))

    def _connect(self) -> LeaseSession | None:
        try:
            session = LeaseSession(self.database_url, application=self.application_name)
        except StoreError as exc:
            if not self._outage:
                log.warning("stream leases: no lease session, retrying every poll: %s", exc)
            self._outage = True
            return None
        if self._outage:
            log.info("stream leases: the lease session is back")
        self._outage = False
        self._free_before = set()
        self._session = session
        return session

    def _drop(self, reason: str) -> None:
        """The session is gone or untrusted: every shard on it is lost."""
        lost = sorted(self.owned())
        if lost:
            log.warning("stream leases: lost shards %s: %s", lost, reason)
        for shard in lost:
            self._lose(shard)
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def _acquire(self, session: LeaseSession, view: LeaseView) -> None:
        share = math.ceil(self.shards / len(view.members))
        free = [shard for shard in range(self.shards) if shard not in view.holders]
        orphans = self._free_before.intersection(free)
        self._free_before = set(free)
        for shard in free:
            cooling = self._cooling.get(shard, 0) >= self._polls
            wanted = shard in orphans or (len(self._owned) < share and not cooling)
            if wanted and session.try_acquire(shard):
                with self._guard:
                    self._owned.add(shard)
                self._call(self._on_acquired, shard)

    def _shed(self, session: LeaseSession, view: LeaseView) -> None:
        if self._polls < self._shed_after or len(view.members) < 2:
            return
        counts = view.counts()
        counts[session.pid] = len(self._owned)
        surplus = len(self._owned) - math.ceil(self.shards / len(view.members))
        if surplus <= 0:
            # Within its share but two or more above the poorest member (3 members on 4
            # shards sitting at 2/2/0): the richest, lowest pid first, hands one back.
            top, bottom = max(counts.values()), min(counts.values())
            richest = min(pid for pid, count in counts.items() if count == top)
            surplus = 1 if top - bottom >= 2 and richest == session.pid else 0
        if surplus <= 0:
            return
        handed = sorted(self._owned, reverse=True)[:surplus]
        log.info("stream leases: handing shards %s back to share them", sorted(handed))
        for shard in handed:
            self._lose(shard)
            self._cooling[shard] = self._polls + 2
            session.release(shard)
        self._shed_after = self._polls + SHED_PAUSE_POLLS

    def _lose(self, shard: int) -> None:
        with self._guard:
            self._owned.discard(shard)
        self._call(self._on_lost, shard)

    def _release_all(self) -> None:
        session = self._session
        for shard in sorted(self.owned()):
            self._lose(shard)
            if session is not None and not session.closed:
                # On failure the session is closed: the server released the rest too.
                with contextlib.suppress(StoreError):
                    session.release(shard)
        self._session = None
        if session is not None:
            session.close()

    def _call(self, callback: Callable[[int], None], shard: int) -> None:
        try:
            callback(shard)
        except Exception:
            log.exception("stream leases: callback %r failed for shard %d", callback, shard)
