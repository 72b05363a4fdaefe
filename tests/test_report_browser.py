"""The HTML report as the privacy officer's browser shows it: written by `tenure report` on
the demo after a nightly run, opened from disk in a real headless Chromium with every
network path closed, driven over the DevTools protocol (``tests/support/browser.py``).

The page loads with no console error and asks for nothing but itself, every chart has
rendered marks, and the numbers the browser shows in the per-purpose table are the
ledger's (hand-written SQL). A screenshot of the whole page is saved in the test's
temporary folder. Skipped, saying why, when Chromium is not installed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from retention_rules.loader import load_policy
from tests.support.browser import find_chromium, open_page
from tests.support.demo import DEMO_AS_OF
from tests.support.report_demo import (
    NOW,
    POLICY,
    DemoCopy,
    demo_copy,
    ledger_months,
    pointed_at,
)

pytestmark = pytest.mark.servers  # starts a browser
runner = CliRunner()

#: Per chart (each ``figure svg``): its drawn size and how many of its marks (bars) have
#: an area once laid out.
CHARTS = """
Array.from(document.querySelectorAll('figure svg')).map(svg => {
  const box = svg.getBoundingClientRect();
  const marks = Array.from(svg.querySelectorAll('.role-mark path, .role-mark rect'))
    .filter(mark => { const b = mark.getBBox(); return b.width > 0 && b.height > 0; });
  return {width: box.width, height: box.height, marks: marks.length};
})
"""
#: The per-purpose table as the browser renders it: purpose, month, then each cell's
#: kind and the text shown.
ACTIVITY = """
Array.from(document.querySelectorAll('#activity-table tbody tr')).map(tr => [
  tr.cells[0].innerText, tr.cells[1].innerText,
  Array.from(tr.querySelectorAll('td[data-kind]')).map(td => [td.dataset.kind, td.innerText])
])
"""


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
    demo_sqlite_url: str,
    demo_files_template: Path,
    pseudonym_keys: dict[str, str],
) -> Iterator[DemoCopy]:
    """The demo after one nightly run (the engine the flow runs; no coverage scan), the
    environment pointing the shipped policy at it."""
    find_chromium()  # skip before the run when there is no browser
    copy = demo_copy(tmp_path_factory.mktemp("browser"), demo_sqlite_url, demo_files_template)
    with pointed_at(copy):
        options = RunOptions(now=DEMO_AS_OF, state_url=copy.state_url, coverage_gate=False)
        report = run_policy(POLICY, options, environ=copy.environ)
        assert not report.failed, [(o.dataset, o.error) for o in report.outcomes if o.error]
        yield copy


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_report_renders_offline_with_its_charts_and_the_ledgers_numbers(
    demo: DemoCopy, tmp_path: Path, language: str
) -> None:
    page = tmp_path / "report.html"
    command = ["report", str(POLICY), "--state", demo.state_url, "--now", NOW.isoformat()]
    result = runner.invoke(app, [*command, "--lang", language, "--out", str(page)])
    assert result.exit_code == 0, result.output
    screenshot = tmp_path / f"report-{language}.png"

    visit = open_page(
        page,
        tmp_path / "profile",
        evaluate={
            "charts": CHARTS,
            "activity": ACTIVITY,
            "language": "document.documentElement.lang",
        },
        screenshot=screenshot,
    )

    assert visit.errors == []
    assert visit.requests == [page.as_uri()], "the page asked for something beside itself"
    assert visit.values["language"] == language
    charts = visit.values["charts"]
    assert len(charts) >= 2, charts  # what was done, what expires next (and the releases)
    for chart in charts:
        assert chart["width"] > 100 and chart["height"] > 100, chart
        assert chart["marks"] > 0, chart
    purposes = {d.name: d.purpose for d in load_policy(POLICY).policy.datasets}
    shown = {
        (purpose, month): {kind: int(re.sub(r"\D", "", text)) for kind, text in cells}
        for purpose, month, cells in visit.values["activity"]
    }
    assert shown == ledger_months(demo.state, purposes)
    assert screenshot.stat().st_size > 10_000  # a page was drawn, not a blank
