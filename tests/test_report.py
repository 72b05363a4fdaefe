"""`tenure report`: the HTML report for the privacy officer and analysts, on the demo after
a nightly run through the Prefect flow (`tenure run`), in French and in English.

Its numbers are checked against hand-written SQL (``tests/support/report_demo.py``): the
per-purpose table against the state database's ledger and audit log, the next twelve
months of one dataset against ``COUNT`` statements on the store. The page is one file
that needs nothing at view time, and names none of the demo's planted people."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time
from itertools import pairwise
from pathlib import Path

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from flows.cli import app
from flows.reports.html import number
from flows.reports.overview import month_ends
from retention_rules.clock import PolicyClock
from retention_rules.loader import load_policy
from tests.support.browser import find_chromium, open_page
from tests.support.demo import DEMO_AS_OF
from tests.support.report_demo import (
    KINDS,
    NOW,
    POLICY,
    DemoCopy,
    demo_copy,
    expiring_by_month,
    html_tables,
    ledger_months,
    planted_values,
    pointed_at,
)

runner = CliRunner()
SECTIONS = ("activity", "forecast", "oversight", "coverage", "risk", "holds", "releases", "audit")
HEADINGS = {
    "fr": (
        "Ce qui a été fait, par finalité et par mois",
        "Ce qui arrive à échéance",
        "Couverture, risque et suspensions légales",
        "Statistiques publiées",
        "Journal d'audit",
    ),
    "en": (
        "What was done, by purpose and month",
        "What expires next",
        "Coverage, risk and legal holds",
        "Released statistics",
        "Audit log",
    ),
}


@dataclass(frozen=True)
class Ran:
    demo: DemoCopy
    planted: list[str]
    run_output: str
    links: list[str]
    """The link artifacts the nightly flow made (key ``retention-html-report``), as
    Prefect keeps them."""


@pytest.fixture(scope="module")
def ran(
    tmp_path_factory: pytest.TempPathFactory,
    demo_sqlite_url: str,
    demo_files_template: Path,
    pseudonym_keys: dict[str, str],
    prefect_api: None,
) -> Iterator[Ran]:
    """The demo after one nightly run of the shipped policy (coverage gate, releases),
    the environment pointing the policy at it for the module's tests."""
    from prefect.client.orchestration import get_client

    demo = demo_copy(tmp_path_factory.mktemp("report"), demo_sqlite_url, demo_files_template)
    planted = planted_values(demo.store_url)
    with pointed_at(demo):
        command = ["run", str(POLICY), "--now", NOW.isoformat(), "--state", demo.state_url]
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
        with get_client(sync_client=True) as client:
            links = [
                str(a.data) for a in client.read_artifacts() if a.key == "retention-html-report"
            ]
        yield Ran(demo, planted, result.output, links)


def _report(ran: Ran, *options: str) -> tuple[Path, str]:
    """Run `tenure report`; the path it printed and the page."""
    command = ["report", str(POLICY), "--state", ran.demo.state_url, "--now", NOW.isoformat()]
    result = runner.invoke(app, [*command, *options])
    assert result.exit_code == 0, (result.output, result.exception)
    path = Path(result.stdout.strip())
    assert path.is_file(), result.stdout
    return path, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def by_the_run(ran: Ran) -> str:
    """The page the nightly run wrote beside the state database (the run's instant,
    the policy's language), read before anything writes there again."""
    written = ran.demo.state.parent / "tenure-report.html"
    assert written.is_file(), "the run writes the report beside the state database"
    return written.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def pages(ran: Ran, by_the_run: str) -> dict[str, str]:
    """The page in each language: the run's (French, the policy's language), and
    `tenure report --lang en` without --out (written to the same place)."""
    path, english = _report(ran, "--lang", "en")
    assert path == ran.demo.state.parent / "tenure-report.html", "printed where it wrote"
    return {"fr": by_the_run, "en": english}


