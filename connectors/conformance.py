"""The conformance suite every connector passes: subclass ``ConnectorConformance``.

A connector's test module writes one class::

    from connectors.conformance import ConformanceFixture, ConnectorConformance, Record
    from connectors.protocol import Capabilities

    class TestMyStore(ConnectorConformance):
        CAPABILITIES = Capabilities(transactions=False, pushdown=False, partitions=False)

        @pytest.fixture
        def make_store(self, tmp_path):
            def make(records: list[Record]) -> ConformanceFixture:
                ...  # write the records into a fresh store under tmp_path
                return ConformanceFixture(open=..., collection="events", key=("id",),
                                          clock="happened_at", text="note", group="team")
            return make

and pytest runs every ``test_*`` method below against it: discovery, sampling, chunked
streaming, counting, delete and update by keys, aggregation (a cell of 600 people
counted exactly among them), a crash between chunks and inside one, and bad input. The
store holds the same few records for every connector; each record has a clock (an aware
instant), a text and a group, which the fixture maps to fields of its own (a mailbox has
no free choice of field names).

``CAPABILITIES`` is what the connector reports as its ``capabilities``
(``test_declares_its_capabilities`` holds the two equal). A check that needs a
capability says so with ``@requires(...)``; on a class that declares otherwise it is
marked skipped, with its reason, when the class is defined, so pytest shows and counts
it as skipped without building a store (SQLAlchemy's suite gates its tests by a
dialect's requirements the same way). Needs pytest (a test dependency).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import pandas as pd
import pytest

from connectors.errors import StoreError
from connectors.protocol import (
    Capabilities,
    ChunkAction,
    ChunkWork,
    ColumnRewrite,
    Condition,
    Connector,
    ExpirySelection,
    RollupSink,
    RowFilter,
)
from connectors.records.connector import RecordConnector
from connectors.sketches import PeopleKey

#: Records before this instant are expired in every test.
CUTOFF = datetime(2024, 3, 1, tzinfo=UTC)
GROUPS = ("north", "south", "held")


@dataclass(frozen=True)
class Record:
    """One record of the suite's store, in the suite's own terms."""

    clock: datetime
    text: str
    group: str


@dataclass(frozen=True)
class ConformanceFixture:
    """A fresh store holding the suite's records, and how to reach them."""

    open: Callable[[bool], Connector]
    """A new connector on the store; the argument is ``read_only``."""
    collection: str
    key: tuple[str, ...]
    clock: str
    text: str
    group: str
    schema: str | None = None


def suite_records() -> list[Record]:
    """23 records over four months; 12 before ``CUTOFF``, 4 of them in group "held"."""
    start = datetime(2024, 1, 3, 9, 30, tzinfo=UTC)
    return [
        Record(
            start + timedelta(days=5 * i, hours=i), f"note {i:02d} for person {i}", GROUPS[i % 3]
        )
        for i in range(23)
    ]


def _expired(records: list[Record], *, held: bool | None = None) -> list[Record]:
    chosen = [r for r in records if r.clock < CUTOFF]
    if held is None:
        return chosen
    return [r for r in chosen if (r.group == "held") == held]


#: One person's records, for the checks of `ExpirySelection.only`: the filters naming
#: them (built from the store's fields) and which of the suite's records they are.
Person = tuple[tuple[RowFilter, ...], Callable[[int, Record], bool]]


def _text(i: int) -> str:
    return suite_records()[i].text


def people(store: ConformanceFixture) -> dict[str, Person]:
    """Ways of naming one person's records: one value (``eq``), a list (``in``), two
    filters ORed (the person named by two fields), and a conjunction of two conditions."""
    chosen = (1, 4, 20)
    return {
        "eq": (
            (RowFilter("person", (Condition(store.group, "eq", "north"),)),),
            lambda i, r: r.group == "north",
        ),
        "in": (
            (RowFilter("person", (Condition(store.text, "in", tuple(map(_text, chosen))),)),),
            lambda i, r: i in chosen,
        ),
        "two filters": (
            (
                RowFilter("by group", (Condition(store.group, "eq", "south"),)),
                RowFilter("by text", (Condition(store.text, "eq", _text(3)),)),
            ),
            lambda i, r: r.group == "south" or i == 3,
        ),
        "conjunction": (
            (
                RowFilter(
                    "person",
                    (
                        Condition(store.group, "eq", "held"),
                        Condition(store.text, "in", (_text(2), _text(5), _text(6))),
                    ),
                ),
            ),
            lambda i, r: i in (2, 5),
        ),
    }


