"""One person's rows in the store protocol (`ExpirySelection.only`, `every_row`): what
the conformance suite (``connectors/conformance.py``) does not check on every backend:
foreign keys (a person named through a parent row, a parent kept while its child is
there), NULL and unreadable clocks, an event clock left unread, partitions, plug-ins
that do not declare the fields, the index PostgreSQL uses, and a property test against
a plain Python filter."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    select,
    text,
)

from connectors.errors import StoreError
from connectors.examples.jsonl_log import JsonLinesLog
from connectors.examples.jsonl_log import connector as jsonl_connector
from connectors.protocol import (
    ChunkAction,
    ChunkWork,
    Condition,
    Connector,
    ConnectorOptions,
    EventClock,
    ExpiryCounts,
    ExpirySelection,
    ForeignKeyInfo,
    RollupSink,
    RowFilter,
)
from connectors.records.connector import RecordConnector
from connectors.registry import RefusesSubjectSelections, open_connector
from tests.support.backends import on_backends
from tests.support.distributions import install_distribution

CUTOFF = datetime(2024, 3, 1, tzinfo=UTC)
OLD, YOUNG = datetime(2020, 1, 15, 12, tzinfo=UTC), datetime(2030, 6, 1, 12, tzinfo=UTC)
#: orders: id -> (person_id, placed_at); person 2's are 1, 5, 9, 13 (two NULL clocks, one
#: young, one old).
ORDERS = {
    i: (i % 4 + 1, {1: None, 5: OLD, 9: YOUNG, 13: None}.get(i, OLD if i % 2 else YOUNG))
    for i in range(1, 17)
}
PERSON = 2
THEIRS = [i for i, (person, _) in ORDERS.items() if person == PERSON]
TO_PEOPLE = ForeignKeyInfo(("person_id",), "people", ("id",))


def build_shop(url: str) -> None:
    """people (1-4; an account closed or not) and their orders, by a foreign key."""
    metadata = MetaData()
    people = Table(
        "people",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("email", String(80), nullable=False, unique=True),
        Column("closed_at", DateTime(timezone=True)),
    )
    orders = Table(
        "orders",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("person_id", Integer, ForeignKey("people.id"), nullable=False, index=True),
        Column("placed_at", DateTime(timezone=True)),
        Column("total", Integer, nullable=False),
    )
    engine = create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(people),
            [
                {"id": p, "email": f"p{p}@example.com", "closed_at": None if p == 2 else OLD}
                for p in range(1, 5)
            ],
        )
        connection.execute(
            insert(orders),
            [
                {"id": i, "person_id": person, "placed_at": at, "total": 10 * i}
                for i, (person, at) in ORDERS.items()
            ],
        )
    engine.dispose()


def orders_of(
    filters: tuple[RowFilter, ...], *, every_row: bool = True, **more: Any
) -> ExpirySelection:
    return ExpirySelection(
        "orders",
        "placed_at",
        CUTOFF,
        primary_key=("id",),
        only=filters,
        every_row=every_row,
        **more,
    )


BY_ID = (RowFilter("person", (Condition("person_id", "eq", PERSON),)),)
BY_EMAIL = (
    RowFilter("person", (Condition("email", "eq", f"p{PERSON}@example.com"),), (TO_PEOPLE,)),
)


def run(
    connector: Connector,
    selection: ExpirySelection,
    action: ChunkAction = "delete",
    *,
    run_id: str = "run-1",
    rollups: tuple[RollupSink, ...] = (),
) -> int:
    after, rows, chunk_no = None, 0, 0
    while True:
        chunk_no += 1
        work = ChunkWork(
            run_id, "person", chunk_no, selection, after, 2, action, "UTC", rollups=rollups
        )
        result = connector.execute_chunk(work)
        if result.last is None:
            return rows
        rows, after = rows + result.rows, result.last


def ids(connector: Connector, table: str) -> list[int]:
    everything = ExpirySelection(table, "id", CUTOFF, primary_key=("id",), every_row=True)
    return [row[0] for chunk in connector.read_rows(everything, ["id"], 100) for row in chunk]


@pytest.fixture
def shop(store_url: str) -> Iterator[Connector]:
    build_shop(store_url)
    connector = open_connector("shop", store_url, ConnectorOptions(read_only=False))
    yield connector
    connector.close()


# SQL stores: foreign keys


ALL_SQL = on_backends("sqlite", "postgresql", "mariadb", "mariadb-as-mysql")


@ALL_SQL
@pytest.mark.parametrize("filters", [BY_ID, BY_EMAIL], ids=["by key", "through people"])
def test_every_row_takes_a_persons_rows_whatever_their_clock(
    shop: Connector, filters: tuple[RowFilter, ...]
) -> None:
    """Named by its own column or through the row its key refers to, every row of the
    person is due, NULL and young clocks included; the clock alone takes the old one."""
    counts = shop.count_expiry(orders_of(filters))
    assert (counts.total, counts.expired, counts.held, counts.unreadable) == (4, 4, 0, 0)
    by_clock = shop.count_expiry(orders_of(filters, every_row=False))
    assert (by_clock.total, by_clock.expired) == (4, 1)  # order 5; NULL and young wait
    read = [r[0] for c in shop.read_rows(orders_of(filters), ["id"], 3) for r in c]
    assert read == THEIRS
    assert run(shop, orders_of(filters)) == 4
    assert ids(shop, "orders") == [i for i in ORDERS if i not in THEIRS]
    assert ids(shop, "people") == [1, 2, 3, 4]


@ALL_SQL
def test_a_persons_row_waits_for_its_children_then_goes(shop: Connector) -> None:
    """The parent row of the person is kept while the person's child rows refer to it
    (counted under the reference); a count ahead of the run, told the children go
    first, counts it as expired; once they are gone a second pass deletes it."""
    person = replace(
        orders_of((RowFilter("person", (Condition("id", "in", (PERSON,)),)),)),
        table="people",
        clock_column="closed_at",
        keep_referenced=True,
    )
    counts = shop.count_expiry(person)
    assert (counts.total, counts.expired, counts.held) == (1, 0, 1)
    assert counts.held_by == {"referenced by orders.person_id": 1}
    assert run(shop, person) == 0
    ahead = shop.count_expiry(replace(person, removed_first=(orders_of(BY_ID),)))
    assert (ahead.expired, ahead.held) == (1, 0)
    assert run(shop, orders_of(BY_ID), run_id="run-2") == 4  # the children first
    assert run(shop, person, run_id="run-3") == 1
    assert ids(shop, "people") == [1, 3, 4]
    assert ids(shop, "orders") == [i for i in ORDERS if i not in THEIRS]


def test_an_event_clock_is_not_read_with_every_row(shop: Connector) -> None:
    """Orders clocked by their person's account closing: person 2's account is open, so
    by the clock nothing is due; with every_row all four are, none without event."""
    clocked = EventClock("people", "closed_at", "person_id", "id")
    by_clock = shop.count_expiry(orders_of(BY_ID, every_row=False, event=clocked))
    assert (by_clock.total, by_clock.expired, by_clock.no_event) == (4, 0, 0)
    gone_event = replace(clocked, table="no_such_table")  # never looked up
    counts = shop.count_expiry(orders_of(BY_ID, event=gone_event))
    assert (counts.total, counts.expired, counts.no_event, counts.unreadable) == (4, 4, 0, 0)


@ALL_SQL
def test_rows_without_a_clock_are_deleted_and_left_out_of_rollups(shop: Connector) -> None:
    """A rollup counts rows by the period of their clock: the person's rows with none
    are deleted with the others but placed in no period (no invented date)."""
    sink = RollupSink("by_month", "month", (), sums=("total",), min_cell_size=1)
    assert run(shop, orders_of(BY_ID), "aggregate_then_delete", rollups=(sink,)) == 4
    assert ids(shop, "orders") == [i for i in ORDERS if i not in THEIRS]
    cells = shop.rollup_cells("person", sink)
    assert {(c.period_start.isoformat()[:7], c.count) for c in cells} == {
        ("2020-01", 1),
        ("2030-06", 1),
    }
    assert sum(c.measures["sum_total"] or 0 for c in cells) == 50 + 90


def test_an_unreadable_clock_on_sqlite_is_taken_and_left_out_of_rollups(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    build_shop(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE orders SET placed_at = 'not a date' WHERE id = 1"))
        connection.execute(text("UPDATE orders SET placed_at = 1893456000 WHERE id = 13"))
    engine.dispose()
    shop = open_connector("shop", url, ConnectorOptions(read_only=False))
    by_clock = shop.count_expiry(orders_of(BY_ID, every_row=False))
    assert (by_clock.expired, by_clock.unreadable) == (1, 2)
    counts = shop.count_expiry(orders_of(BY_ID))
    assert (counts.expired, counts.unreadable) == (4, 0)
    sink = RollupSink("by_month", "month", (), min_cell_size=1)
    assert run(shop, orders_of(BY_ID), "aggregate_then_delete", rollups=(sink,)) == 4
    assert sum(c.count for c in shop.rollup_cells("person", sink)) == 2
    assert ids(shop, "orders") == [i for i in ORDERS if i not in THEIRS]
    shop.close()


# stores without SQL


def write_log(root: Path, rows: list[dict[str, str]]) -> Connector:
    """``events`` partitioned by day (the clock is the partition field), as CSV."""
    by_day: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_day.setdefault(row["day"], []).append(row)
    for day, chosen in by_day.items():
        folder = root / "events" / f"day={day}"
        folder.mkdir(parents=True)
        lines = ["person,note,at"] + [f"{r['person']},{r['note']},{r['at']}" for r in chosen]
        (folder / "part-0.csv").write_text("\n".join(lines) + "\n")
    options = ConnectorOptions(read_only=False, bookkeeping_dir=root.parent / "books")
    return open_connector("log", f"files:///{root}", options)


def anns(clock: str) -> ExpirySelection:
    """Every record of ann in the ``events`` log, due whatever its ``clock``."""
    return ExpirySelection(
        "events",
        clock,
        CUTOFF,
        primary_key=("source_file", "row_number"),
        only=(RowFilter("person", (Condition("person", "eq", "ann"),)),),
        every_row=True,
    )


def test_a_partition_is_not_dropped_for_one_persons_records(tmp_path: Path) -> None:
    """A delete by a partition field drops whole folders, but not for one person: the
    other people's records in the same folder stay (and NULL clocks are taken)."""
    rows = [
        {"day": day, "person": person, "note": f"{person} on {day}", "at": at}
        for day in ("2024-01-05", "2024-01-06")
        for person, at in (("ann", ""), ("bob", "2024-01-05T10:00:00Z"))
    ]
    log = write_log(tmp_path / "store", rows)
    assert log.count_expiry(anns("at")).expired == 2  # NULL clocks are taken
    assert run(log, anns("day")) == 2
    notes = [r[0] for c in log.read_rows(replace(anns("day"), only=()), ["note"], 10) for r in c]
    assert sorted(notes) == ["bob on 2024-01-05", "bob on 2024-01-06"]
    log.close()