def test_the_nightly_run_writes_the_report_and_links_it_from_its_artifact(
    ran: Ran, by_the_run: str
) -> None:
    written = ran.demo.state.parent / "tenure-report.html"
    # Prefect's Markdown link (the API is the tests' own: other runs' links are there too)
    assert ran.links.count(f"[{written.name}]({written.as_uri()})") == 1
    loaded = load_policy(POLICY).policy
    assert (loaded.language or loaded.requests.language) == "fr"
    assert '<html lang="fr">' in by_the_run


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_section_is_there_in_either_language(pages: dict[str, str], language: str) -> None:
    page = pages[language]
    assert f'<html lang="{language}">' in page
    for section in SECTIONS:
        assert f'id="{section}"' in page, section
    text = html.unescape(page)
    for heading in HEADINGS[language]:
        assert heading in text, heading
    other = "en" if language == "fr" else "fr"
    assert not any(heading in text for heading in HEADINGS[other])
    assert page.count("<svg ") >= 2  # what was done, what expires next: charts
    # One file needing nothing: no script, nothing fetched, a policy forbidding it.
    assert "<script" not in page.lower()
    assert "default-src 'none'" in page
    assert not re.search(r"""(?:src|href)\s*=\s*(?!["']?#)""", page), "a reference out"
    assert not re.search(r"url\((?!#)", page)
    assert not re.search(r"@import|@font-face", page)


def test_the_per_purpose_table_equals_the_ledger(ran: Ran, pages: dict[str, str]) -> None:
    purposes = {d.name: d.purpose for d in load_policy(POLICY).policy.datasets}
    expected = ledger_months(ran.demo.state, purposes)
    assert sum(row["deleted"] for row in expected.values()) > 0, "the run deleted rows"
    assert sum(row["held"] for row in expected.values()) > 0, "the demo's holds kept rows"
    for language, page in pages.items():
        table = html_tables(page)["activity-table"]
        shown = dict(table.by("data-purpose", "data-month"))
        assert shown == {key: dict(counts) for key, counts in expected.items()}, language
        for _, cells in table.rows:  # the text shown is the number, written for the language
            for attributes, text in cells:
                if "data-value" in attributes:
                    assert re.sub(r"\D", "", text) == attributes["data-value"]
        assert set(KINDS) == {k for counts in shown.values() for k in counts}


def test_the_next_twelve_months_equal_counts_in_the_store(ran: Ran, pages: dict[str, str]) -> None:
    """`login_events` (a year after each login, no hold, nothing refers to it)."""
    a_year = relativedelta(years=1)
    expected = expiring_by_month(ran.demo.store, "login_events", "occurred_at", a_year)
    assert len(expected) == 12 and next(iter(expected)) == NOW.strftime("%Y-%m")
    assert sum(expected.values()) > 0
    for language, page in pages.items():
        rows = dict(html_tables(page)["forecast-table"].by("data-dataset"))
        shown = rows[("login_events",)]
        months = {m: n for m, n in shown.items() if re.fullmatch(r"\d{4}-\d\d", m)}
        assert months == expected, language
        assert rows[("login_events",)]["overdue"] == 0  # the run took them
        assert rows[("login_events",)]["total"] == sum(expected.values())


def test_held_rows_are_not_expiring_until_their_hold_lapses(pages: dict[str, str]) -> None:
    """The demo's tax-audit holds keep 2020's invoices and payments until 31 March 2027:
    held now, they are counted in March 2027, when the holds lapse (the dispute's rows,
    held until 30 June, in June)."""
    tables = html_tables(pages["en"])
    holds = dict(tables["holds-table"].by("data-hold"))
    assert holds[("revenu_quebec_audit_2020",)]["held"] > 0
    rows = dict(tables["forecast-table"].by("data-dataset"))
    for dataset in ("invoices", "payments"):
        counts = rows[(dataset,)]
        months = {m: n for m, n in counts.items() if re.fullmatch(r"\d{4}-\d\d", m)}
        assert counts["held"] > 0 and counts["overdue"] == 0
        assert months["2027-03"] == max(months.values()), months
        assert months["2027-03"] > months["2027-02"] + months["2027-04"], months
        assert counts["total"] >= counts["held"]  # every hold lapses within the year