PERSON_KINDS = ("eq", "in", "two filters", "conjunction")


Check = TypeVar("Check", bound=Callable[..., None])
#: Where ``requires`` keeps a check's needs: (reason, {capability: value}).
_NEEDS = "_conformance_needs"
#: Where a check skipped on one class keeps the check itself (a subclass may differ).
_CHECK = "_conformance_check"


def requires(reason: str, **capabilities: bool) -> Callable[[Check], Check]:
    """Run the decorated check only on a connector whose declared ``CAPABILITIES`` have
    these values (names of ``Capabilities``); ``reason`` says why the others skip it."""
    known = {f.name for f in fields(Capabilities)}
    if unknown := sorted(set(capabilities) - known):
        raise TypeError(f"unknown capabilities {unknown}; known: {sorted(known)}")

    def declare(check: Check) -> Check:
        setattr(check, _NEEDS, (reason, capabilities))
        return check

    return declare


def _gated(cls: type[ConnectorConformance], attribute: Any) -> Any:
    """The check as ``cls`` runs it: itself, or a copy marked skipped with the reason
    when ``cls`` declares other capabilities than the check needs (or none)."""
    check = getattr(attribute, _CHECK, attribute)
    needs = getattr(check, _NEEDS, None)
    if needs is None:
        return attribute
    reason, wanted = needs
    declared = cls.CAPABILITIES
    if declared is None:
        why = f"{cls.__name__} declares no CAPABILITIES, and this check needs some: {reason}"
    else:
        differ = {name: value for name, value in wanted.items() if getattr(declared, name) != value}
        if not differ:
            return check
        has = ", ".join(f"{name}={getattr(declared, name)}" for name in differ)
        needed = ", ".join(f"{name}={value}" for name, value in differ.items())
        why = f"{cls.__name__} declares {has}; this check needs {needed}: {reason}"

    @functools.wraps(check)
    def skipped(*args: Any, **kwargs: Any) -> None:
        check(*args, **kwargs)

    setattr(skipped, _CHECK, check)
    return pytest.mark.skip(reason=why)(skipped)