def test_records_without_a_readable_clock_are_deleted_and_left_out_of_rollups(
    tmp_path: Path,
) -> None:
    rows = [
        {"day": "2024-01-05", "person": person, "note": f"{person} {i}", "at": at}
        for person in ("ann", "bob")
        for i, at in enumerate(("", "not a date", "2024-01-05T10:00:00Z"))
    ]
    log = write_log(tmp_path / "store", rows)
    ann = anns("at")
    counts = log.count_expiry(ann)
    assert (counts.total, counts.expired, counts.unreadable) == (3, 3, 0)
    sink = RollupSink("by_month", "month", (), min_cell_size=1)
    assert run(log, ann, "aggregate_then_delete", rollups=(sink,)) == 3
    assert [(c.period_start.isoformat(), c.count) for c in log.rollup_cells("person", sink)] == [
        ("2024-01-01", 1)
    ]
    everyone = replace(ann, only=())
    notes = [r[0] for c in log.read_rows(everyone, ["note"], 10) for r in c]
    assert sorted(notes) == ["bob 0", "bob 1", "bob 2"]
    log.close()


# plug-ins


class OldConnector(RecordConnector):
    """A connector from before `only` and `every_row`: it would take them for a
    selection of every row."""

    selects_subjects = False


def old_connector(name: str, url: str, options: ConnectorOptions) -> Connector:
    return OldConnector(JsonLinesLog(name, url, read_only=options.read_only), options)


