"""Binance public data dumps (data.binance.vision): zip/CSV files with 12 headerless columns.

Spot dumps carry microsecond timestamps from 2025-01-01 on and milliseconds before; a value
above 1e13 is microseconds (binance-public-data#474 shows what misreading them does).
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from candlecast.domain import DataFileError

# BTCUSDT-5m-2025-09.zip, BTCUSDT-5m-2025-09-27.csv, btcusdt-5m-2025-06-29_2025-10-06.csv
_NAME_RE = re.compile(
    r"^(?P<symbol>[A-Za-z0-9]{2,20})-(?P<interval>\d+[mhdwM])-\d{4}-\d{2}", re.ASCII
)
MICROSECONDS_ABOVE = 10**13


def pair_from_name(path: Path) -> tuple[str, str] | None:
    """(SYMBOL, interval) from a dump-style file name, or None when the name has none."""
    match = _NAME_RE.match(path.name)
    if match is None:
        return None
    return match["symbol"].upper(), match["interval"]


def to_milliseconds(value: int) -> int:
    """Normalises a dump timestamp (ms before 2025, µs from 2025 on) to milliseconds."""
    if value > MICROSECONDS_ABOVE:
        return value // 1000
    return value


def verify_checksum(path: Path) -> bool | None:
    """Checks `<zip>.CHECKSUM` when it lies beside the file: True, or None when absent."""
    checksum_file = path.with_name(path.name + ".CHECKSUM")
    if not checksum_file.exists():
        return None
    expected = checksum_file.read_text(encoding="ascii", errors="replace").split()
    if not expected:
        raise DataFileError(str(checksum_file), "empty checksum file")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest().lower() != expected[0].lower():
        raise DataFileError(
            str(path), f"sha256 {digest.hexdigest()} does not match {checksum_file.name}"
        )
    return True


@contextmanager
def open_text(path: Path) -> Iterator[IO[str]]:
    """Opens a .csv, or the single CSV inside a .zip, as text; bad zips raise DataFileError."""
    if path.suffix.lower() != ".zip":
        try:
            with path.open("r", encoding="utf-8", newline="") as handle:
                yield handle
        except FileNotFoundError:
            raise DataFileError(str(path), "no such file") from None
        return
    verify_checksum(path)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise DataFileError(str(path), "no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataFileError(str(path), f"not a readable zip archive ({exc})") from None
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) != 1:
            raise DataFileError(str(path), f"expected one CSV in the zip, found {len(members)}")
        try:
            # Read whole: a truncated member fails its CRC only at the end of the stream.
            content = archive.read(members[0])
        except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as exc:
            raise DataFileError(
                str(path), f"corrupt zip member {members[0].filename}: {exc}"
            ) from None
        yield io.TextIOWrapper(io.BytesIO(content), encoding="utf-8", newline="")


def _single_member(path: Path, archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) != 1:
        raise DataFileError(str(path), f"expected one CSV in the zip, found {len(members)}")
    return members[0]


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise DataFileError(str(path), "no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataFileError(str(path), f"not a readable zip archive ({exc})") from None


def peek_first_line(path: Path, *, limit: int = 4096) -> str:
    """The first line of a .csv, or of the CSV inside a .zip, without reading the rest."""
    try:
        if path.suffix.lower() != ".zip" and not zipfile.is_zipfile(path):
            with path.open("rb") as handle:
                raw = handle.readline(limit)
        else:
            with _open_zip(path) as archive, archive.open(_single_member(path, archive)) as member:
                raw = member.readline(limit)
    except FileNotFoundError:
        raise DataFileError(str(path), "no such file") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataFileError(str(path), f"corrupt zip archive: {exc}") from None
    return raw.decode("utf-8", errors="replace")


@contextmanager
def open_binary(path: Path) -> Iterator[IO[bytes]]:
    """Opens a .csv, or the single CSV inside a .zip, as a byte stream.

    A zip member is streamed: its CRC is checked only when the stream ends, which is fine
    because every import runs in one transaction that a late error rolls back whole.
    """
    if path.suffix.lower() != ".zip" and not zipfile.is_zipfile(path):
        try:
            with path.open("rb") as handle:
                yield handle
        except FileNotFoundError:
            raise DataFileError(str(path), "no such file") from None
        return
    verify_checksum(path)
    with _open_zip(path) as archive:
        member = _single_member(path, archive)
        try:
            with archive.open(member) as stream:
                yield stream
        except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as exc:
            raise DataFileError(str(path), f"corrupt zip member {member.filename}: {exc}") from None
