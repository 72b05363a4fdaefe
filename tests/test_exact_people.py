"""The people of a rollup released under differential privacy are counted exactly at any
size (``RollupSink.exact_people``).

The release's noise assumes one person changes a cell's count of people by exactly one.
A HyperLogLog estimate (what a cell's people sketch turns into past 512 people) does not
keep that: one person can move it by 20 or by 0. An exact sink keeps the sorted keyed
hashes at any size, merged byte for byte across chunks and nights; other sinks and other
distinct counts still turn dense past 512.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    inspect,
    select,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

from connectors import sketches
from connectors.protocol import Connector, ConnectorOptions, ExpirySelection, RollupSink
from connectors.registry import open_connector
from connectors.rollups import (
    PEOPLE,
    SEALED,
    SUBJECTS,
    compacted_rows,
    folded,
    merge_cells,
    partial_cells,
)
from connectors.sketches import DENSE, SPARSE, SPARSE_LIMIT, PeopleKey, build, estimate, union
from connectors.sql.bookkeeping import add_missing_columns, rollup_table, rollup_table_name
from flows.binding_operators import keyed_rollup_sinks
from retention_rules.loader import load_policy
from retention_rules.model import AggregateThenDeleteAction
from retention_rules.planner import rollup_sinks
from tests.support.rollups import aggregate_chunks

KEY = PeopleKey.from_secret(b"a test key for exact people")
MONTH = date(2024, 1, 1)
EXACT = RollupSink(
    "active",
    "month",
    ("feature",),
    distinct=("visitor",),
    min_cell_size=1,
    subject="visitor",
    people_key=KEY,
    exact_people=True,
)
ESTIMATED = replace(EXACT, exact_people=False)
CRM_PRO = Path(__file__).resolve().parents[1] / "retention_rules" / "policies" / "crm_pro.yaml"


def visits(sizes: dict[str, int], repeats: int = 2, start: int = 0) -> pd.DataFrame:
    """Rows of each feature's ``sizes[feature]`` distinct visitors, each visitor
    ``repeats`` times, shuffled (a fixed seed); the same visitor may use several features."""
    frames = [
        pd.DataFrame(
            {
                "feature": feature,
                "visitor": [f"visitor{start + i}@example.com" for i in range(count)] * repeats,
            }
        )
        for feature, count in sizes.items()
    ]
    frame = pd.concat(frames, ignore_index=True)
    order = np.random.default_rng(len(frame)).permutation(len(frame))
    return frame.iloc[order].reset_index(drop=True)


def chunk_rows(frame: pd.DataFrame, cuts: list[float], sink: RollupSink) -> pd.DataFrame:
    """Each chunk's cells (`partial_cells`), the rows cut at ``cuts`` (shares of them)."""
    bounds = [0, *sorted(round(cut * len(frame)) for cut in cuts), len(frame)]
    parts = [
        partial_cells(
            frame.iloc[lo:hi], sink, pd.Series([MONTH] * (hi - lo), index=frame.index[lo:hi])
        )
        for lo, hi in itertools.pairwise(bounds)
    ]
    return pd.concat(parts, ignore_index=True)


def people(rows: pd.DataFrame, sink: RollupSink) -> dict[str, int | None]:
    return {str(c.dimensions["feature"]): c.subjects for c in merge_cells(rows, sink)}


# -- The sketches -----------------------------------------------------------------------