def test_a_plug_in_that_does_not_select_one_person_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [
        f'{{"id": "e{i}", "at": "2020-01-0{i + 1}T00:00:00+00:00", "who": "p{i % 2}"}}'
        for i in range(4)
    ]
    (logs / "events.jsonl").write_text("\n".join(lines) + "\n")
    install_distribution(tmp_path / "site", "oldlog", "tests.test_subject_selection:old_connector")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    url = f"oldlog:///{logs}"
    connector = open_connector(
        "log", url, ConnectorOptions(read_only=False, bookkeeping_dir=tmp_path)
    )
    assert isinstance(connector, RefusesSubjectSelections) and isinstance(connector, Connector)
    assert connector.bookkeeping_path == tmp_path / "log.bookkeeping.sqlite"  # the rest passes
    everyone = ExpirySelection("events", "at", CUTOFF, primary_key=("id",))
    assert connector.count_expiry(everyone).expired == 4  # the nightly run is unchanged
    one = replace(everyone, only=(RowFilter("person", (Condition("who", "eq", "p1"),)),))
    for selection in (one, replace(everyone, every_row=True)):
        with pytest.raises(StoreError) as refused:
            connector.count_expiry(selection)
        assert "does not select one person's records" in str(refused.value)
        assert len(str(refused.value).splitlines()) == 1
        with pytest.raises(StoreError):
            list(connector.read_rows(selection, ["id"], 10))
        with pytest.raises(StoreError):
            connector.execute_chunk(ChunkWork("r", "l", 1, selection, None, 10, "delete"))
    assert (logs / "events.jsonl").read_text().count("\n") == 4  # nothing was deleted
    connector.close()
    example = jsonl_connector("log", f"jsonlog:///{logs}", ConnectorOptions())
    assert getattr(example, "selects_subjects", False) is True  # the example supports them


