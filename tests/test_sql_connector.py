"""The SQL connector against real stores: SQLite files, PostgreSQL and MariaDB servers
(the backend matrix, ``store_url``)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
)

from connectors.errors import StoreUnavailable, UnknownStoreScheme
from connectors.protocol import Condition, ConnectorOptions, EventClock, ExpirySelection, RowFilter
from connectors.registry import open_connector
from connectors.sql.connector import SQLConnector
from tests.support.cutoff import CUTOFF, DAY, MONTREAL, SECOND

metadata = MetaData()
people = Table("people", metadata, Column("id", Integer, primary_key=True))
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person_id", ForeignKey("people.id"), nullable=True),
    Column("occurred_at", DateTime(timezone=True), nullable=True),
    Column("happened_on", Date, nullable=True),
    Column("label", String(20), nullable=False),
)
closures = Table(
    "closures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person_id", ForeignKey("people.id"), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
)


def _fill(
    url: str, event_rows: list[dict[str, object]], closure_rows: list[dict[str, object]]
) -> None:
    engine = create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(people), [{"id": i} for i in range(1, 10)])
        if event_rows:
            connection.execute(insert(events), event_rows)
        if closure_rows:
            connection.execute(insert(closures), closure_rows)
    engine.dispose()


def _event(
    i: int, at: datetime | None, person: int | None = 1, on: date | None = None
) -> dict[str, object]:
    stored = at.astimezone(ZoneInfo("UTC")) if at is not None else None
    return {
        "id": i,
        "person_id": person,
        "occurred_at": stored,
        "happened_on": on,
        "label": f"e{i}",
    }


def _connector(url: str) -> SQLConnector:
    return SQLConnector("test", url, ConnectorOptions(local_timezone="America/Montreal"))


def test_rows_one_second_and_one_day_around_the_cutoff(store_url: str) -> None:
    _fill(store_url, [
        _event(1, CUTOFF - DAY), _event(2, CUTOFF - SECOND), _event(3, CUTOFF),
        _event(4, CUTOFF + SECOND), _event(5, CUTOFF + DAY), _event(6, None),
    ], [])  # fmt: skip
    counts = _connector(store_url).count_expiry(ExpirySelection("events", "occurred_at", CUTOFF))
    assert (counts.total, counts.expired, counts.held, counts.kept) == (6, 2, 0, 4)


def test_naive_timestamps_are_read_in_the_store_zone(tmp_path: Path) -> None:
    """A SQLite store whose naive timestamps are Montreal wall time, not UTC."""
    url = f"sqlite:///{tmp_path / 'local.sqlite'}"
    engine = create_engine(url)
    metadata.create_all(engine)
    wall = CUTOFF.replace(tzinfo=None)
    with engine.begin() as connection:
        connection.execute(insert(people), [{"id": 1}])
        connection.execute(insert(events), [
            {"id": 1, "person_id": 1, "occurred_at": wall - SECOND, "label": "a"},
            {"id": 2, "person_id": 1, "occurred_at": wall, "label": "b"},
        ])  # fmt: skip
    engine.dispose()
    as_utc = SQLConnector("s", url, ConnectorOptions(naive_timezone="UTC"))
    as_local = SQLConnector("s", url, ConnectorOptions(naive_timezone="America/Montreal"))
    selection = ExpirySelection("events", "occurred_at", CUTOFF)
    # Read as UTC, both rows are five hours earlier than meant: both expired.
    assert as_utc.count_expiry(selection).expired == 2
    assert as_local.count_expiry(selection).expired == 1


def test_date_clock_compares_calendar_days_in_the_policy_zone(store_url: str) -> None:
    local_day = CUTOFF.date()
    _fill(store_url, [
        _event(1, None, on=local_day - DAY), _event(2, None, on=local_day),
        _event(3, None, on=local_day + DAY),
    ], [])  # fmt: skip
    counts = _connector(store_url).count_expiry(ExpirySelection("events", "happened_on", CUTOFF))
    assert counts.expired == 1


def test_event_clock_expires_only_when_every_event_is_past(store_url: str) -> None:
    old, recent = CUTOFF - DAY, CUTOFF + DAY
    _fill(
        store_url,
        [_event(i, CUTOFF + DAY, person=i) for i in range(1, 6)],
        [
            {"id": 1, "person_id": 1, "closed_at": old},  # closed long ago -> expired
            {"id": 2, "person_id": 2, "closed_at": recent},  # closed recently -> kept
            {"id": 3, "person_id": 3, "closed_at": old},  # one old closure ...
            {"id": 4, "person_id": 3, "closed_at": None},  # ... but another still open -> kept
            {"id": 5, "person_id": 4, "closed_at": None},  # never closed -> kept
        ],  # person 5 has no closure row at all -> kept
    )
    selection = ExpirySelection(
        "events",
        "closed_at",
        CUTOFF,
        event=EventClock("closures", "closed_at", "person_id", "person_id"),
    )
    counts = _connector(store_url).count_expiry(selection)
    assert (counts.total, counts.expired, counts.kept) == (5, 1, 4)


def test_holds_exclude_expired_rows_and_null_keys_still_expire(store_url: str) -> None:
    _fill(store_url, [
        _event(1, CUTOFF - DAY, person=1), _event(2, CUTOFF - DAY, person=2),
        _event(3, CUTOFF - DAY, person=None), _event(4, CUTOFF + DAY, person=2),
        _event(5, datetime(2019, 6, 1, tzinfo=MONTREAL), person=3),
    ], [])  # fmt: skip
    by_person = RowFilter("lawsuit", (Condition("person_id", "in", ("2", 3)),))
    by_date = RowFilter(
        "audit",
        (
            Condition("occurred_at", "ge", date(2019, 1, 1)),
            Condition("occurred_at", "lt", date(2020, 1, 1)),
        ),
    )
    selection = ExpirySelection("events", "occurred_at", CUTOFF, exclusions=(by_person, by_date))
    counts = _connector(store_url).count_expiry(selection)
    # Rows 2 and 5 are expired but held (5 by both holds); row 3's NULL key matches no hold.
    assert (counts.expired, counts.held, counts.kept) == (2, 2, 1)
    assert counts.held_by == {"lawsuit": 2, "audit": 1}


def test_table_info_reflects_types_keys_and_foreign_keys(store_url: str) -> None:
    _fill(store_url, [], [])
    info = _connector(store_url).table_info("events")
    assert info is not None
    assert info.primary_key == ("id",)
    assert info.columns["occurred_at"].family == "datetime"
    assert info.columns["happened_on"].family == "date"
    assert info.columns["label"].family == "text"
    assert info.columns["person_id"].nullable
    assert [(fk.columns, fk.referred_table) for fk in info.foreign_keys] == [
        (("person_id",), "people")
    ]
    assert _connector(store_url).table_info("no_such_table") is None


def test_postgres_timestamptz_is_timezone_aware(pg_url: str) -> None:
    _fill(pg_url, [], [])
    info = _connector(pg_url).table_info("events")
    assert info is not None and info.columns["occurred_at"].timezone_aware


def test_read_only_sqlite_never_creates_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.sqlite"
    connector = SQLConnector("crm", f"sqlite:///{missing}")
    with pytest.raises(StoreUnavailable, match=r"absent\.sqlite exist"):
        connector.ping()
    assert not missing.exists()


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql", "mariadb+pymysql"])
def test_unreachable_server_error_hides_the_password(scheme: str) -> None:
    connector = SQLConnector("crm", f"{scheme}://tenure:s3cr3t-pw@127.0.0.1:1/crm")
    with pytest.raises(StoreUnavailable) as caught:
        connector.ping()
    assert "s3cr3t-pw" not in str(caught.value)
    assert "***" in str(caught.value) and "crm" in str(caught.value)


def test_registry_picks_the_connector_by_scheme(tmp_path: Path) -> None:
    connector = open_connector("crm", f"sqlite:///{tmp_path / 'x.sqlite'}")
    assert isinstance(connector, SQLConnector)
    with pytest.raises(UnknownStoreScheme, match="no connector for scheme 'oracle'"):
        open_connector("crm", "oracle://scott:tiger@db/orcl")