def hashes_of(count: int, start: int = 0) -> np.ndarray:
    values = pd.Series([f"customer{i}@example.com" for i in range(start, start + count)])
    return sketches.keyed_hashes(values, np.zeros(count, dtype=np.uint64), KEY)


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(SPARSE_LIMIT - 2, 3_000),
    cuts=st.lists(st.floats(0, 1), max_size=5),
    overlap=st.integers(0, 200),
)
def test_exact_sketches_merge_byte_for_byte_at_any_size(
    count: int, cuts: list[float], overlap: int
) -> None:
    """The union of the sketches of any split (parts sharing people too) is the sketch of
    the whole, byte for byte, and counts exactly: `limit=None` never turns dense."""
    hashes = hashes_of(count)
    whole = build(np.zeros(count, np.int64), hashes, 1, None)[0]
    bounds = [0, *sorted(round(cut * count) for cut in cuts), count]
    parts = [
        build(
            np.zeros(hi - max(lo - overlap, 0), np.int64),
            hashes[max(lo - overlap, 0) : hi],
            1,
            None,
        )[0]
        for lo, hi in itertools.pairwise(bounds)
    ]
    merged = union(parts, np.zeros(len(parts), np.int64), 1, None)[0]
    assert merged == whole
    assert whole[:1] == SPARSE and len(whole) == 1 + 8 * count
    assert estimate([whole]).tolist() == [count]
    # The default limit still turns the same people dense past 512.
    assert build(np.zeros(count, np.int64), hashes, 1)[0][:1] == (
        SPARSE if count <= SPARSE_LIMIT else DENSE
    )


def test_a_large_sparse_sketch_is_read_and_a_limited_union_turns_it_dense() -> None:
    """A rollup whose release left differential privacy keeps working: its stored exact
    sketches are read, and merged under the default limit into registers."""
    exact = build(np.zeros(600, np.int64), hashes_of(600), 1, None)[0]
    assert estimate([exact]).tolist() == [600]
    assert union([exact], np.zeros(1, np.int64), 1) == build(
        np.zeros(600, np.int64), hashes_of(600), 1
    )
    assert union([exact], np.zeros(1, np.int64), 1, None) == [exact]


def test_a_dense_part_keeps_an_exact_union_dense() -> None:
    """Registers cannot be made exact again: a cell stored as HyperLogLog before its
    rollup was counted exactly stays an estimate (never silently "exact")."""
    dense = build(np.zeros(600, np.int64), hashes_of(600), 1)[0]
    small = build(np.zeros(5, np.int64), hashes_of(5, start=600), 1, None)[0]
    assert union([dense, small], np.zeros(2, np.int64), 1, None)[0][:1] == DENSE


@pytest.mark.parametrize("limit", [-1, 1.5, True, "512"])
def test_a_limit_that_is_not_a_count_is_refused(limit: Any) -> None:
    with pytest.raises(ValueError, match="limit must be a count"):
        build(np.zeros(0, np.int64), np.zeros(0, np.uint64), 1, limit)
    with pytest.raises(ValueError, match="limit must be a count"):
        union([SPARSE], np.zeros(1, np.int64), 1, limit)


# -- A rollup's cells ----------------------------------------------------------------


def test_an_exact_sink_counts_thousands_of_people_exactly_across_chunks() -> None:
    """2,150 distinct people over three cells, each person twice, in five chunks."""
    sizes = {"search": 600, "cart": 1_000, "reports": 2_150}
    frame = visits(sizes)
    rows = chunk_rows(frame, [0.1, 0.35, 0.6, 0.8], EXACT)
    assert people(rows, EXACT) == sizes
    assert all(blob[:1] == SPARSE for blob in rows[SUBJECTS])
    # Staged chunks folded into one row per cell: the same sketches, byte for byte, as
    # the cells of all the rows at once.
    whole = partial_cells(frame, EXACT, pd.Series([MONTH] * len(frame), index=frame.index))
    assert folded(rows, EXACT)[SUBJECTS].tolist() == whole[SUBJECTS].tolist()


@settings(max_examples=12, deadline=None)
@given(
    size=st.sampled_from([600, 1_000, 5_000]),
    cuts=st.lists(st.floats(0, 1), max_size=4),
    returning=st.booleans(),
)
def test_one_more_person_adds_exactly_one(size: int, cuts: list[float], returning: bool) -> None:
    """The sensitivity the release's noise assumes: one new person (with any number of
    rows, in any chunk) adds exactly 1 to the cell; a returning one adds 0."""
    frame = visits({"search": size})
    before = people(chunk_rows(frame, cuts, EXACT), EXACT)["search"]
    newcomer = visits({"search": 1}, repeats=3, start=0 if returning else size)
    grown = pd.concat([frame, newcomer], ignore_index=True)
    after = people(chunk_rows(grown, cuts, EXACT), EXACT)["search"]
    assert before == size
    assert after == size + (0 if returning else 1)


