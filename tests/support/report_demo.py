"""The demo after a nightly run, for the HTML report's tests (``tenure report``), and an
oracle of what its tables must say: hand-written SQL on the state database and the
store, sharing no code with the report.

The report's rules the oracle restates: rows deleted, anonymized and aggregated are the
ledger's committed chunks of real runs, by the month (policy time zone) each run started
and the purpose of the chunk's dataset (a request's own writes, labels with ``~``, left
out); held rows are, per dataset and month, the most any run's audit entry counted,
summed per purpose. Rows expiring in a month are those past the cut-off at its end
(midnight on the next month's first day) less those past it at the end of the month
before (now, for the first).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import make_url

from tests.support.demo import DEMO_AS_OF, demo_files_environ
from tests.support.paths import SHIPPED_POLICY
from tests.support.planted import (
    DISPUTE_PARTIES,
    MARKETING_EMAIL,
    MARKETING_VISITOR_ID,
    closed_account_customer,
    customer_identifiers,
)

POLICY = SHIPPED_POLICY
ZONE = ZoneInfo("America/Montreal")
#: ``--now``: the demo's instant, as a naive wall time in the policy's zone.
NOW = DEMO_AS_OF.astimezone(ZONE).replace(tzinfo=None)
KINDS = ("deleted", "anonymized", "aggregated", "held")
_COUNTERS = {"delete": "deleted", "anonymize": "anonymized", "aggregate_then_delete": "aggregated"}


@dataclass(frozen=True)
class DemoCopy:
    """A test's own copy of the demo store and files, and where its state database goes."""

    root: Path
    store: Path
    state: Path
    environ: dict[str, str]

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.store}"

    @property
    def state_url(self) -> str:
        return f"sqlite:///{self.state}"


@contextmanager
def pointed_at(copy: DemoCopy) -> Iterator[pytest.MonkeyPatch]:
    """The environment pointing the shipped policy at ``copy`` (and no state database
    but the one a command names), for a module's tests."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in copy.environ.items():
            env.setenv(name, value)
        env.delenv("TENURE_STATE_URL", raising=False)
        yield env


def demo_copy(root: Path, demo_sqlite_url: str, files_template: Path) -> DemoCopy:
    """Copy the shared demo store and files under ``root`` (a run changes them)."""
    store = root / "store" / "crm.sqlite"
    store.parent.mkdir(parents=True)
    shutil.copyfile(make_url(demo_sqlite_url).database or "", store)
    shutil.copytree(files_template, root / "files")
    (root / "state").mkdir()
    environ = {"TENURE_CRM_URL": f"sqlite:///{store}", **demo_files_environ(root / "files")}
    return DemoCopy(root, store, root / "state" / "tenure-state.sqlite", environ)


def _rows(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def _month(text: object) -> str:
    moment = datetime.fromisoformat(str(text))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(ZONE).strftime("%Y-%m")


def ledger_months(state: Path, purposes: dict[str, str]) -> dict[tuple[str, str], dict[str, int]]:
    """Per (purpose, month): the rows of each kind, from the state database's tables."""
    totals: dict[tuple[str, str], dict[str, int]] = {}
    for started, dataset, action, rows in _rows(
        state,
        "SELECT r.started_at, c.dataset, c.action, SUM(c.rows) FROM tenure_chunks c "
        "JOIN tenure_runs r ON r.run_id = c.run_id WHERE NOT r.dry_run "
        "GROUP BY r.run_id, r.started_at, c.dataset, c.action",
    ):
        if "~" in str(dataset):
            continue
        key = (purposes[str(dataset)], _month(started))
        totals.setdefault(key, dict.fromkeys(KINDS, 0))[_COUNTERS[str(action)]] += int(str(rows))
    held: dict[tuple[str, str], int] = {}
    for started, entry in _rows(
        state,
        "SELECT r.started_at, a.entry FROM tenure_audit a JOIN tenure_runs r "
        "ON r.run_id = json_extract(a.entry, '$.run_id') WHERE NOT r.dry_run",
    ):
        fields = json.loads(str(entry))
        if "dataset" in fields and isinstance(fields.get("held"), int):
            key = (str(fields["dataset"]), _month(started))
            held[key] = max(held.get(key, 0), fields["held"])
    for (dataset, month), count in held.items():
        if count:
            key = (purposes[dataset], month)
            totals.setdefault(key, dict.fromkeys(KINDS, 0))["held"] += count
    return totals