class ConnectorConformance:
    """The suite; a subclass provides the ``make_store`` fixture and declares the
    connector's ``CAPABILITIES``."""

    LABEL = "conformance"
    CAPABILITIES: ClassVar[Capabilities | None] = None
    """What the connector under test can do (its ``capabilities``); checks that need
    otherwise are skipped. None: not declared, which fails ``test_declares_its_capabilities``
    and skips every check that needs a capability."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in dir(cls):
            attribute = getattr(cls, name)
            if name.startswith("test") and (gated := _gated(cls, attribute)) is not attribute:
                setattr(cls, name, gated)

    @pytest.fixture
    def make_store(self) -> Callable[[list[Record]], ConformanceFixture]:
        raise NotImplementedError("a connector's test class provides make_store")

    @pytest.fixture
    def store(self, make_store: Callable[[list[Record]], ConformanceFixture]) -> ConformanceFixture:
        return make_store(suite_records())

    @pytest.fixture
    def connector(self, store: ConformanceFixture) -> Iterator[Connector]:
        opened = store.open(False)
        yield opened
        opened.close()

    # helpers

    def selection(
        self, store: ConformanceFixture, *, hold: bool = False, mark: bool = False
    ) -> ExpirySelection:
        exclusions = (RowFilter("hold", (Condition(store.group, "eq", "held"),)),) if hold else ()
        return ExpirySelection(
            table=store.collection,
            clock_column=store.clock,
            cutoff=CUTOFF,
            schema=store.schema,
            exclusions=exclusions,
            primary_key=store.key,
            skip_marked=self.LABEL if mark else None,
        )

    def person(
        self,
        connector: Connector,
        store: ConformanceFixture,
        kind: str,
        *,
        every_row: bool = False,
        hold: bool = True,
        mark: bool = False,
    ) -> tuple[ExpirySelection, list[Record]]:
        """A selection of one person's records (`people`), held by group "held" unless
        ``hold`` is False, and the suite's records that are that person's. Skips on a
        connector that does not declare ``selects_subjects``: ``open_connector`` refuses
        such selections for it."""
        if getattr(connector, "selects_subjects", False) is not True:
            pytest.skip(
                f"{type(connector).__name__} does not declare selects_subjects = True "
                "(ExpirySelection.only and every_row): open_connector refuses such selections"
            )
        filters, member = people(store)[kind]
        base = self.selection(store, hold=hold, mark=mark)
        selection = replace(base, only=filters, every_row=every_row, keep_referenced=True)
        return selection, [r for i, r in enumerate(suite_records()) if member(i, r)]

    def run(
        self,
        connector: Connector,
        selection: ExpirySelection,
        action: ChunkAction,
        *,
        run_id: str = "run-1",
        limit: int = 4,
        rewrites: tuple[ColumnRewrite, ...] = (),
        rollups: tuple[RollupSink, ...] = (),
        stop_after: int | None = None,
    ) -> tuple[int, int]:
        """Chunks until nothing is left (or ``stop_after`` chunks): (rows, chunks)."""
        after, rows, chunk_no = None, 0, 0
        while stop_after is None or chunk_no < stop_after:
            work = ChunkWork(
                run_id,
                self.LABEL,
                chunk_no + 1,
                selection,
                after,
                limit,
                action,
                "UTC",
                rewrites,
                rollups,
            )
            result = connector.execute_chunk(work)
            if result.last is None:
                break
            chunk_no += 1
            rows += result.rows
            after = result.last
        return rows, chunk_no

    def texts(self, connector: Connector, store: ConformanceFixture) -> list[str]:
        """Every record's text, read through the connector, in key order."""
        everything = ExpirySelection(
            store.collection,
            store.clock,
            datetime(9999, 1, 1, tzinfo=UTC),
            store.schema,
            primary_key=store.key,
        )
        return [
            row[0] for chunk in connector.read_rows(everything, [store.text], 100) for row in chunk
        ]

    # discovery and reading

    def test_declares_its_capabilities(self, connector: Connector) -> None:
        assert self.CAPABILITIES is not None, (
            f"{type(self).__name__} declares no CAPABILITIES: set it to the connector's "
            "capabilities (connectors.protocol.Capabilities), so that the checks it cannot "
            "do are skipped, saying why"
        )
        assert connector.capabilities == self.CAPABILITIES

    def test_discovers_the_collection_and_its_fields(
        self, connector: Connector, store: ConformanceFixture
    ) -> None:
        assert store.collection in connector.table_names(store.schema)
        info = connector.table_info(store.collection, store.schema)
        assert info is not None
        assert info.primary_key == store.key
        assert info.columns[store.clock].family == "datetime"
        assert info.columns[store.text].family == "text"
        assert connector.table_info("no_such_collection", store.schema) is None

    def test_samples_values_from_the_store(
        self, connector: Connector, store: ConformanceFixture
    ) -> None:
        sample = connector.sample_values(store.collection, [store.text], 5, store.schema)
        known = {r.text for r in suite_records()}
        assert 1 <= len(sample[store.text]) <= 5
        assert set(sample[store.text]) <= known

    def test_counts_expired_and_held_records(
        self, connector: Connector, store: ConformanceFixture
    ) -> None:
        records = suite_records()
        counts = connector.count_expiry(self.selection(store, hold=True))
        assert counts.total == len(records)
        assert counts.expired == len(_expired(records, held=False))
        assert counts.held == len(_expired(records, held=True))
        assert counts.held_by == {"hold": counts.held}

    def test_streams_the_selected_records_in_chunks(
        self, connector: Connector, store: ConformanceFixture
    ) -> None:
        chunks = list(connector.read_rows(self.selection(store, hold=True), [store.text], 3))
        assert all(1 <= len(chunk) <= 3 for chunk in chunks)
        got = [row[0] for chunk in chunks for row in chunk]
        assert sorted(got) == sorted(r.text for r in _expired(suite_records(), held=False))
        assert self.texts(connector, store) == self.texts(connector, store)  # read only

    # changing records

    def test_deletes_by_keys_in_chunks_and_journals_them(
        self, connector: Connector, store: ConformanceFixture
    ) -> None:
        records = suite_records()
        rows, chunks = self.run(connector, self.selection(store, hold=True), "delete")
        gone = _expired(records, held=False)
        assert rows == len(gone) and chunks >= 2
        kept = sorted(r.text for r in records if r not in gone)
        assert sorted(self.texts(connector, store)) == kept
        journal = connector.journal("run-1")
        assert sum(e.rows for e in journal) == len(gone)
        assert [e.chunk_no for e in journal] == list(range(1, chunks + 1))
        assert self.run(connector, self.selection(store, hold=True), "delete", run_id="run-2") == (
            0,
            0,
        )
        assert connector.journal_runs() == ["run-1"]  # run-2 committed nothing

    def test_updates_fields_by_keys_once(
        self, connector: Connector, store: ConformanceFixture
    ) -> None:
        records = suite_records()
        rewrite = ColumnRewrite(
            store.text, transform=lambda s: s.map(lambda v: f"redacted {len(v)}")
        )
        selection = self.selection(store, hold=True, mark=True)
        rows, _ = self.run(connector, selection, "anonymize", rewrites=(rewrite,))
        changed = _expired(records, held=False)
        assert rows == len(changed)
        expected = sorted(f"redacted {len(r.text)}" if r in changed else r.text for r in records)
        assert sorted(self.texts(connector, store)) == expected
        assert self.run(connector, selection, "anonymize", run_id="run-2", rewrites=(rewrite,)) == (
            0,
            0,
        )
        groups = connector.count_groups(store.collection, [store.group], self.LABEL, store.schema)
        assert sum(n for _, n in groups) == len(changed)

    def test_aggregates_then_deletes(self, connector: Connector, store: ConformanceFixture) -> None:
        records = suite_records()
        sink = RollupSink("by_group", "month", (store.group,), min_cell_size=1)
        rows, _ = self.run(
            connector, self.selection(store), "aggregate_then_delete", rollups=(sink,)
        )
        gone = _expired(records)
        assert rows == len(gone)
        cells = connector.rollup_cells(self.LABEL, sink)
        counted = {
            (c.period_start.isoformat()[:7], c.dimensions[store.group]): c.count for c in cells
        }
        expected = (
            pd.Series(
                1,
                index=pd.MultiIndex.from_tuples(
                    [(r.clock.strftime("%Y-%m"), r.group) for r in gone]
                ),
            )
            .groupby(level=[0, 1])
            .sum()
        )
        assert counted == {key: int(n) for key, n in expected.items()}
        # Compacting (one row per cell) changes nothing the rollup publishes.
        connector.compact_rollup(self.LABEL, sink, [], "run-1")
        assert connector.rollup_cells(self.LABEL, sink) == cells

    def test_counts_many_people_exactly(
        self, make_store: Callable[[list[Record]], ConformanceFixture]
    ) -> None:
        """A rollup whose people are kept exactly (``exact_people``, for differential
        privacy) counts a cell of 600 people (some with two records) exactly, across
        chunks, after compaction, and after one more person on another night: one more."""
        crowd, start = 600, datetime(2024, 1, 2, tzinfo=UTC)
        records = [
            Record(start + timedelta(minutes=30 * i), f"person {i % crowd:03d}", "crowd")
            for i in range(crowd + 40)
        ]
        records.append(Record(datetime(2024, 1, 25, tzinfo=UTC), "newcomer", "crowd"))
        store = make_store(records)
        sink = RollupSink(
            "people",
            "month",
            (store.group,),
            min_cell_size=1,
            subject=store.text,
            people_key=PeopleKey.from_secret(b"conformance: exact people"),
            exact_people=True,
        )
        first_night = replace(self.selection(store), cutoff=datetime(2024, 1, 20, tzinfo=UTC))
        connector = store.open(False)
        try:
            rows, _ = self.run(
                connector, first_night, "aggregate_then_delete", limit=160, rollups=(sink,)
            )
            assert rows == crowd + 40
            assert [c.subjects for c in connector.rollup_cells(self.LABEL, sink)] == [crowd]
            connector.compact_rollup(self.LABEL, sink, [], "run-1")
            assert [c.subjects for c in connector.rollup_cells(self.LABEL, sink)] == [crowd]
            self.run(
                connector,
                self.selection(store),
                "aggregate_then_delete",
                run_id="run-2",
                limit=160,
                rollups=(sink,),
            )
            assert [c.subjects for c in connector.rollup_cells(self.LABEL, sink)] == [crowd + 1]
            connector.compact_rollup(self.LABEL, sink, [start.date().replace(day=1)], "run-3")
            (sealed,) = connector.rollup_cells(self.LABEL, sink)
            assert (sealed.count, sealed.subjects) == (crowd + 41, crowd + 1)
        finally:
            connector.close()

    # one person's records (ExpirySelection.only, every_row)

    @pytest.mark.parametrize("kind", PERSON_KINDS)
    def test_only_counts_and_reads_one_persons_records(
        self, connector: Connector, store: ConformanceFixture, kind: str
    ) -> None:
        """Only the person's records are counted (in ``total`` too) and read; the
        clock and the hold judge them as they judge every record."""
        selection, mine = self.person(connector, store, kind)
        counts = connector.count_expiry(selection)
        assert (counts.total, counts.expired, counts.held) == (
            len(mine),
            len(_expired(mine, held=False)),
            len(_expired(mine, held=True)),
        )
        assert counts.held_by == {"hold": counts.held} and counts.skipped == {}
        got = [row[0] for chunk in connector.read_rows(selection, [store.text], 2) for row in chunk]
        assert sorted(got) == sorted(r.text for r in _expired(mine, held=False))

    @pytest.mark.parametrize("kind", PERSON_KINDS)
    def test_every_row_takes_all_of_a_persons_records_whatever_their_clock(
        self, connector: Connector, store: ConformanceFixture, kind: str
    ) -> None:
        """With ``every_row`` the clock is not read: a cut-off no record passes, or a
        clock field that holds no timestamp at all, still takes every record of the
        person but those a hold keeps; none is unreadable."""
        selection, mine = self.person(connector, store, kind, every_row=True)
        unread = replace(
            selection, clock_column=store.text, cutoff=datetime(1900, 1, 1, tzinfo=UTC)
        )
        for judged in (selection, unread):
            counts = connector.count_expiry(judged)
            held = [r for r in mine if r.group == "held"]
            assert (counts.total, counts.expired, counts.held) == (
                len(mine),
                len(mine) - len(held),
                len(held),
            )
            assert (counts.unreadable, counts.no_event) == (0, 0)
            got = [
                row[0] for chunk in connector.read_rows(judged, [store.text], 3) for row in chunk
            ]
            assert sorted(got) == sorted(r.text for r in mine if r not in held)

    @pytest.mark.parametrize("kind", ["eq", "two filters"])
    def test_deletes_one_persons_records_and_no_one_elses(
        self, connector: Connector, store: ConformanceFixture, kind: str
    ) -> None:
        records = suite_records()
        selection, mine = self.person(connector, store, kind, every_row=True)
        rows, chunks = self.run(connector, selection, "delete", limit=2)
        gone = [r for r in mine if r.group != "held"]  # the held ones stay
        assert rows == len(gone) and chunks >= 2
        assert sorted(self.texts(connector, store)) == sorted(
            r.text for r in records if r not in gone
        )
        assert sum(e.rows for e in connector.journal("run-1")) == len(gone)
        assert self.run(connector, selection, "delete", run_id="run-2") == (0, 0)
        counts = connector.count_expiry(selection)
        assert (counts.total, counts.expired) == (len(mine) - len(gone), 0)

    @pytest.mark.parametrize("every_row", [False, True])
    def test_anonymizes_one_persons_records_once(
        self, connector: Connector, store: ConformanceFixture, every_row: bool
    ) -> None:
        records = suite_records()
        rewrite = ColumnRewrite(
            store.text, transform=lambda s: s.map(lambda v: f"redacted {len(v)}")
        )
        selection, mine = self.person(connector, store, "in", every_row=every_row, mark=True)
        selection = replace(selection, keep_referenced=False)
        rows, _ = self.run(connector, selection, "anonymize", rewrites=(rewrite,))
        changed = [r for r in (mine if every_row else _expired(mine)) if r.group != "held"]
        assert rows == len(changed) > 0
        expected = sorted(f"redacted {len(r.text)}" if r in changed else r.text for r in records)
        assert sorted(self.texts(connector, store)) == expected
        again = self.run(connector, selection, "anonymize", run_id="run-2", rewrites=(rewrite,))
        assert again == (0, 0)
        assert connector.count_expiry(selection).expired == 0  # marked: done

    def test_aggregates_then_deletes_one_persons_records(
        self, connector: Connector, store: ConformanceFixture
    ) -> None:
        records = suite_records()
        selection, mine = self.person(connector, store, "two filters", every_row=True)
        selection = replace(selection, exclusions=())
        sink = RollupSink("by_group", "month", (store.group,), min_cell_size=1)
        rows, _ = self.run(connector, selection, "aggregate_then_delete", rollups=(sink,))
        assert rows == len(mine)
        assert sorted(self.texts(connector, store)) == sorted(
            r.text for r in records if r not in mine
        )
        cells = connector.rollup_cells(self.LABEL, sink)
        counted = {
            (c.period_start.isoformat()[:7], c.dimensions[store.group]): c.count for c in cells
        }
        expected: dict[tuple[str, str], int] = {}
        for r in mine:
            cell = (r.clock.strftime("%Y-%m"), r.group)
            expected[cell] = expected.get(cell, 0) + 1
        assert counted == expected

    # crashes

    def test_a_crash_between_chunks_loses_nothing(self, store: ConformanceFixture) -> None:
        records = suite_records()
        first = store.open(False)
        done, chunks = self.run(first, self.selection(store, hold=True), "delete", stop_after=1)
        assert chunks == 1 and 0 < done < len(_expired(records, held=False))
        # the process dies here: the connector is never closed; a new one takes over
        second = store.open(False)
        rest, _ = self.run(second, self.selection(store, hold=True), "delete", run_id="run-2")
        assert done + rest == len(_expired(records, held=False))
        kept = sorted(r.text for r in records if r not in _expired(records, held=False))
        assert sorted(self.texts(second, store)) == kept
        journaled = sum(e.rows for run in ("run-1", "run-2") for e in second.journal(run))
        assert journaled == done + rest
        assert second.journal_runs() == ["run-1", "run-2"]  # a lost ledger is rebuilt from these
        second.close()

    @requires(
        "a transactional store rolls a failed chunk back (tested elsewhere)", transactions=False
    )
    def test_a_crash_inside_a_chunk_is_undone_or_finished(
        self, store: ConformanceFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The store fails while changing a chunk; afterwards each record is deleted
        and counted exactly once."""
        records = suite_records()
        sink = RollupSink("by_group", "month", (store.group,), min_cell_size=1)
        first = store.open(False)
        crash = self.crash_inside_chunk(first, monkeypatch)
        with pytest.raises(Exception, match="simulated crash"):
            self.run(first, self.selection(store), "aggregate_then_delete", rollups=(sink,))
        crash.undo()
        second = store.open(False)
        self.run(
            second, self.selection(store), "aggregate_then_delete", run_id="run-2", rollups=(sink,)
        )
        gone = _expired(records)
        assert sorted(self.texts(second, store)) == sorted(r.text for r in records if r not in gone)
        cells = second.rollup_cells(self.LABEL, sink)
        assert sum(c.count for c in cells) == len(gone)
        journaled = sum(e.rows for run in ("run-1", "run-2") for e in second.journal(run))
        assert journaled == len(gone)
        second.close()

    def crash_inside_chunk(self, connector: Connector, monkeypatch: pytest.MonkeyPatch) -> Any:
        """Make the connector fail half-way through its first chunk's change; returns
        an object whose ``undo()`` lets later connectors work again. Overridden by
        connectors whose store-level write is elsewhere."""
        if not isinstance(connector, RecordConnector):
            raise NotImplementedError(
                f"{type(self).__name__}: a connector without transactions that is not a "
                "RecordConnector overrides crash_inside_chunk"
            )
        store = connector.store

        real = store.delete

        def failing(collection: str, keys: Any) -> int:
            """Finish the first half of the chunk's units (each unit is atomic in a
            real store, so a crash never leaves one half-changed), then die."""
            described = store.describe(collection)
            assert described is not None
            width = described.unit or len(described.key)
            units = list(dict.fromkeys(tuple(key[:width]) for key in keys))
            finished = set(units[: len(units) // 2])
            real(collection, [key for key in keys if tuple(key[:width]) in finished])
            raise RuntimeError("simulated crash")

        monkeypatch.setattr(store, "delete", failing)

        class Undo:
            def undo(self) -> None:
                monkeypatch.setattr(store, "delete", real)

        return Undo()

    # bad input

    def test_bad_input_is_a_clear_store_error(
        self, connector: Connector, store: ConformanceFixture
    ) -> None:
        with pytest.raises(StoreError) as missing:
            connector.count_expiry(
                ExpirySelection(
                    "no_such_collection", store.clock, CUTOFF, store.schema, primary_key=store.key
                )
            )
        assert "no_such_collection" in str(missing.value)
        assert len(str(missing.value).splitlines()) == 1
        with pytest.raises(StoreError):
            connector.sample_values(store.collection, ["no_such_field"], 3, store.schema)