# the property: the store's selection is a plain filter of the same rows

PEOPLE = ("p0", "p1", "p2", "p3", "p4")
CLOCKS = (None, OLD, datetime(2024, 2, 29, 23, 59, tzinfo=UTC), CUTOFF, YOUNG)
Row = tuple[str, datetime | None]


def expected_rows(
    rows: list[Row], chosen: list[tuple[str, ...]], every_row: bool
) -> tuple[list[int], list[int]]:
    """The indexes of the rows the filters name, and of those due."""
    mine = [i for i, (person, _) in enumerate(rows) if any(person in c for c in chosen)]
    clocks = [at for _, at in rows]
    due = [i for i in mine if every_row or ((at := clocks[i]) is not None and at < CUTOFF)]
    return mine, due


def as_filters(chosen: list[tuple[str, ...]]) -> tuple[RowFilter, ...]:
    return tuple(
        RowFilter(f"by {i}", (Condition("person", "eq", c[0]) if len(c) == 1 else
                              Condition("person", "in", c),))
        for i, c in enumerate(chosen)
    )  # fmt: skip


def sqlite_store(folder: Path, rows: list[Row]) -> tuple[Connector, str, tuple[str, ...]]:
    url = f"sqlite:///{folder / 'rows.sqlite'}"
    metadata = MetaData()
    table = Table(
        "rows",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("person", String(10), nullable=False),
        Column("at", DateTime(timezone=True)),
    )
    engine = create_engine(url)
    metadata.create_all(engine)
    if rows:
        with engine.begin() as connection:
            connection.execute(
                insert(table), [{"id": i, "person": p, "at": at} for i, (p, at) in enumerate(rows)]
            )
    engine.dispose()
    return open_connector("rows", url), "id", ("id",)


def files_store(folder: Path, rows: list[Row]) -> tuple[Connector, str, tuple[str, ...]]:
    (folder / "rows").mkdir()
    lines = ["n,person,at"] + [
        f"{i},{p},{'' if at is None else at.isoformat().replace('+00:00', 'Z')}"
        for i, (p, at) in enumerate(rows)
    ]
    (folder / "rows" / "part-0.csv").write_text("\n".join(lines) + "\n")
    options = ConnectorOptions(bookkeeping_dir=folder / "books")
    return open_connector("rows", f"files:///{folder}", options), "n", ("source_file", "row_number")


