"""Result tables that fit an 80-column terminal: baselines are abbreviated through a legend line,
headers wrap, and no cell is ever cut short with an ellipsis."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from candlecast.domain import iso_utc

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

    from candlecast.domain import Pair
    from candlecast.store.gaps import PairSummary


def fmt(value: Any, digits: int = 4) -> str:
    """A figure for a table: floats to `digits` places, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(*headers: str, title: str | None = None) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        title_justify="left",
    )
    for header in headers:
        # fold: a narrow terminal wraps a cell rather than cutting it with "…".
        table.add_column(header, overflow="fold")
    return table


def abbreviations(names: Iterable[str]) -> dict[str, str]:
    """Short, unique codes for baseline names: median_move_12 -> mm12, persistence -> p."""
    codes: dict[str, str] = {}
    for name in dict.fromkeys(n for n in names if n and n != "-"):
        parts = [part for part in re.split(r"[^A-Za-z0-9]+", name) if part]
        code = "".join(part if part.isdigit() else part[0] for part in parts).lower() or name
        candidate, n = code, 2
        while candidate in codes.values():
            candidate, n = f"{code}{n}", n + 1
        codes[name] = candidate
    return codes


def _codes(targets: Iterable[dict[str, Any]]) -> dict[str, str]:
    return abbreviations(
        str(figures[key])
        for figures in targets
        for key in ("baseline", "strong_baseline")
        if figures.get(key) is not None
    )


def _legend(codes: dict[str, str]) -> str:
    # code=name without spaces, so a wrapped legend never splits a pair.
    return "baselines: " + ", ".join(f"{code}={name}" for name, code in codes.items())


def _group(*parts: RenderableType) -> RenderableType:
    from rich.console import Group

    return Group(*parts)


def _code(codes: dict[str, str], name: Any) -> str:
    return codes.get(str(name), "-") if name not in (None, "-") else "-"


def status_table(pairs: Sequence[PairSummary], *, followed: Sequence[Pair] | None = None) -> Table:
    """What is stored per pair: first and last candle (UTC, to the minute), count and gaps.

    With `followed`, a pair is one SYMBOL:INTERVAL column; every followed pair comes first, in
    order (one with no candles yet says so), then the stored pairs no one follows (marked)."""
    times = ["first (UTC)", "last (UTC)", "count", "gaps", "missing"]
    if followed is None:
        table = _table("symbol", "interval", *times)
    else:
        table = _table("pair", *times, "followed")
    # Times stay on one line; a long symbol or a header wraps first.
    for column in table.columns:
        column.no_wrap = column.header in times[:2]
    by_pair = {(p.symbol, p.interval): p for p in pairs}
    order = [(pair.symbol, pair.interval) for pair in followed or ()]
    following = set(order)
    order += [key for key in by_pair if key not in following]
    for symbol, interval in order:
        p = by_pair.get((symbol, interval))
        figures = (
            ["no candles yet", "-", "0", "0", "0"]
            if p is None
            else [
                _minute(p.first_open_time),
                _minute(p.last_open_time),
                str(p.count),
                str(p.gaps),
                str(p.missing),
            ]
        )
        if followed is None:
            table.add_row(symbol, interval, *figures)
        else:
            mark = "yes" if (symbol, interval) in following else "no"
            table.add_row(f"{symbol}:{interval}", *figures, mark)
    return table


def pairs_table(rows: Sequence[dict[str, Any]]) -> Table:
    """The followed pairs in order: added, first backfill done, newest candle and champion."""
    table = _table(
        "#", "symbol", "interval", "added (UTC)", "backfilled", "newest (UTC)", "champion"
    )
    for column in (table.columns[3], table.columns[5]):
        column.no_wrap = True
    for position, row in enumerate(rows, start=1):
        table.add_row(
            str(position),
            row["symbol"],
            row["interval"],
            _iso_minute(row["added_at"]),
            "yes" if row["backfilled"] else "not yet",
            _iso_minute(row["last_candle_time"]) if row["last_candle_time"] else "no candles yet",
            "-" if row["champion_id"] is None else str(row["champion_id"]),
        )
    return table


def _iso_minute(iso: str | None) -> str:
    return "-" if iso is None else iso[:16].replace("T", " ")


def _minute(ms: int | None) -> str:
    # "2025-07-02 12:05": every candlecast interval is a whole number of minutes.
    return "-" if ms is None else iso_utc(ms)[:16].replace("T", " ")


def _har(figures: dict[str, Any]) -> str:
    if figures.get("har_skill") is None:
        return "-"
    low, high = figures.get("har_skill_ci95") or [None, None]
    return f"{fmt(figures['har_skill'])} [{fmt(low)}, {fmt(high)}]"


def validation_tables(validation: dict[str, Any]) -> RenderableType:
    """The held-out validation figures of a trained model, per target, with their baselines."""
    targets = {k: v for k, v in validation.items() if k not in ("direction", "quantiles")}
    codes = _codes(targets.values())
    table = _table(
        "target",
        "MAE",
        "base",
        "base MAE",
        "skill",
        "strong base",
        "strong skill",
        "HAR skill",
        title="validation (held-out tail)",
    )
    for name, figures in targets.items():
        table.add_row(
            name,
            fmt(figures.get("mae")),
            _code(codes, figures.get("baseline")),
            fmt(figures.get("baseline_mae")),
            fmt(figures.get("skill")),
            _code(codes, figures.get("strong_baseline")),
            fmt(figures.get("strong_skill")),
            fmt(figures.get("har_skill")),
        )
    parts: list[RenderableType] = [table, _legend(codes)]
    direction = validation.get("direction")
    if direction:
        parts.append(
            f"direction: Brier {fmt(direction.get('brier'))} "
            f"(climatology {fmt(direction.get('brier_baseline'))})"
        )
    return _group(*parts)


def report_tables(report: dict[str, Any]) -> RenderableType:
    """A walk-forward report: accuracy against the baseline, then against the stronger ones."""
    targets: dict[str, dict[str, Any]] = report["targets"]
    codes = _codes(targets.values())
    accuracy = _table(
        "target",
        "MAE",
        "RMSE",
        "sMAPE %",
        "base",
        "base MAE",
        "skill",
        title=f"walk-forward: {report['folds']} folds, {report['rows']} rows, "
        f"train {report['train_days']} d",
    )
    stronger = _table("target", "strong base", "strong skill", "HAR skill [95% CI]")
    for name, figures in targets.items():
        accuracy.add_row(
            name,
            fmt(figures.get("mae")),
            fmt(figures.get("rmse")),
            fmt(figures.get("smape")),
            _code(codes, figures.get("baseline")),
            fmt(figures.get("baseline_mae")),
            fmt(figures.get("skill")),
        )
        stronger.add_row(
            name,
            _code(codes, figures.get("strong_baseline")),
            fmt(figures.get("strong_skill")),
            _har(figures),
        )
    return _group(accuracy, stronger, _legend(codes))
