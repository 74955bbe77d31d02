"""`candlecast import` takes what `candlecast export` writes, and refuses anything else in one
line that says what was found and which formats are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from candlecast.cli import app
from candlecast.store import db, gaps
from tests.shared_data import shared_data_path

ETH = "ethusdt-5m-2025-08-19_2025-09-20-full.csv"
ACCEPTED = "accepted: Binance kline dumps"


def _cli(database_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--database-url", database_url])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def source_db(tmp_path: Path) -> str:
    """A SQLite database holding the real ETHUSDT candles, every Binance column included."""
    url = f"sqlite:///{tmp_path / 'source.db'}"
    code, _, stderr = _cli(url, "import", str(shared_data_path(ETH)))
    assert code == 0, stderr
    return url


def _export_csv(database_url: str, output: Path) -> str:
    code, _, stderr = _cli(database_url, "export", "-s", "ETHUSDT", "-i", "5m", "-o", str(output))
    assert code == 0, stderr
    return output.read_text()


def test_parquet_export_imports_with_no_flags_and_is_identical(
    source_db: str, database_url: str, tmp_path: Path
) -> None:
    parquet = tmp_path / "backup.parquet"
    code, _, stderr = _cli(
        source_db, "export", "-s", "ETHUSDT", "--format", "parquet", "-o", str(parquet)
    )
    assert code == 0, stderr
    code, stdout, stderr = _cli(database_url, "import", str(parquet))
    assert code == 0, stderr
    assert "ETHUSDT 5m: 9100 rows, 9100 inserted" in stdout
    before = _export_csv(source_db, tmp_path / "before.csv")
    after = _export_csv(database_url, tmp_path / "after.csv")
    assert after == before and len(after.splitlines()) == 9101
    # Importing the same backup again changes nothing.
    code, stdout, _ = _cli(database_url, "import", str(parquet))
    assert code == 0 and "9100 unchanged" in stdout


def test_csv_export_round_trips(source_db: str, database_url: str, tmp_path: Path) -> None:
    exported = tmp_path / "ETHUSDT-5m-2025-08-19_2025-09-20.csv"
    before = _export_csv(source_db, exported)
    code, stdout, stderr = _cli(database_url, "import", str(exported))
    assert code == 0, stderr
    assert "ETHUSDT 5m: 9100 rows, 9100 inserted" in stdout
    assert _export_csv(database_url, tmp_path / "after.csv") == before
    # A CSV export named anything else loads with the pair given as flags.
    renamed = tmp_path / "eth.csv"
    renamed.write_text(before)
    code, stdout, stderr = _cli(database_url, "import", str(renamed), "-s", "ETHUSDT", "-i", "5m")
    assert code == 0 and "9100 unchanged" in stdout, stderr


def _refused(database_url: str, path: Path) -> str:
    code, stdout, stderr = _cli(database_url, "import", str(path))
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1, (stdout, stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error: {path}: not a candle file: ") and ACCEPTED in lines[0]
    engine = db.create_store_engine(database_url)
    with engine.connect() as connection:
        assert gaps.summaries(connection) == []
    engine.dispose()
    return lines[0]


def test_a_binary_file_is_one_clear_line(database_url: str, tmp_path: Path) -> None:
    line = _refused(database_url, Path("/bin/true"))
    assert "an executable" in line
    blob = tmp_path / "BTCUSDT-5m-2025-09.csv"
    blob.write_bytes(bytes(range(256)) * 8)
    assert "binary data" in _refused(database_url, blob)


def test_a_text_file_with_the_wrong_header_is_one_clear_line(database_url: str) -> None:
    line = _refused(database_url, Path("/etc/passwd"))
    assert "wrong header 'root:x:0:0:" in line and "no open_time" in line


def test_an_empty_file_is_one_clear_line(database_url: str, tmp_path: Path) -> None:
    empty = tmp_path / "BTCUSDT-5m-2025-09.csv"
    empty.write_bytes(b"")
    assert "the file is empty" in _refused(database_url, empty)
    empty.write_text("\n\n")
    assert "the file is empty" in _refused(database_url, empty)


def test_wrong_columns_are_one_clear_line(database_url: str, tmp_path: Path) -> None:
    short = tmp_path / "BTCUSDT-5m-2025-09-01.csv"
    short.write_text("1756684800000,1,2,0.5,1.5,10\n")
    assert "line 1 has 6 fields where a kline dump has 12" in _refused(database_url, short)
    header_only = tmp_path / "candles.csv"
    header_only.write_text("time,price\n1,2\n")
    assert "wrong header 'time,price'" in _refused(database_url, header_only)


def test_a_foreign_parquet_file_names_its_columns(database_url: str, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "BTCUSDT-5m-other.parquet"
    pq.write_table(pa.table({"time": [1, 2], "price": ["1", "2"]}), path)
    code, _, stderr = _cli(database_url, "import", str(path))
    assert code == 1 and "wrong columns: found time, price" in stderr


def test_a_row_with_too_many_fields_names_its_line(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-5m-2025-09-01.csv"
    path.write_text(
        "open_time,open,high,low,close,volume\n"
        "2025-09-01T00:00:00Z,1,2,0.5,1.5,10\n"
        "2025-09-01T00:05:00Z,1,2,0.5,1.5,10,7,8\n"
    )
    code, _, stderr = _cli(database_url, "import", str(path))
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, stderr
    assert "line 3 has 8 fields where the header has 6" in lines[0]
    assert "C error" not in lines[0] and "tokenizing" not in lines[0]