def test_no_personal_value_of_the_planted_people_is_in_the_report(
    ran: Ran, pages: dict[str, str]
) -> None:
    assert len(ran.planted) >= 10, ran.planted
    written = (ran.demo.state.parent / "tenure-report.html").read_text(encoding="utf-8")
    for name, page in {**pages, "written by the run": written}.items():
        folded = page.casefold()
        found = [value for value in ran.planted if value.casefold() in folded]
        assert not found, (name, found)


def test_a_bad_language_or_a_missing_state_database_is_one_line_and_writes_nothing(
    ran: Ran, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    base = ["report", str(POLICY), "--out", str(out)]
    result = runner.invoke(app, [*base, "--state", ran.demo.state_url, "--lang", "de"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --lang: expected fr or en, not 'de'"
    missing = f"sqlite:///{tmp_path / 'none.sqlite'}"
    result = runner.invoke(app, [*base, "--state", missing])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: --state: no state database at {missing}"]
    assert not out.exists() and not (tmp_path / "none.sqlite").exists()
    assert DEMO_AS_OF.year == 2026  # the months above are the demo's


def test_a_store_that_cannot_be_read_leaves_out_its_own_counts_saying_why(
    ran: Ran, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENURE_WEBLOGS_URL", f"files:///{tmp_path / 'gone'}")
    _, page = _report(ran, "--lang", "en", "--out", str(tmp_path / "report.html"))
    rows = {attributes["data-dataset"]: cells for attributes, cells in _forecast_rows(page)}
    ((_, reason),) = rows["web_access_log"]
    assert reason.startswith("not computed: store 'weblogs'"), reason
    assert len(rows["login_events"]) == 12 + 3  # the others are counted


def _forecast_rows(page: str) -> list[tuple[dict[str, str], list[tuple[dict[str, str], str]]]]:
    return [(row, cells[1:]) for row, cells in html_tables(page)["forecast-table"].rows]


@given(st.integers(min_value=0, max_value=10**15), st.sampled_from(["fr", "en"]))
def test_a_count_is_written_for_its_language_and_reads_back(value: int, language: str) -> None:
    shown = number(value, "fr" if language == "fr" else "en")
    assert re.sub(r"\D", "", shown) == str(value)
    separator = "," if language == "en" else "\u202f"
    assert shown.count(separator) == (len(str(value)) - 1) // 3


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 12, 31)))
def test_the_twelve_months_follow_each_other_from_the_current_one(moment: datetime) -> None:
    clock = PolicyClock.at("America/Montreal", moment)
    ends = month_ends(clock)
    assert len(ends) == 12
    today = clock.today()
    assert ends[0].date() == (today.replace(day=1) + relativedelta(months=1))
    for before, after in pairwise(ends):
        assert after == before + relativedelta(months=1)
        assert after.day == 1 and after.time() == time()


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


@pytest.mark.servers  # starts a browser
def test_the_report_renders_offline_with_its_charts_and_the_ledgers_numbers(
    ran: Ran, pages: dict[str, str], tmp_path: Path
) -> None:
    """The page as the privacy officer's browser shows it, opened from disk in a real
    headless Chromium with every network path closed, driven over the DevTools protocol
    (``tests/support/browser.py``): no console error, no request but the page itself,
    every chart drawn with marks, the per-purpose table as shown equal to the ledger
    (hand-written SQL). A screenshot of the whole page is saved in ``tmp_path``."""
    find_chromium()  # skips, saying why, when there is no browser
    page = ran.demo.state.parent / "tenure-report.html"
    assert page.read_text(encoding="utf-8") == pages["en"]
    screenshot = tmp_path / "report-en.png"

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
    assert visit.values["language"] == "en"
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
    assert shown == ledger_months(ran.demo.state, purposes)
    assert screenshot.stat().st_size > 10_000  # a page was drawn, not a blank