def test_an_estimated_sink_still_turns_dense_past_512() -> None:
    """Unchanged for rollups under suppression: registers (4,097 bytes) and an estimate."""
    rows = chunk_rows(visits({"search": 1_000, "cart": 100}), [0.5], ESTIMATED)
    merged = folded(rows, ESTIMATED).set_index("dim_feature")
    assert merged.loc["search", SUBJECTS][:1] == DENSE
    assert len(merged.loc["search", SUBJECTS]) == 1 + sketches.REGISTERS
    assert merged.loc["cart", SUBJECTS][:1] == SPARSE
    counted = people(rows, ESTIMATED)
    assert counted["cart"] == 100
    assert counted["search"] is not None and abs(counted["search"] - 1_000) <= 50


def test_other_distinct_counts_of_an_exact_sink_stay_sketches() -> None:
    """Only the people a release puts noise on are kept exactly: a distinct count of
    another column still turns dense past 512."""
    rows = chunk_rows(visits({"search": 1_000}), [0.5], EXACT)
    merged = folded(rows, EXACT)
    assert merged[SUBJECTS][0][:1] == SPARSE
    assert merged["hll_visitor"][0][:1] == DENSE


def test_sealing_an_exact_cell_keeps_its_exact_count() -> None:
    sizes = {"search": 700, "cart": 1_300}
    rows = pd.DataFrame(
        compacted_rows(chunk_rows(visits(sizes), [0.3, 0.7], EXACT), EXACT, [MONTH], "run-2")
    )
    assert rows[SEALED].tolist() == [True, True]
    assert rows[SUBJECTS].isna().all()
    assert dict(zip(rows["dim_feature"], rows[PEOPLE], strict=True)) == sizes
    assert people(rows, EXACT) == sizes


# -- The policy --------------------------------------------------------------------------


def test_a_rollup_under_differential_privacy_counts_its_people_exactly() -> None:
    """The shipped policy's rollup released with differential privacy, and no other."""
    policy = load_policy(CRM_PRO).policy
    found: dict[str, bool] = {}
    for dataset in policy.datasets:
        action = dataset.action
        if not isinstance(action, AggregateThenDeleteAction):
            continue
        sinks = rollup_sinks(dataset)
        keyed = keyed_rollup_sinks(policy, dataset)
        assert [s.exact_people for s in keyed] == [s.exact_people for s in sinks]
        for rollup, sink in zip(action.rollups, sinks, strict=True):
            dp = action.disclosure(rollup).method == "differential_privacy"
            assert sink.exact_people is dp
            found[rollup.name] = dp
    assert found["monthly_active_customers_by_feature"] is True
    assert found["feature_usage_time"] is False


# -- A SQL store, end to end -------------------------------------------------------------

LABEL = "clicks"
START = datetime(2024, 1, 1, tzinfo=UTC)
SOON = datetime(2024, 1, 20, tzinfo=UTC)
CUTOFF = datetime(2024, 2, 1, tzinfo=UTC)
CROWD = 1_200


def _clicks() -> list[dict[str, Any]]:
    """January's clicks on one feature: 1,200 visitors before the 20th (some twice),
    one new visitor after; February's rows stay."""
    rows = [(START + timedelta(minutes=20 * i), f"v{i % CROWD}") for i in range(1_300)]
    rows.append((datetime(2024, 1, 25, tzinfo=UTC), "newcomer"))
    rows += [(CUTOFF + timedelta(days=i), f"v{i}") for i in range(10)]
    return [
        {"id": i + 1, "occurred_at": at, "feature": "search", "visitor": who}
        for i, (at, who) in enumerate(rows)
    ]


def _store(url: str) -> None:
    table = Table(
        LABEL,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("feature", String(20), nullable=False),
        Column("visitor", String(20), nullable=False),
    )
    engine = create_engine(url)
    table.create(engine)
    with engine.begin() as connection:
        connection.execute(insert(table), _clicks())
    engine.dispose()