def month_ends(months: int = 12) -> list[datetime]:
    """Midnight (policy zone) on the first day after each of the next ``months`` months,
    from ``NOW``'s month."""
    first = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return [first + relativedelta(months=m + 1) for m in range(months)]


def expiring_by_month(
    store: Path, table: str, clock: str, retention: relativedelta
) -> dict[str, int]:
    """A table without holds or references: its rows reaching ``now - retention`` in each
    month, counted with one hand-written ``COUNT`` per instant (clocks are naive UTC text)."""

    def past(wall: datetime) -> int:
        cutoff = (wall - retention).replace(tzinfo=ZONE).astimezone(UTC).replace(tzinfo=None)
        text = cutoff.strftime("%Y-%m-%d %H:%M:%S.%f")
        ((count,),) = _rows(store, f"SELECT COUNT(*) FROM {table} WHERE {clock} < ?", text)
        return int(str(count))

    instants = [NOW, *month_ends()]
    selected = [past(moment) for moment in instants]
    months = [(end - relativedelta(months=1)).strftime("%Y-%m") for end in instants[1:]]
    return {m: b - a for m, (a, b) in zip(months, pairwise(selected), strict=True)}


def planted_values(store_url: str) -> list[str]:
    """What names the demo's planted people (docs/demo.md): the closed-account customer,
    the two parties of the legal hold, the marketing-only visitor. Read before a run."""
    ids = [*DISPUTE_PARTIES]
    closed = closed_account_customer(store_url, DEMO_AS_OF)
    if closed is not None:
        ids.append(closed)
    values = [MARKETING_EMAIL, MARKETING_VISITOR_ID]
    store = Path(make_url(store_url).database or "")
    for customer in ids:
        found = customer_identifiers(store_url, customer)
        values += [*found.emails, *found.phones, *found.visitor_ids]
        ((first, last, street, postal),) = _rows(
            store,
            "SELECT first_name, last_name, street_address, postal_code FROM customers WHERE id = ?",
            customer,
        )
        values += [f"{first} {last}", str(street), str(postal)]
    return [value for value in values if value and value != "None"]


@dataclass
class HtmlTable:
    """One table of a page: each body row's attributes and its cells' (attributes, text)."""

    rows: list[tuple[dict[str, str], list[tuple[dict[str, str], str]]]]

    def by(self, *attributes: str) -> Iterator[tuple[tuple[str, ...], dict[str, int]]]:
        """Each row's key (the values of ``attributes``) and its numeric cells by their
        ``data-kind`` or ``data-month``."""
        for row, cells in self.rows:
            numbers = {
                cell.get("data-kind") or cell.get("data-month") or "": int(cell["data-value"])
                for cell, _ in cells
                if "data-value" in cell
            }
            yield tuple(row[a] for a in attributes), numbers


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, HtmlTable] = {}
        self._table: HtmlTable | None = None
        self._in_body = False
        self._cell: tuple[dict[str, str], list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = {name: value or "" for name, value in attrs}
        if tag == "table" and "id" in given:
            self._table = self.tables[given["id"]] = HtmlTable([])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._table is not None and self._in_body:
            self._table.rows.append((given, []))
        elif tag in ("td", "th") and self._table is not None and self._in_body:
            self._cell = (given, [])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            attributes, text = self._cell
            self._table.rows[-1][1].append((attributes, "".join(text).strip()))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[1].append(data)


def html_tables(page: str) -> dict[str, HtmlTable]:
    """Every table of the page that has an id, by id."""
    parser = _Tables()
    parser.feed(page)
    parser.close()
    return parser.tables
