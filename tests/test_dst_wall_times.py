"""Naive wall times in a zone with daylight saving time, and one binding's defect.

A naive timestamp in the hour the clocks repeat (``2025-11-02 01:47:24`` in Montreal)
crashed the rollup bucketing (``Cannot infer dst time``). The rule every reading of a
naive wall time now follows (`connectors.times.wall_instants`): a repeated wall time is
its second occurrence, after the clocks went back (standard time, as PostgreSQL reads
it); a skipped one is the instant the clocks jumped (the end of the gap). Rollup
buckets, expiry cut-offs, legal holds' values and ``generalize`` all read naive wall
times that way, in pandas and in SQL alike.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.dialects import mysql
from typer.testing import CliRunner

import connectors.rollups as rollups
import flows.nightly as nightly
from anonymizers.generalize import truncate_date, truncate_datetime64
from connectors.protocol import ChunkWork, ColumnInfo, ConnectorOptions, ExpirySelection, RollupSink
from connectors.rollups import period_starts
from connectors.sketches import PeopleKey
from connectors.sql.connector import SQLConnector
from connectors.times import TimeContext, wall_bound, wall_instant, wall_instants
from flows import audit
from flows.cli import app
from flows.run.lifecycle import process_dataset, run_policy
from flows.run.types import RunOptions
from flows.state.tables import open_state
from retention_rules.clock import PolicyClock
from tests.support.pg_server import PostgresServer

MONTREAL = "America/Montreal"
NOW = datetime(2027, 1, 1, 12, tzinfo=UTC)

#: (wall time as the application wrote it, the day it counts for in Regina, UTC-6)
REPEATED = [
    ("2025-11-02 00:59:59", date(2025, 11, 1)),  # 04:59:59 UTC, before the repeated hour
    ("2025-11-02 01:00:00", date(2025, 11, 2)),  # second occurrence: 06:00 UTC
    ("2025-11-02 01:47:24", date(2025, 11, 2)),  # the value of the report: 06:47:24 UTC
    ("2025-11-02 01:59:59.999999", date(2025, 11, 2)),
    ("2025-11-02 02:00:00", date(2025, 11, 2)),  # 07:00 UTC
]
SKIPPED = [
    ("2025-03-09 01:59:59", date(2025, 3, 9)),  # 06:59:59 UTC
    ("2025-03-09 02:00:00", date(2025, 3, 9)),  # no such wall time: 07:00 UTC
    ("2025-03-09 02:30:00", date(2025, 3, 9)),
    ("2025-03-09 03:00:00", date(2025, 3, 9)),  # 07:00 UTC
]

POLICY = """\
version: 1
name: dst
timezone: America/Regina
categories:
  usage.location: {description: Country, identifier: quasi}
  usage.ip_address: {description: IP, identifier: direct}
purposes:
  analytics: {description: A., legal_basis: consent, min_retention: 1 day, max_retention: 2 years}
stores:
  shop: {url: "sqlite:///%(db)s", naive_timezone: America/Montreal}
datasets:
  - name: visits
    store: shop
    table: visits
    purpose: analytics
    primary_key: id
    subject_key: customer_id
    columns: {country: usage.location}
    clock: {column: seen_at}
    retention: 1 year
    action:
      type: aggregate_then_delete
      min_cell_size: 2
      rollups:
        - {name: daily, period: day, dimensions: [country], measures: [count]}
  - name: logins
    store: shop
    table: logins
    purpose: analytics
    primary_key: id
    subject_key: customer_id
    columns: {ip_address: usage.ip_address}
    clock: {column: occurred_at}
    retention: 1 year
    action: delete
