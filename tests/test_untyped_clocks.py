"""Clocks a store holds in a form that is not a timestamp (issue 12, finding 4).

SQLite's DATETIME columns hold anything. A value that is not a timestamp in SQLAlchemy's
ISO text form is never judged expired: it is counted, and `tenure plan`, the run report
and the audit log say "clock unreadable: N". ``clock: {format: epoch_seconds}`` reads
integer seconds instead.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from connectors.protocol import ColumnInfo, EventClock, ExpirySelection
from connectors.records.predicates import clock_mask, unreadable_mask
from connectors.sql.connector import SQLConnector
from connectors.times import TimeContext
from flows import audit
from flows.cli import app
from flows.reports.run import report_markdown
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.state.tables import open_state

runner = CliRunner()
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
CUTOFF_TEXT = "2025-01-01"  # a year before NOW, in any zone a few hours off UTC

#: Each bad value of the finding; all but 'not a date' used to be judged expired.
BAD = [1893456000, "20300101", "01/02/2030", " 2020-01-01", "10000-01-01", "not a date"]
GOOD_EXPIRED = ["2010-01-01 00:00:00.000000", "2010-01-01", "2010-06-01 10:00:00"]
GOOD_KEPT = ["2030-01-01 00:00:00.000000", "2025-12-31"]

POLICY = """\
version: 1
name: untyped
timezone: UTC
categories:
  usage.location: {description: "Country", identifier: quasi}
purposes:
  analytics: {description: A., legal_basis: consent, min_retention: 1 day, max_retention: 2 years}
stores:
  db:
    url: ${DB_URL}
datasets:
  - name: events
    store: db
    table: events
    purpose: analytics
    primary_key: id
    subject_key: customer_id
    columns: {country: usage.location}
    clock: {column: happened_at}
    retention: 1 year
    action: delete
  - name: clicks
    store: db
    table: clicks
    purpose: analytics
    primary_key: id
    subject_key: customer_id
    columns: {country: usage.location}
    clock: {column: happened_at}
    retention: 1 year
    action:
      type: aggregate_then_delete
      min_cell_size: 2
      rollups:
        - {name: by_country, period: year, dimensions: [country], measures: [count]}