@pytest.mark.parametrize("make", [sqlite_store, files_store], ids=["sqlite", "files"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(st.sampled_from(PEOPLE), st.sampled_from(CLOCKS)), max_size=25),
    chosen=st.lists(
        st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3, unique=True).map(tuple),
        min_size=1,
        max_size=2,
    ),
    every_row=st.booleans(),
)
def test_the_selection_of_a_person_is_a_plain_filter_of_the_rows(
    make: Any, rows: list[Row], chosen: list[tuple[str, ...]], every_row: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        connector, number, key = make(Path(folder), rows)
        selection = ExpirySelection(
            "rows", "at", CUTOFF, primary_key=key, only=as_filters(chosen), every_row=every_row
        )
        mine, due = expected_rows(rows, chosen, every_row)
        counts = connector.count_expiry(selection)
        assert (counts.total, counts.expired, counts.held) == (len(mine), len(due), 0)
        assert counts.unreadable == counts.no_event == 0
        read = [int(r[0]) for c in connector.read_rows(selection, [number], 4) for r in c]
        assert sorted(read) == due
        connector.close()


# PostgreSQL: one person's rows are found through the index on their key


def test_postgresql_reads_one_persons_rows_through_indexes(pg_url: str) -> None:
    """On tables big enough that the planner weighs a full read, every statement a count,
    a read and the chunks of a delete send for one person (by key, through the parent's
    indexed e-mail, and the parent kept while its children are there) is planned
    without a sequential scan of either table (no setting forces the planner)."""
    build_shop(pg_url)
    engine = create_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM orders"))
        connection.execute(
            text(
                "INSERT INTO people (id, email, closed_at) SELECT g, 'x' || g || '@example.com',"
                " now() - interval '9 years' FROM generate_series(5, 100000) g"
            )
        )
        connection.execute(
            text(
                "INSERT INTO orders (id, person_id, placed_at, total) SELECT g, 1 + g % 100000,"
                " now() - (g % 3000) * interval '1 day', g FROM generate_series(1, 300000) g"
            )
        )
        connection.execute(text("ANALYZE people"))
        connection.execute(text("ANALYZE orders"))
    shop = open_connector("shop", pg_url, ConnectorOptions(read_only=False))
    person = replace(
        orders_of((RowFilter("person", (Condition("id", "in", (PERSON,)),)),)),
        table="people",
        clock_column="closed_at",
        keep_referenced=True,
    )
    sent: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "DELETE", "WITH")) and (
            " orders" in statement or " people" in statement
        ):
            sent.append((statement, parameters))

    event.listen(shop._engine, "before_cursor_execute", capture)  # type: ignore[attr-defined]
    for selection in (orders_of(BY_ID), orders_of(BY_EMAIL), person):
        shop.count_expiry(selection)
        list(shop.read_rows(selection, ["id"], 10))
    assert run(shop, person) == 0  # kept: its orders refer to it
    assert run(shop, orders_of(BY_EMAIL), run_id="run-2") == 3
    assert run(shop, person, run_id="run-3") == 1
    assert len(sent) >= 12
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in sent:
            cursor.execute(f"EXPLAIN {statement}", parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan on orders" not in plan and "Seq Scan on people" not in plan, (
                f"{statement}\n{plan}"
            )
    finally:
        raw.close()
    with engine.connect() as connection:
        assert connection.scalar(select(text("count(*)")).select_from(text("orders"))) == 300000 - 3
    shop.close()
    engine.dispose()


class PartialConnector:
    """A plug-in short of some protocol member (written before `compact_rollup`): not a
    `Connector` to ``isinstance``, yet it counts and deletes rows."""

    def __init__(self, inner: Connector) -> None:
        self.inner = inner
        self.name = inner.name

    def count_expiry(self, selection: ExpirySelection) -> ExpiryCounts:
        return self.inner.count_expiry(selection)


def partial_connector(name: str, url: str, options: ConnectorOptions) -> PartialConnector:
    return PartialConnector(old_connector(name, url, options))


def test_a_plug_in_short_of_the_protocol_is_refused_one_persons_rows_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used to be handed back unwrapped, "not ours to judge": an erasure for one
    person would then have counted (and acted on) every row."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "events.jsonl").write_text(
        '{"id": "e1", "at": "2020-01-01T00:00:00+00:00", "who": "p1"}\n'
    )
    install_distribution(
        tmp_path / "site", "partlog", "tests.test_subject_selection:partial_connector"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    connector = open_connector(
        "log", f"partlog:///{logs}", ConnectorOptions(read_only=False, bookkeeping_dir=tmp_path)
    )
    one = ExpirySelection(
        "events", "at", CUTOFF, primary_key=("id",), every_row=True,
        only=(RowFilter("person", (Condition("who", "eq", "p2"),)),),
    )  # fmt: skip
    with pytest.raises(StoreError, match="does not select one person's records"):
        connector.count_expiry(one)
