"""A throwaway PostgreSQL cluster on its own port, which tests may stop and restart at will.

Never the machine's PostgreSQL (other people's tests use it). initdb refuses root, so the
cluster runs as the `postgres` system user, in a temporary folder removed at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tests.reliability.support import free_port


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def unavailable_reason() -> str | None:
    """Why a throwaway cluster cannot run here, or None when it can."""
    if _bin_dir() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "starting a throwaway cluster as the postgres user needs root and runuser"
    return None


class ThrowawayPostgres:
    """initdb + pg_ctl in a temporary folder; use as a context manager."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL server binaries found")
        self._bin = bin_dir
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="candlecast-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the `postgres` database on this cluster."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str, timeout: float = 60) -> None:
        command = ["runuser", "-u", "postgres", "--", str(self._bin / args[0]), *args[1:]]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    def start(self) -> None:
        """Starts the server and waits until it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stops the server (mode "fast" or "immediate", which is like a crash)."""
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stops then starts the server."""
        self.stop(mode)
        self.start()

    def __enter__(self) -> ThrowawayPostgres:
        shutil.chown(self.folder, "postgres", "postgres")
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