"""


def _shop(tmp_path: Path, walls: list[str]) -> tuple[Path, str]:
    db = tmp_path / "shop.sqlite"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as connection:
        connection.execute(
            text(
                "create table visits (id integer primary key, customer_id integer,"
                " country varchar(2), seen_at datetime)"
            )
        )
        connection.execute(
            text(
                "create table logins (id integer primary key, customer_id integer,"
                " ip_address varchar(45), occurred_at datetime)"
            )
        )
        for i, wall in enumerate(walls):
            connection.execute(
                text("insert into visits values (:i, :i, 'CA', :at)"), {"i": i, "at": wall}
            )
        for i in range(3):
            connection.execute(
                text("insert into logins values (:i, 7, '10.0.0.1', '2024-05-01 10:00:00')"),
                {"i": i},
            )
    engine.dispose()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY % {"db": db})
    return policy, f"sqlite:///{db}"


def test_a_rollup_over_repeated_and_skipped_wall_times_runs_and_buckets_by_the_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENURE_AUDIT_KEY", "test-audit-key-0123456789abcdef")
    cases = REPEATED + SKIPPED
    policy, url = _shop(tmp_path, [wall for wall, _ in cases])
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    report = run_policy(policy, RunOptions(now=NOW, state_url=state, coverage_gate=False))
    outcomes = {o.dataset: o for o in report.outcomes}
    assert outcomes["visits"].error is None  # was: unexpected ValueError: Cannot infer dst time
    assert outcomes["visits"].processed == len(cases)
    assert outcomes["logins"].error is None and outcomes["logins"].processed == 3
    assert not report.failed
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("select count(*) from visits")).scalar_one() == 0
        cells = connection.execute(
            text("select period_start, sum(n) from tenure_agg_visits_daily group by 1")
        ).all()
    expected: dict[date, int] = {}
    for _, day in cases:
        expected[day] = expected.get(day, 0) + 1
    assert {date.fromisoformat(str(day)[:10]): n for day, n in cells} == expected
    audited = {e["dataset"]: e for e in audit.entries(open_state(state))}
    assert audited["visits"]["status"] == "ok"


# The rule itself, on the changes of offset of several zones. The expected instants of
# repeated wall times are PostgreSQL's (``SELECT timezone('UTC', timezone(zone, wall))``).
KNOWN = [
    # repeated: the second occurrence
    ("America/Montreal", "2025-11-02 01:47:24", "2025-11-02 06:47:24"),
    ("Europe/Moscow", "2014-10-26 01:30:00", "2014-10-25 22:30:00"),  # +04 to +03, no DST
    ("Australia/Lord_Howe", "2025-04-06 01:45:00", "2025-04-05 15:15:00"),  # half an hour
    # skipped: the instant of the change
    ("America/Montreal", "2025-03-09 02:30:00", "2025-03-09 07:00:00"),
    ("Australia/Lord_Howe", "2025-10-05 02:15:00", "2025-10-04 15:30:00"),
    ("America/Santiago", "2025-09-07 00:30:00", "2025-09-07 04:00:00"),  # midnight skipped
    ("Pacific/Apia", "2011-12-30 12:00:00", "2011-12-30 10:00:00"),  # a whole day skipped
    # ordinary
    ("America/Montreal", "2025-11-02 00:59:59", "2025-11-02 04:59:59"),
    ("America/Montreal", "2025-03-09 03:00:00", "2025-03-09 07:00:00"),
]


@pytest.mark.parametrize(("zone", "wall", "utc"), KNOWN)
def test_a_wall_time_is_read_by_the_one_rule(zone: str, wall: str, utc: str) -> None:
    expected = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    # In UTC: an aware value in a repeated hour never equals one of another zone.
    assert wall_instant(datetime.fromisoformat(wall), ZoneInfo(zone)).astimezone(UTC) == expected
    (vectorized,) = wall_instants(pd.Series(pd.to_datetime([wall])), ZoneInfo(zone))
    assert vectorized.tz_convert(UTC) == expected


#: Where each zone's offset changes (wall time just before the change), for drawing
#: wall times and cut-offs around them.
CHANGES = {
    "America/Montreal": ["2025-03-09 02:00", "2025-11-02 01:00"],
    "Europe/Paris": ["2025-03-30 02:00", "2025-10-26 02:00"],
    "Australia/Lord_Howe": ["2025-04-06 01:30", "2025-10-05 02:00"],
    "America/Santiago": ["2025-04-05 23:00", "2025-09-07 00:00"],
    "America/Havana": ["2025-03-09 00:00", "2025-11-02 00:00"],
    "Europe/Moscow": ["2014-10-26 01:00"],
    "Pacific/Apia": ["2011-12-30 00:00"],
}
#: Period zones whose midnight falls between the readings of some of those wall times.
PERIOD_ZONES = ["UTC", "America/Regina", "America/Phoenix", "Asia/Kolkata", "Europe/Paris"]


@st.composite
def around_a_change(draw: st.DrawFn) -> tuple[str, list[datetime], datetime]:
    """A zone, wall times within three hours of its changes of offset (whole seconds or
    not), and a cut-off instant as near."""
    zone = draw(st.sampled_from(sorted(CHANGES)))
    anchors = [datetime.fromisoformat(a) for a in CHANGES[zone]]
    near = st.builds(
        lambda anchor, seconds, micro: anchor + timedelta(seconds=seconds, microseconds=micro),
        st.sampled_from(anchors),
        st.integers(-3 * 3600, 3 * 3600),
        st.sampled_from([0, 0, 0, 1, 999_999]),
    )
    walls = draw(st.lists(near, min_size=1, max_size=8))
    cutoff_wall = draw(near)
    shift = draw(st.sampled_from([timedelta(0), timedelta(hours=-1), timedelta(hours=1)]))
    cutoff = (cutoff_wall.replace(tzinfo=ZoneInfo(zone)) + shift).astimezone(UTC)
    if draw(st.booleans()):  # exactly a reading of a wall time, the gap's end among them
        cutoff = wall_instant(draw(st.sampled_from(walls)), ZoneInfo(zone)).astimezone(UTC)
    return zone, walls, cutoff


def _readings(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    return [wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    return wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


@settings(max_examples=300, deadline=None)
@given(case=around_a_change())
def test_the_rule_is_the_latest_reading_or_the_end_of_the_gap_and_keeps_order(
    case: tuple[str, list[datetime], datetime],
) -> None:
    name, walls, cutoff = case
    zone = ZoneInfo(name)
    walls = sorted(walls)
    instants = [wall_instant(w, zone).astimezone(UTC) for w in walls]
    vectorized = wall_instants(pd.Series(pd.to_datetime(walls)), zone).dt.tz_convert(UTC)
    assert [pd.Timestamp(i) for i in instants] == list(vectorized)
    assert instants == sorted(instants)  # a later wall time is never an earlier instant
    bound = wall_bound(cutoff, zone)
    for wall, instant in zip(walls, instants, strict=True):
        if _exists(wall, zone):  # read back as written, the later of two occurrences
            assert instant.astimezone(zone).replace(tzinfo=None) == wall
            assert instant == max(_readings(wall, zone))
        else:  # the change itself: just before it, the wall time is earlier than this one
            assert min(_readings(wall, zone)) < instant <= max(_readings(wall, zone))
            before = (instant - timedelta(microseconds=1)).astimezone(zone)
            assert before.replace(tzinfo=None) < wall
        # The cut-off bound a naive column is compared with says what the rule says.
        assert (wall < bound) == (instant < cutoff)


def test_policy_instants_in_a_repeated_hour_follow_the_rule() -> None:
    clock = PolicyClock.at(MONTREAL, datetime(2026, 11, 1, 1, 30))  # repeated in 2026
    assert clock.now.utcoffset() == timedelta(hours=-5)
    from retention_rules.durations import Duration

    cutoff = clock.cutoff(Duration.parse("1 year"))  # 2025-11-01 01:30: nothing odd
    assert cutoff.astimezone(UTC) == datetime(2025, 11, 1, 5, 30, tzinfo=UTC)
    later = PolicyClock.at(MONTREAL, datetime(2026, 11, 2, 1, 30))
    assert later.cutoff(Duration.parse("1 year")).astimezone(UTC) == datetime(
        2025, 11, 2, 6, 30, tzinfo=UTC
    )  # 2025-11-02 01:30, repeated: its second occurrence


def test_a_holds_wall_time_in_the_stores_own_zone_is_compared_as_written() -> None:
    clock = ColumnInfo("at", "datetime", "DATETIME", True, False)
    same = TimeContext(MONTREAL, MONTREAL)
    for wall in ("2025-03-09T02:30", "2025-11-02T01:30", "2025-06-01T12:00"):
        assert same.bind_value(clock, wall) == datetime.fromisoformat(wall)
    other = TimeContext("UTC", MONTREAL)  # another zone: through the rule's instant
    assert other.bind_value(clock, "2025-11-02T01:30") == datetime(2025, 11, 2, 6, 30)
    assert other.bind_value(clock, "2025-03-09T02:30") == datetime(2025, 3, 9, 7, 0)


def test_generalize_reads_a_repeated_or_skipped_midnight_by_the_rule() -> None:
    santiago, havana = ZoneInfo("America/Santiago"), ZoneInfo("America/Havana")
    skipped = datetime(2025, 9, 7, 13, tzinfo=santiago)  # 00:00 to 01:00 skipped
    repeated = datetime(2025, 11, 2, 13, tzinfo=havana)  # 00:00 to 01:00 repeated
    for value in (skipped, repeated):
        one = truncate_date(value, "day")
        (vectorized,) = truncate_datetime64(pd.Series([pd.Timestamp(value)]), "day")
        (timestamp,) = [truncate_date(pd.Timestamp(value), "day")]
        zone = value.tzinfo
        assert isinstance(zone, ZoneInfo)
        expected = wall_instant(value.replace(tzinfo=None, hour=0), zone)
        offset = timedelta(hours=-3 if zone is santiago else -5)
        assert expected.astimezone(zone).utcoffset() == offset
        for result in (one, vectorized, timestamp):
            assert isinstance(result, datetime)
            assert result.tzinfo == zone and result.utcoffset() == expected.utcoffset()
            assert result.astimezone(UTC) == expected.astimezone(UTC)


# Each store: the SQL expiry test and the rollup buckets (PostgreSQL's in the database)
# against the rule.


def _stamps_table() -> sa.Table:
    return sa.Table(
        "stamps",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")),
    )


def _store_agrees_with_pandas(
    url: str,
    zone: str,
    period_zone: str,
    walls: list[datetime],
    cutoff: datetime,
    people: bool = False,
) -> None:
    """The store counts as expired exactly the wall times the rule reads before the
    cut-off, and a run of one-row chunks puts each in the bucket pandas does (with
    ``people``, a rollup that counts people: its rows travel to pandas, and PostgreSQL
    sends their period starts instead of their clocks)."""
    table = _stamps_table()
    engine = create_engine(url)
    with engine.begin() as connection:  # the last example's table and bookkeeping go
        existing = sa.MetaData()
        existing.reflect(connection)
        existing.drop_all(connection)
        table.create(connection)
        connection.execute(
            sa.insert(table), [{"id": i, "at": w} for i, w in enumerate(walls, start=1)]
        )
    engine.dispose()
    expired = [w for w in walls if wall_instant(w, ZoneInfo(zone)) < cutoff]
    connector = SQLConnector("s", url, ConnectorOptions(naive_timezone=zone, read_only=False))
    try:
        selection = ExpirySelection("stamps", "at", cutoff, primary_key=("id",))
        assert connector.count_expiry(selection).expired == len(expired)
        end = datetime(9000, 1, 1, tzinfo=UTC)
        everything = ExpirySelection("stamps", "at", end, primary_key=("id",))
        sink = RollupSink("daily", "day", (), min_cell_size=1)
        if people:
            sink = replace(sink, subject="id", people_key=PeopleKey.from_secret(b"dst test"))
        after = None
        for chunk_no in range(1, len(walls) + 2):
            work = ChunkWork(
                "run", "stamps", chunk_no, everything, after, 1, "aggregate_then_delete",
                period_zone=period_zone, rollups=(sink,),
            )  # fmt: skip
            result = connector.execute_chunk(work)
            if result.last is None:
                break
            after = result.last
        cells = {c.period_start: c.count for c in connector.rollup_cells("stamps", sink)}
    finally:
        connector.close()
    starts = period_starts(
        pd.Series(pd.to_datetime(walls)), "day", ZoneInfo(period_zone), ZoneInfo(zone)
    )
    assert cells == {day: n for day, n in starts.value_counts().items()}


walls_and_zones = st.tuples(around_a_change(), st.sampled_from(PERIOD_ZONES))


@settings(max_examples=60, deadline=None)
@given(case=walls_and_zones)
def test_sqlite_expires_and_buckets_every_wall_time_as_pandas_does(
    case: tuple[tuple[str, list[datetime], datetime], str], tmp_path_factory: Any
) -> None:
    (zone, walls, cutoff), period_zone = case
    url = f"sqlite:///{tmp_path_factory.mktemp('dst') / 'stamps.sqlite'}"
    _store_agrees_with_pandas(url, zone, period_zone, walls, cutoff)


@pytest.fixture(scope="module")
def pg_dst_url(pg_server: PostgresServer) -> str:
    return pg_server.fresh_database("dst")


@pytest.fixture(scope="module")
def mariadb_dst_url(mariadb_server: Any) -> str:
    url: str = mariadb_server.create_database("dst_wall_times")
    return url


@pytest.mark.postgres
@settings(max_examples=40, deadline=None)
@given(case=walls_and_zones, people=st.booleans())
def test_postgres_buckets_in_the_database_as_pandas_does(
    case: tuple[tuple[str, list[datetime], datetime], str], people: bool, pg_dst_url: str
) -> None:
    """PostgreSQL reads a repeated wall time as the rule does; a chunk with a skipped
    one is bucketed by pandas. One-row chunks take both paths."""
    (zone, walls, cutoff), period_zone = case
    _store_agrees_with_pandas(pg_dst_url, zone, period_zone, walls, cutoff, people)


@settings(max_examples=25, deadline=None)
@given(case=walls_and_zones)
def test_mariadb_expires_and_buckets_every_wall_time_as_pandas_does(
    case: tuple[tuple[str, list[datetime], datetime], str], mariadb_dst_url: str
) -> None:
    (zone, walls, cutoff), period_zone = case
    _store_agrees_with_pandas(mariadb_dst_url, zone, period_zone, walls, cutoff)


_HOURS = [datetime.fromisoformat(wall) for wall, _ in REPEATED + SKIPPED]
_APIA = [datetime(2011, 12, 30, hour) for hour in (0, 6, 9, 12, 23)]  # a skipped day
#: (naive zone, period zone, wall times, cut-off). PostgreSQL's own reading of a skipped
#: wall time (the offset before the change) would put Apia's after 08:30 in the next
#: day in Kolkata: those chunks are bucketed by pandas.
HOURS_CASES = [
    (MONTREAL, "America/Regina", _HOURS, datetime(2025, 11, 2, 5, 30, tzinfo=UTC)),  # EDT
    (MONTREAL, "America/Regina", _HOURS, datetime(2025, 11, 2, 6, 30, tzinfo=UTC)),  # EST
    (MONTREAL, "America/Regina", _HOURS, datetime(2025, 3, 9, 7, 0, tzinfo=UTC)),  # gap end
    (MONTREAL, "America/Regina", _HOURS, datetime(2025, 3, 9, 7, 0, 1, tzinfo=UTC)),
    ("Pacific/Apia", "Asia/Kolkata", _APIA, datetime(2011, 12, 30, 10, tzinfo=UTC)),
]
_CASE_IDS = ["first-occurrence", "second-occurrence", "gap-end", "after-gap", "apia"]


@pytest.mark.postgres
@pytest.mark.parametrize(("zone", "period_zone", "walls", "cutoff"), HOURS_CASES, ids=_CASE_IDS)
@pytest.mark.parametrize("people", [False, True], ids=["counts", "people"])
def test_postgres_agrees_on_the_repeated_and_skipped_hours(
    zone: str,
    period_zone: str,
    walls: list[datetime],
    cutoff: datetime,
    people: bool,
    pg_dst_url: str,
) -> None:
    _store_agrees_with_pandas(pg_dst_url, zone, period_zone, walls, cutoff, people)


@pytest.mark.parametrize(("zone", "period_zone", "walls", "cutoff"), HOURS_CASES, ids=_CASE_IDS)
def test_mariadb_agrees_on_the_repeated_and_skipped_hours(
    zone: str, period_zone: str, walls: list[datetime], cutoff: datetime, mariadb_dst_url: str
) -> None:
    _store_agrees_with_pandas(mariadb_dst_url, zone, period_zone, walls, cutoff)


# One binding's defect: it fails alone, through `tenure run` as scheduled.


_DEFECT = RuntimeError("bucketing broke\nat a second line quoting 2025-11-02 01:47:24")


def _broken_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A defect in the binding's work: its rollup bucketing raises."""

    def broken(*_args: object, **_kwargs: object) -> pd.Series:
        raise _DEFECT

    monkeypatch.setattr(rollups, "period_starts", broken)


