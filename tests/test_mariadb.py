"""What is MariaDB's own: the demo store's DATETIME values, named locks, TIMESTAMP and
DATETIME clocks, MySQL's few SQL forms, row estimates, connection errors, zero dates.

The checks every backend passes run on MariaDB through the backend matrix (``store_url``
and ``demo_url``, ``tests/support/backends.py``): the nightly run (``test_nightly.py``),
the connector (``test_sql_connector.py``), the conformance suite, sampling and planning.
"""

from __future__ import annotations

import socket
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from anonymizers.registry import create_operator
from connectors.errors import StoreUnavailable
from connectors.protocol import (
    ChunkWork,
    ColumnRewrite,
    Condition,
    ConnectorOptions,
    ExpirySelection,
    RollupSink,
    RowFilter,
)
from connectors.sql.connector import SQLConnector
from connectors.values import plain
from flows.demo.schema import customers, login_events, metadata
from tests.support.backends import on_backends
from tests.support.cutoff import CUTOFF, MONTREAL, SECOND
from tests.support.demo import build_demo, instants, table_contents
from tests.support.mariadb_server import SERVER_TIME_ZONE, MariaDBServer
from tests.support.people import anonymize, people, person, spy


@pytest.fixture
def demo_store(mariadb_url: str) -> str:
    """A fresh demo store for a test that changes it."""
    build_demo(mariadb_url)
    return mariadb_url


# --- the demo store -------------------------------------------------------------------


def test_demo_store_matches_sqlite(demo_mariadb_url: str, tmp_path: Path) -> None:
    sqlite_store = tmp_path / "crm.sqlite"
    build_demo(f"sqlite:///{sqlite_store}")
    expected = {name: len(rows) for name, rows in table_contents(sqlite_store).items()}
    engine = sa.create_engine(demo_mariadb_url)
    try:
        with engine.connect() as connection:
            counts = {
                name: connection.scalar(sa.select(sa.func.count()).select_from(table))
                for name, table in metadata.tables.items()
            }
            stored = connection.scalars(
                sa.select(login_events.c.occurred_at).order_by(login_events.c.id)
            ).all()
    finally:
        engine.dispose()
    assert counts == expected
    # DATETIME is naive: the demo's instants are kept as UTC wall time, to the second.
    wanted = list(instants(sqlite_store, "SELECT occurred_at FROM login_events ORDER BY id"))
    assert [moment.replace(tzinfo=UTC) for moment in stored] == wanted


def test_ids_continue_after_the_demo_rows(demo_store: str) -> None:
    engine = sa.create_engine(demo_store)
    try:
        with engine.begin() as connection:
            new = connection.execute(
                sa.insert(customers).values(
                    first_name="A", last_name="B", email="a@b.ca", language="en",
                    created_at=datetime(2026, 11, 24),
                )
            ).inserted_primary_key  # fmt: skip
    finally:
        engine.dispose()
    assert new is not None and new[0] == 61


# --- the connector on its own ---------------------------------------------------------


@on_backends("mariadb-as-mysql")
def test_as_mysql_the_dialect_deletes_without_returning(store_url: str) -> None:
    """The premise of the matrix's ``mariadb-as-mysql`` case: rows to aggregate are read
    before the delete, as on MySQL (``test_nightly.py`` compares the rollups)."""
    connector = SQLConnector("crm", store_url)
    try:
        connector.ping()
        assert not connector._engine.dialect.delete_returning
    finally:
        connector.close()


def test_a_lock_is_held_by_one_connector_at_a_time(mariadb_url: str) -> None:
    name = "tenure:" + "a-policy-name-longer-than-sixty-four-characters-" * 2  # hashed
    first, second = SQLConnector("crm", mariadb_url), SQLConnector("crm", mariadb_url)
    try:
        with first.exclusive(name) as held:
            assert held
            with second.exclusive(name) as also:
                assert not also
            with second.exclusive("another lock") as other:
                assert other
        with second.exclusive(name) as now:
            assert now
    finally:
        first.close()
        second.close()


