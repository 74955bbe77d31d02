"""Stage progress: shown with Rich on a terminal, nothing extra otherwise."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from candlecast.cli import common


def test_stages_show_each_stage_with_its_duration_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(common, "err", Console(file=screen, force_terminal=True, width=80))
    with common.stages("train") as advance:
        assert advance is not None
        advance("loading candles")
        advance("comparing with the champion")
    text = screen.getvalue()
    assert "train: loading candles (" in text and " s)" in text
    assert "train: comparing with the champion (" in text


def test_stages_print_nothing_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(common, "err", Console(file=screen, force_terminal=False))
    with common.stages("evaluate") as advance:
        assert advance is None
    with common.progress("backfill", 10) as step:
        assert step is None
    assert screen.getvalue() == ""
