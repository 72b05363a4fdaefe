"""`bench/requests_vs_sql.py` at its smallest size (``--quick``): it comes to its
comparisons, prints its ratio lines, shows what a missing index does, and its EXPLAIN
check (no bound CRM table read whole during one person's access) passes. Never a
timing: the ratios are measured in the same run and only asserted to be printed."""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.bench, pytest.mark.servers]


@dataclass(frozen=True)
class Ran:
    printed: str
    stopped: str | None
    """The ``verification failed: ...`` the script stopped with, if any."""
    results: Path


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    from bench import requests_vs_sql

    results = tmp_path_factory.mktemp("bench") / "requests.json"
    out = io.StringIO()
    stopped = None
    with contextlib.redirect_stdout(out):
        try:
            requests_vs_sql.main(["--quick", "--json", str(results)])
        except SystemExit as exc:
            stopped = str(exc.code)
    return Ran(out.getvalue(), stopped, results)


def test_prints_both_comparisons_and_the_missing_index(ran: Ran) -> None:
    for label in ("read path, CRM, without redaction", "whole fulfil, CRM", "erase, CRM"):
        row = rf"\| {re.escape(label)} \| [\d.]+ \| \d+% \| [\d.]+x \| ≤ 2x"
        assert re.search(row, ran.printed), (label, ran.printed[-3000:])
    assert "without ix_web_clicks_visitor_id" in ran.printed
    assert re.search(r"read whole: web_clicks, by SELECT", ran.printed)
    assert "no index of web_clicks begins with visitor_id" in ran.printed
    assert ran.stopped is None, ran.stopped


def test_explain_check_passes(ran: Ran) -> None:
    assert ran.stopped is None, ran.stopped
    assert "EXPLAIN check passed" in ran.printed
    document: dict[str, Any] = json.loads(ran.results.read_text())
    figures = document["figures"]
    assert document["parameters"]["smoke"] is True
    assert figures["read_whole"]["with the demo's indexes"] == []
    assert set(figures["ratios"]) == {"access", "erasure"}