def _aggregate(connector: Connector, cutoff: datetime, run_id: str) -> int:
    """Chunks of 250 rows until nothing before ``cutoff`` is left: the number of chunks."""
    selection = ExpirySelection(LABEL, "occurred_at", cutoff, primary_key=("id",))
    return aggregate_chunks(connector, LABEL, selection, (EXACT,), 250, run_id)


def _subjects(connector: Connector) -> int | None:
    (cell,) = connector.rollup_cells(LABEL, EXACT)
    return cell.subjects


def test_a_sql_store_counts_a_large_cell_exactly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    _store(url)
    connector = open_connector(
        "shop", url, ConnectorOptions(read_only=False, bookkeeping_dir=tmp_path / "books")
    )
    try:
        assert _aggregate(connector, SOON, "run-1") > 4
        assert _subjects(connector) == CROWD
        connector.compact_rollup(LABEL, EXACT, [], "run-1")  # one partial row per cell
        engine = create_engine(url)
        table = Table(rollup_table_name(LABEL, EXACT.name), MetaData(), autoload_with=engine)
        with engine.connect() as connection:
            (blob,) = connection.scalars(select(table.c[SUBJECTS])).all()
        engine.dispose()
        assert blob[:1] == SPARSE and len(blob) == 1 + 8 * CROWD
        assert _subjects(connector) == CROWD
        # The next night: one new person, in the same cell.
        _aggregate(connector, CUTOFF, "run-2")
        assert _subjects(connector) == CROWD + 1
        connector.compact_rollup(LABEL, EXACT, [MONTH], "run-3")  # released: sealed
        assert _subjects(connector) == CROWD + 1
    finally:
        connector.close()


def _rollup_table(sink: RollupSink) -> Table:
    types: dict[str, TypeEngine[Any]] = {"feature": String(20)}
    return rollup_table(MetaData(), LABEL, sink, types)


def test_an_exact_sinks_people_column_holds_any_size(tmp_path: Path) -> None:
    """The people column of an exact sink's table is the stage's payload type (LONGBLOB on
    MySQL and MariaDB, whose BLOB stops at 64 KiB)."""
    for sink, wanted in ((EXACT, "LONGBLOB"), (ESTIMATED, "BLOB")):
        table = _rollup_table(sink)
        assert table.c[SUBJECTS].type.compile(dialect=mysql.dialect()) == wanted
    # SQLite: no change to an existing table (its BLOB has no such limit).
    engine = create_engine(f"sqlite:///{tmp_path / 'books.sqlite'}")
    _rollup_table(ESTIMATED).create(engine)
    with engine.begin() as connection:
        add_missing_columns(connection, _rollup_table(EXACT))
        columns = inspect(connection).get_columns(rollup_table_name(LABEL, EXACT.name))
    engine.dispose()
    kinds = {c["name"]: c["type"] for c in columns}
    assert isinstance(kinds[SUBJECTS], LargeBinary)


@pytest.mark.servers
def test_mariadb_widens_an_existing_people_column(mariadb_url: str) -> None:
    """A rollup table written while the rollup was under suppression (BLOB) is widened
    to LONGBLOB once its people are kept exactly, and then holds 10,000 people."""
    engine = create_engine(mariadb_url)
    _rollup_table(ESTIMATED).create(engine)
    wanted = _rollup_table(EXACT)
    big = build(np.zeros(10_000, np.int64), hashes_of(10_000), 1, None)[0]
    try:
        with engine.begin() as connection:
            add_missing_columns(connection, wanted)
            add_missing_columns(connection, wanted)  # once only
            kinds = {c["name"]: c["type"] for c in inspect(connection).get_columns(wanted.name)}
            connection.execute(
                insert(wanted),
                [{"run_id": "r", "chunk_no": 0, "period_start": MONTH, "n": 1, SUBJECTS: big}],
            )
            stored = connection.scalar(select(wanted.c[SUBJECTS]))
    finally:
        engine.dispose()
    assert isinstance(kinds[SUBJECTS], mysql.LONGBLOB)
    assert stored == big and estimate([stored]).tolist() == [10_000]