"""


def _store(path: Path, values: list[Any], tables: tuple[str, ...] = ("events", "clicks")) -> str:
    with sqlite3.connect(path) as connection:
        for table in tables:
            connection.execute(
                f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, customer_id INTEGER, "
                "country TEXT, happened_at DATETIME)"
            )
            connection.executemany(
                f"INSERT INTO {table} VALUES (?, ?, 'CA', ?)",
                [(i + 1, i % 3, v) for i, v in enumerate(values)],
            )
    return f"sqlite:///{path}"


def _left(path: Path, table: str) -> list[Any]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(f"SELECT happened_at FROM {table} ORDER BY id").fetchall()
    return [row[0] for row in rows]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    path = tmp_path / "untyped.sqlite"
    monkeypatch.setenv("DB_URL", _store(path, [*BAD, *GOOD_EXPIRED, *GOOD_KEPT, None]))
    policy = tmp_path / "untyped.yaml"
    policy.write_text(POLICY)
    return path, policy


def test_plan_counts_unreadable_clocks_and_expires_none_of_them(
    store: tuple[Path, Path],
) -> None:
    _, policy = store
    result = runner.invoke(app, ["plan", str(policy), "--json", "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    rows = {d["dataset"]: d for d in json.loads(result.stdout)["datasets"]}
    for name in ("events", "clicks"):
        assert rows[name]["expired"] == len(GOOD_EXPIRED), rows[name]
        assert rows[name]["clock_unreadable"] == len(BAD), rows[name]
        assert rows[name]["kept"] == len(BAD) + len(GOOD_KEPT) + 1
    table = runner.invoke(app, ["plan", str(policy), "--now", NOW.isoformat()])
    assert table.exit_code == 0, table.output
    assert f"events: clock unreadable: {len(BAD)}" in table.stdout
    assert f"clicks: clock unreadable: {len(BAD)}" in table.stdout


def test_the_run_deletes_and_aggregates_only_readable_expired_clocks(
    store: tuple[Path, Path], tmp_path: Path
) -> None:
    path, policy = store
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    options = RunOptions(now=NOW, state_url=state, coverage_gate=False)
    report = run_policy(policy, options)
    outcomes = {o.dataset: o for o in report.outcomes}
    for name in ("events", "clicks"):
        assert outcomes[name].status == "ok", outcomes[name].error
        assert outcomes[name].processed == len(GOOD_EXPIRED)
        assert outcomes[name].unreadable == len(BAD)
        left = _left(path, name)
        assert [v for v in left if v in BAD or str(v) in map(str, BAD)] == left[: len(BAD)]
        assert len(left) == len(BAD) + len(GOOD_KEPT) + 1, left
    assert f"events: clock unreadable: {len(BAD)}" in report_markdown(report)
    entries = {e["dataset"]: e for e in audit.entries(open_state(state))}
    assert entries["events"]["clock_unreadable"] == len(BAD)
    assert entries["clicks"]["clock_unreadable"] == len(BAD)
    with sqlite3.connect(path) as connection:
        counted = connection.execute("SELECT SUM(n) FROM tenure_agg_clicks_by_country").fetchone()
    assert counted == (len(GOOD_EXPIRED),)


def test_event_clocks_with_an_unreadable_event_never_expire(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    url = _store(path, ["2010-01-01", "not a date", "2010-01-02", None], tables=("events",))
    connector = SQLConnector("db", url)
    try:
        # customer_id i % 3: customer 0 has rows 1 and 4, customer 1 row 2, customer 2 row 3.
        selection = ExpirySelection(
            "events",
            "happened_at",
            NOW,
            event=EventClock("events", "happened_at", "customer_id", "customer_id"),
            primary_key=("id",),
        )
        counts = connector.count_expiry(selection)
        rows = [r[0] for chunk in connector.read_rows(selection, ["id"], 10) for r in chunk]
    finally:
        connector.close()
    assert rows == [3]  # customer 0 has an unfinished event, customer 1 an unreadable one
    assert (counts.expired, counts.unreadable) == (1, 1)


def test_epoch_seconds_reads_integers_and_not_text(tmp_path: Path) -> None:
    old = int(datetime(2010, 1, 1, tzinfo=UTC).timestamp())
    new = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    cutoff = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
    values = [old, new, cutoff, cutoff - 1, "2010-01-01", 1.5, None]
    path = tmp_path / "epoch.sqlite"
    url = _store(path, values, tables=("events",))
    text = POLICY.split("  - name: clicks")[0].replace(
        "clock: {column: happened_at}", "clock: {column: happened_at, format: epoch_seconds}"
    )
    policy = tmp_path / "epoch.yaml"
    policy.write_text(text)
    env = {"DB_URL": url}
    report = run_policy(
        policy,
        RunOptions(now=NOW.replace(year=2026, month=1, day=1, hour=0), coverage_gate=False,
                   state_url=f"sqlite:///{tmp_path / 'state.sqlite'}"),
        environ=env,
    )  # fmt: skip
    (outcome,) = report.outcomes
    assert outcome.status == "ok", outcome.error
    assert (outcome.processed, outcome.unreadable) == (2, 2)  # old and cutoff-1; text, 1.5
    assert _left(path, "events") == [new, cutoff, "2010-01-01", 1.5, None]


def test_epoch_seconds_is_not_for_rollups(tmp_path: Path) -> None:
    text = POLICY.replace("${DB_URL}", "sqlite:///nowhere.sqlite").replace(
        "clock: {column: happened_at}", "clock: {column: happened_at, format: epoch_seconds}"
    )
    policy = tmp_path / "epoch.yaml"
    policy.write_text(text)
    result = runner.invoke(app, ["validate", "--offline", str(policy)])
    assert result.exit_code == 2
    line = POLICY.splitlines().index("  - name: clicks") + 8
    assert f"{policy}:{line}: datasets[1].clock.format: aggregate_then_delete" in result.stderr


# the rule for every value: expired only when canonical and before the cut-off

_CANONICAL = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?: [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?)?"
)


def _reading(stored: Any) -> datetime | None:
    """The independent oracle: the instant a stored value means, or None."""
    if not isinstance(stored, str) or not _CANONICAL.fullmatch(stored):
        return None
    try:
        return datetime.fromisoformat(stored)
    except ValueError:
        return None


def _formats(moment: datetime) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            moment.strftime("%Y-%m-%d"),
            moment.strftime("%Y-%m-%d %H:%M:%S"),
            moment.strftime("%Y-%m-%d %H:%M:%S.%f"),
            moment.strftime("%Y-%m-%dT%H:%M:%S"),
            " " + moment.strftime("%Y-%m-%d"),
            moment.strftime("%Y%m%d"),
            moment.strftime("%m/%d/%Y"),
            moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        ]
    )


_moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31))
_cutoffs = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1))
_clock_values = st.one_of(
    st.none(),
    st.integers(min_value=-(10**13), max_value=10**13),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.text(alphabet="0123456789-: .T/", max_size=27),
    _moments.flatmap(_formats),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(_clock_values, min_size=1, max_size=25),
    cutoff=_cutoffs,
    whole=st.booleans(),
    near=st.integers(min_value=-2, max_value=2),
)
def test_a_row_expires_only_when_its_clock_is_canonical_and_before_the_cutoff(
    values: list[Any], cutoff: datetime, whole: bool, near: int
) -> None:
    if whole:
        cutoff = cutoff.replace(hour=0, minute=0, second=0, microsecond=0)
    # Some values sit on the cut-off itself, in each canonical form.
    edge = cutoff + timedelta(seconds=near)
    values = [*values, edge.strftime("%Y-%m-%d %H:%M:%S"), edge.strftime("%Y-%m-%d")]
    values.append(edge.strftime("%Y-%m-%d %H:%M:%S.%f"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.sqlite"
        url = _store(path, values, tables=("events",))
        with sqlite3.connect(path) as connection:
            stored = dict(connection.execute("SELECT id, happened_at FROM events").fetchall())
        connector = SQLConnector("db", url)
        selection = ExpirySelection(
            "events", "happened_at", cutoff.replace(tzinfo=UTC), primary_key=("id",)
        )
        try:
            counts = connector.count_expiry(selection)
            chosen = {r[0] for chunk in connector.read_rows(selection, ["id"], 100) for r in chunk}
        finally:
            connector.close()
    readings = {key: _reading(value) for key, value in stored.items()}
    expected = {key for key, moment in readings.items() if moment is not None and moment < cutoff}
    unreadable = sum(stored[k] is not None and m is None for k, m in readings.items())
    assert chosen == expected, {k: stored[k] for k in chosen ^ expected}
    assert (counts.expired, counts.unreadable) == (len(expected), unreadable)

    # The pandas path (stores without SQL) agrees on the same stored values.
    frame = pd.DataFrame({"happened_at": pd.Series(list(stored.values()), dtype=object)})
    info = ColumnInfo("happened_at", "datetime", "DATETIME", True)
    times = TimeContext("UTC", "UTC")
    due = clock_mask(frame, selection, info, times)
    keys = list(stored)
    pandas_expired = {keys[i] for i in range(len(keys)) if due[i]}
    # ISO 8601 beyond SQLite's form ('T', offsets, short fractions) is read there too.
    wider = {k for k in pandas_expired - expected if _iso(stored[k]) is not None}
    assert pandas_expired - wider == expected
    assert all(_iso(stored[k]) < cutoff for k in wider)  # type: ignore[operator]
    unread = unreadable_mask(frame, selection, info, times)
    assert int(unread.sum()) == unreadable - sum(
        _iso(v) is not None and _reading(v) is None for v in stored.values()
    )


def _iso(value: Any) -> datetime | None:
    """What the pandas path also reads: ISO 8601 with ``T``, offsets, short fractions."""
    shape = r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    if not isinstance(value, str) or not re.fullmatch(
        shape + r"(?:Z|[+-][0-9]{2}:[0-9]{2})?)?", value
    ):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def test_a_date_column_reads_days_only(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE d (id INTEGER PRIMARY KEY, day DATE)")
        connection.executemany(
            "INSERT INTO d VALUES (?, ?)",
            enumerate(["2010-01-01", "2010-01-01 00:00:00", "2010-02-30", 20100101, None], 1),
        )
    connector = SQLConnector("db", f"sqlite:///{path}")
    try:
        counts = connector.count_expiry(ExpirySelection("d", "day", NOW, primary_key=("id",)))
    finally:
        connector.close()
    assert (counts.expired, counts.unreadable) == (1, 3)
    assert date(2010, 1, 1) < NOW.date()