def _broken_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """A defect around the binding's work: its Prefect task raises."""

    def broken(context: Any, plan: Any, progress: Any = None) -> Any:
        if plan.dataset.name == "visits":
            raise _DEFECT
        return process_dataset(context, plan, progress)

    monkeypatch.setattr(nightly, "process_dataset", broken)


@pytest.mark.parametrize("breaks", [_broken_work, _broken_task], ids=["work", "task"])
def test_a_binding_that_raises_fails_alone_and_tenure_run_exits_1(
    breaks: Any, prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README: "any other unexpected error fails its binding alone: the report and
    the audit give the error's first line, and the other bindings run"."""
    from flows.run import lifecycle

    monkeypatch.setenv("TENURE_AUDIT_KEY", "test-audit-key-0123456789abcdef")
    monkeypatch.setattr(lifecycle, "coverage_gate", lambda *_a, **_k: None)  # no scan here
    policy, url = _shop(tmp_path, [wall for wall, _ in REPEATED])
    breaks(monkeypatch)
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    result = CliRunner().invoke(
        app,
        ["run", str(policy), "--now", NOW.isoformat(), "--state", state, "--json"],
    )
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert [d["dataset"] for d in report["datasets"]] == ["visits", "logins"]  # visits first
    visits, logins = report["datasets"]
    assert visits["status"] == "error"
    assert visits["error"] == "unexpected RuntimeError: bucketing broke"  # its first line
    assert logins["status"] == "ok" and logins["processed"] == 3  # the next one still ran
    engine_ = create_engine(url)
    with engine_.connect() as connection:
        assert connection.execute(text("select count(*) from logins")).scalar_one() == 0
        left = connection.execute(text("select count(*) from visits")).scalar_one()
    engine_.dispose()
    assert left == len(REPEATED)  # the failed binding's chunk rolled back
    audited = {e["dataset"]: e for e in audit.entries(open_state(state)) if "dataset" in e}
    assert audited["visits"]["status"] == "error"
    assert audited["visits"]["error"] == "unexpected RuntimeError: bucketing broke"
    assert audited["logins"]["status"] == "ok" and audited["logins"]["deleted"] == 3
    assert "second line" not in result.output