def test_timestamp_columns_are_instants_and_datetime_columns_wall_time(
    mariadb_url: str,
) -> None:
    """The server's zone is not UTC; ``TIMESTAMP`` values are written with
    ``FROM_UNIXTIME`` (read in that zone), so each row holds the intended instant, and
    ``DATETIME`` values hold Montreal wall time."""
    table = sa.Table(
        "stamps",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("stamped", mysql.TIMESTAMP, nullable=True),
        sa.Column("walled", mysql.DATETIME, nullable=True),
    )
    moments = {1: CUTOFF - SECOND, 2: CUTOFF, 3: CUTOFF + SECOND, 4: None}
    engine = sa.create_engine(mariadb_url)
    table.create(engine)
    with engine.begin() as connection:
        assert connection.scalar(sa.select(sa.literal_column("@@session.time_zone"))) == (
            SERVER_TIME_ZONE
        )
        for key, moment in moments.items():
            connection.execute(
                sa.insert(table).values(
                    id=key,
                    stamped=None if moment is None else sa.func.from_unixtime(moment.timestamp()),
                    walled=None if moment is None else moment.replace(tzinfo=None),
                )
            )
    engine.dispose()
    connector = SQLConnector("s", mariadb_url, ConnectorOptions(naive_timezone="America/Montreal"))
    try:
        info = connector.table_info("stamps")
        assert info is not None
        assert info.columns["stamped"].timezone_aware
        assert not info.columns["walled"].timezone_aware
        for clock in ("stamped", "walled"):
            counts = connector.count_expiry(ExpirySelection("stamps", clock, CUTOFF))
            assert (counts.expired, counts.kept) == (1, 3), clock
        held = RowFilter("at the cut-off", (Condition("stamped", "eq", CUTOFF),))
        counts = connector.count_expiry(
            ExpirySelection("stamps", "stamped", CUTOFF + SECOND * 2, exclusions=(held,))
        )
        assert (counts.expired, counts.held) == (2, 1)
    finally:
        connector.close()


@pytest.mark.parametrize("clock_type", [mysql.TIMESTAMP(), mysql.DATETIME()], ids=str)
def test_rollup_periods_are_counted_in_the_policy_zone(
    clock_type: sa.types.TypeEngine[Any], mariadb_url: str
) -> None:
    """A click at 03:00 UTC on 1 December is in November in Montreal. The store's naive
    zone is Montreal: a ``DATETIME`` value is Montreal wall time, a ``TIMESTAMP`` an
    instant (whatever the store's naive zone)."""
    table = sa.Table(
        "clicks",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", clock_type, nullable=False),
    )
    instant = datetime(2020, 12, 1, 3, 0, tzinfo=UTC)
    engine = sa.create_engine(mariadb_url)
    table.create(engine)
    with engine.begin() as connection:
        value = (
            sa.func.from_unixtime(instant.timestamp())
            if isinstance(clock_type, mysql.TIMESTAMP)
            else instant.astimezone(MONTREAL).replace(tzinfo=None)
        )
        connection.execute(sa.insert(table).values(id=1, at=value))
    engine.dispose()
    connector = SQLConnector(
        "s", mariadb_url, ConnectorOptions(naive_timezone="America/Montreal", read_only=False)
    )
    sink = RollupSink("by_month", "month", (), min_cell_size=1)
    selection = ExpirySelection("clicks", "at", CUTOFF + timedelta(days=400), primary_key=("id",))
    work = ChunkWork(
        "run", "clicks", 1, selection, None, 10, "aggregate_then_delete",
        period_zone="America/Montreal", rollups=(sink,),
    )  # fmt: skip
    try:
        assert connector.execute_chunk(work).rows == 1
        cells = connector.rollup_cells("clicks", sink)
    finally:
        connector.close()
    assert [(cell.period_start, cell.count) for cell in cells] == [(date(2020, 11, 1), 1)]


def test_anonymizing_runs_constants_in_sql_and_the_rest_in_pandas(mariadb_url: str) -> None:
    """MySQL has none of the operators' SQL forms but the constants': the others go
    through pandas, with the same results."""
    engine = sa.create_engine(mariadb_url)
    people.create(engine)
    before = [person(i) for i in range(1, 12)]
    with engine.begin() as connection:
        connection.execute(sa.insert(people), before)
    operators = {
        "phone": create_operator("mask", {"chars_to_mask": 4, "from_end": True}),
        "postcode": create_operator("null", {}),
        "born": create_operator("generalize", {"to": "decade"}),
        "email": create_operator("replace", {"new_value": "gone'; --"}),
    }
    calls: list[str] = []
    rewrites = tuple(
        ColumnRewrite(name, sql=o.sql_expression, transform=spy(name, o.operate, calls))
        for name, o in operators.items()
    )
    anonymize(mariadb_url, rewrites)
    anonymize(mariadb_url, rewrites)  # marked rows are not rewritten again
    with engine.connect() as connection:
        after = connection.execute(sa.select(people).order_by(people.c.id))
        rows = after.mappings().all()
    engine.dispose()
    # Nine expired rows in chunks of about three (slices of the integer key); the
    # second pass finds them all marked.
    assert sorted(set(calls)) == ["born", "phone"] and calls.count("born") == calls.count("phone")
    assert 3 <= calls.count("born") <= 5
    expired = [row for row in before if row["id"] % 4]
    for name, operator in operators.items():
        original = pd.Series([row[name] for row in expired], dtype=object)
        expected = [plain(v) for v in operator.operate(original)]
        assert [row[name] for row in rows if row["id"] % 4] == expected, name
        assert [row[name] for row in rows if not row["id"] % 4] == [
            row[name] for row in before if not row["id"] % 4
        ], name


def test_row_estimates_come_from_the_statistics(demo_mariadb_url: str) -> None:
    """``information_schema``'s row count, never a ``COUNT(*)`` (sampling itself is the
    matrix's, ``test_scan.py``)."""
    connector = SQLConnector("crm", demo_mariadb_url)
    statements: list[str] = []
    sa.event.listen(
        connector._engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: statements.append(statement),
    )
    try:
        estimate = connector.estimate_rows("web_clicks")
    finally:
        connector.close()
    engine = sa.create_engine(demo_mariadb_url)
    with engine.connect() as connection:
        exact = connection.scalar(sa.text("SELECT COUNT(*) FROM web_clicks"))
    engine.dispose()
    assert exact and 0.5 * exact <= estimate <= 2 * exact
    assert any("information_schema" in s for s in statements)
    assert not any("count(*)" in s.lower() for s in statements)


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["wrong password", "nothing listening"])
def test_a_refused_connection_names_the_store_in_one_line_without_the_password(
    failure: str, mariadb_server: MariaDBServer
) -> None:
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        port = mariadb_server.port if failure == "wrong password" else bound.getsockname()[1]
        url = f"mysql+pymysql://tenure:Not-The-Pw-42@127.0.0.1:{port}/mysql"
        connector = SQLConnector("crm", url)
        with pytest.raises(StoreUnavailable) as caught:
            connector.ping()
        connector.close()
    message = str(caught.value)
    assert "Not-The-Pw-42" not in message
    assert "\n" not in message
    assert message.startswith(f"store 'crm' (mysql+pymysql://tenure:***@127.0.0.1:{port}/mysql): ")
    if failure == "wrong password":
        assert "Access denied for user 'tenure'" in message and "(error 1045)" in message
    else:
        assert "Can't connect" in message and "(error 2003)" in message


def test_zero_dates_are_unreadable_never_expired(mariadb_url: str) -> None:
    """MariaDB accepts ``0000-00-00`` and dates with a zero month or day in a DATETIME
    (its default SQL mode has no NO_ZERO_DATE): "no date", not the oldest one. Such a
    clock is never expired; it is counted as unreadable."""
    engine = sa.create_engine(mariadb_url)
    with engine.begin() as connection:
        connection.execute(sa.text("SET SESSION sql_mode = ''"))
        connection.execute(sa.text("CREATE TABLE zeroes (id INT PRIMARY KEY, at DATETIME)"))
        connection.execute(
            sa.text(
                "INSERT INTO zeroes VALUES (1, '0000-00-00 00:00:00'), "
                "(2, '2020-00-10 00:00:00'), (3, '2020-05-00 00:00:00'), "
                "(4, '2020-05-10 00:00:00'), (5, NULL)"
            )
        )
    engine.dispose()
    connector = SQLConnector("s", mariadb_url)
    try:
        counts = connector.count_expiry(ExpirySelection("zeroes", "at", CUTOFF))
    finally:
        connector.close()
    assert (counts.total, counts.expired, counts.unreadable) == (5, 1, 3)
