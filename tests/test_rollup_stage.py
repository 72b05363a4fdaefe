"""A chunk's rollup cells are staged as one payload, committed with its deletion.

Writing one row per chunk and cell made aggregate-then-delete write about as many rollup
rows as it deleted rows. Each chunk now writes its cells of a rollup as one payload
(a few rows of ``tenure_stage``), and the release's compaction folds them into one
partial row per cell. What a rollup publishes must not depend on where its cells are
waiting: in the stage, in the rollup's table, or both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.types import NullType, TypeEngine

from connectors.protocol import (
    Connector,
    ConnectorOptions,
    ExpirySelection,
)
from connectors.registry import open_connector
from connectors.sql import bookkeeping
from connectors.sql.bookkeeping import STAGE, rollup_table_name
from connectors.values import bytes_frame, frame_bytes
from tests.support.rollups import aggregate_chunks, views_by_feature

LABEL = "clicks"
SINK = views_by_feature(b"a test key for the rollup stage", min_cell_size=1)
START = datetime(2024, 1, 1, tzinfo=UTC)
CUTOFF = datetime(2024, 4, 1, tzinfo=UTC)
ROWS = 600


def _clicks() -> list[dict[str, Any]]:
    """Every 4 hours from January: three months expire, the rest of the rows stay."""
    features = ["search", "cart", "checkout", "profile"]
    return [
        {
            "id": i + 1,
            "occurred_at": START + timedelta(hours=4 * i),
            "feature": features[i % 4],
            "visitor": f"v{(i * 7) % 53}",
            "ms": (i * 37) % 900,
        }
        for i in range(ROWS)
    ]


def _table(feature: TypeEngine[Any] | None = None) -> Table:
    return Table(
        LABEL,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("feature", String(20) if feature is None else feature),
        Column("visitor", String(20), nullable=False),
        Column("ms", Integer, nullable=False),
    )


def _store(url: str, rows: list[dict[str, Any]]) -> None:
    table = _table()
    engine = create_engine(url)
    table.create(engine)
    with engine.begin() as connection:
        connection.execute(insert(table), rows)
    engine.dispose()


def _untyped_store(url: str, rows: list[dict[str, Any]]) -> None:
    """The rows in a SQLite table whose ``feature`` column has no type: SQLite keeps each
    value as given, text or number."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                f"CREATE TABLE {LABEL} (id INTEGER PRIMARY KEY, occurred_at DATETIME NOT NULL,"
                " feature, visitor VARCHAR(20) NOT NULL, ms INTEGER NOT NULL)"
            )
        )
        connection.execute(insert(_table(NullType())), rows)
    engine.dispose()


def _open(url: str, tmp_path: Path) -> Connector:
    return open_connector(
        "shop", url, ConnectorOptions(read_only=False, bookkeeping_dir=tmp_path / "books")
    )


def _aggregate(connector: Connector, limit: int = 100, run_id: str = "run-1") -> int:
    """Chunks until nothing is expired: the number of chunks."""
    selection = ExpirySelection(LABEL, "occurred_at", CUTOFF, primary_key=("id",))
    return aggregate_chunks(connector, LABEL, selection, (SINK,), limit, run_id)


def _expected(rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, int, float]]:
    """Each expired cell's (rows, people, sum of ms), from the rows themselves."""
    frame = pd.DataFrame(rows)
    frame = frame[frame["occurred_at"] < CUTOFF]
    frame["month"] = frame["occurred_at"].map(lambda t: t.strftime("%Y-%m"))
    grouped = frame.groupby(["month", frame["feature"].astype(str)])
    return {
        key: (len(group), int(group["visitor"].nunique()), float(group["ms"].sum()))
        for key, group in grouped
    }


def _published(connector: Connector) -> dict[tuple[str, str], tuple[int, int, float]]:
    return {
        (cell.period_start.strftime("%Y-%m"), str(cell.dimensions["feature"])): (
            cell.count,
            int(cell.subjects or 0),
            float(cell.measures["sum_ms"] or 0),
        )
        for cell in connector.rollup_cells(LABEL, SINK)
    }


def _count(url: str, table: str, where: str = "") -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = connection.scalar(select(func.count()).select_from(text(table + where)))
    engine.dispose()
    return int(found or 0)


def test_each_chunk_stages_one_payload_and_compaction_folds_them(
    store_url: str, tmp_path: Path
) -> None:
    rows = _clicks()
    _store(store_url, rows)
    connector = _open(store_url, tmp_path)
    chunks = _aggregate(connector)
    expected = _expected(rows)
    assert chunks >= 4
    # One payload row per chunk (it fits one part), none per cell: the rollup's table is
    # still empty, and its cells are read from the stage.
    assert _count(store_url, STAGE) == chunks
    assert _count(store_url, rollup_table_name(LABEL, SINK.name)) == 0
    assert _published(connector) == expected
    connector.compact_rollup(LABEL, SINK, [], "run-1")
    assert _count(store_url, STAGE) == 0
    assert _count(store_url, rollup_table_name(LABEL, SINK.name)) == len(expected)
    assert _published(connector) == expected
    connector.close()


def test_a_chunk_staged_beside_compacted_cells_adds_to_them(store_url: str, tmp_path: Path) -> None:
    """Cells in the rollup's table (an earlier run, compacted) and in the stage (this
    run's chunks so far) are one rollup; a sealed period keeps its figures."""
    rows = _clicks()
    _store(store_url, rows)
    connector = _open(store_url, tmp_path)
    selection_rows = [r for r in rows if r["occurred_at"] < CUTOFF]
    first_half = {r["id"] for r in selection_rows[: len(selection_rows) // 2]}
    table, engine = _table(), create_engine(store_url)
    with engine.begin() as connection:  # the second half is not expired yet
        connection.execute(
            update(table)
            .where(table.c.id > max(first_half))
            .values(occurred_at=datetime(2030, 1, 1, tzinfo=UTC))
        )
    _aggregate(connector)
    connector.compact_rollup(LABEL, SINK, [], "run-1")
    with engine.begin() as connection:
        for r in selection_rows[len(first_half) :]:
            connection.execute(
                update(table).where(table.c.id == r["id"]).values(occurred_at=r["occurred_at"])
            )
    engine.dispose()
    _aggregate(connector, run_id="run-2")
    assert _count(store_url, STAGE) > 0
    # Rows of both runs, people counted once per cell across the stage and the table.
    assert _published(connector) == _expected(rows)
    connector.compact_rollup(LABEL, SINK, [], "run-2")
    assert _count(store_url, STAGE) == 0
    assert _published(connector) == _expected(rows)
    connector.close()


def test_a_payload_larger_than_a_part_is_cut_and_joined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bookkeeping, "_PART_BYTES", 1000)
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    rows = _clicks()
    _store(url, rows)
    connector = _open(url, tmp_path)
    chunks = _aggregate(connector)
    assert _count(url, STAGE) > 2 * chunks  # several parts per chunk
    assert _published(connector) == _expected(rows)
    connector.compact_rollup(LABEL, SINK, [], "run-1")
    assert _published(connector) == _expected(rows)
    connector.close()


def test_a_dimension_mixing_text_and_numbers_is_written_cell_by_cell(tmp_path: Path) -> None:
    """SQLite keeps what it is given in a column without a type: Arrow cannot put text
    and numbers in one column, so such a chunk's cells go to the rollup's table, one row
    per cell, as before the stage."""
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    rows = _clicks()
    for i, row in enumerate(rows):
        row["feature"] = i % 3 if i % 2 else f"f{i % 3}"
    _untyped_store(url, rows)
    connector = _open(url, tmp_path)
    _aggregate(connector)
    assert _count(url, STAGE) == 0
    assert _count(url, rollup_table_name(LABEL, SINK.name)) > 0
    assert _published(connector) == _expected(rows)
    connector.close()


def test_a_chunk_that_cannot_stage_its_cells_deletes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage is written in the chunk's transaction: when it fails, the chunk's rows
    are still there and no cell counts them."""
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    rows = _clicks()
    _store(url, rows)
    real = bookkeeping.stage_rows
    calls = []

    def failing_second(*args: object) -> list[dict[str, Any]]:
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("the stage is full")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr("connectors.sql.chunks.stage_rows", failing_second)
    connector = _open(url, tmp_path)
    with pytest.raises(Exception, match="the stage is full"):
        _aggregate(connector)
    connector.close()
    left = _count(url, LABEL)
    first_chunk = sum(cell[0] for cell in _published(_open(url, tmp_path)).values())
    assert first_chunk > 0 and left == ROWS - first_chunk
    assert _count(url, STAGE) == 1


@pytest.mark.parametrize("fold", [1, 2, 3])
def test_staged_chunks_merged_a_few_at_a_time_publish_the_same_cells(
    fold: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading or compacting merges the staged chunks every few chunks, so that memory
    holds the cells, not every chunk's; people are still counted once per cell."""
    monkeypatch.setattr(bookkeeping, "_FOLD_CHUNKS", fold)
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    rows = _clicks()
    _store(url, rows)
    connector = _open(url, tmp_path)
    assert _aggregate(connector, limit=60) > 3 * fold
    assert _published(connector) == _expected(rows)
    connector.compact_rollup(LABEL, SINK, [], "run-1")
    assert _count(url, STAGE) == 0
    assert _published(connector) == _expected(rows)
    connector.close()


def test_a_payload_stored_as_parquet_is_read_back() -> None:
    """Frames were stored as Parquet before they were Arrow IPC streams (a crashed
    chunk's intent in a record store's bookkeeping may still hold one)."""
    import io

    frame = pd.DataFrame({"period_start": [START.date()], "n": [3], "hll": [b"\x01abc"]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    for payload in (buffer.getvalue(), frame_bytes(frame)):
        assert bytes_frame(payload).equals(frame)


def test_an_untyped_dimension_keeps_its_values_across_stage_and_table(tmp_path: Path) -> None:
    """A SQLite column without a type holds numbers as numbers: the rollup's column keeps
    them so too, so that a cell compacted in one run and staged in the next is one cell
    (a TEXT column would store 0 as '0', and 0 and '0' would be two cells)."""
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    rows = _clicks()
    for i, row in enumerate(rows):
        row["feature"] = i % 3
    later = [{**r, "occurred_at": datetime(2030, 1, 1, tzinfo=UTC)} for r in rows[150:]]
    _untyped_store(url, rows[:150] + later)
    engine = create_engine(url)
    connector = _open(url, tmp_path)
    _aggregate(connector)
    connector.compact_rollup(LABEL, SINK, [], "run-1")
    table = _table(NullType())
    with engine.begin() as connection:  # the rest expires now
        for r in rows[150:]:
            connection.execute(
                update(table).where(table.c.id == r["id"]).values(occurred_at=r["occurred_at"])
            )
    engine.dispose()
    _aggregate(connector, run_id="run-2")
    assert _count(url, STAGE) > 0
    cells = connector.rollup_cells(LABEL, SINK)
    keys = [(c.period_start, c.dimensions["feature"]) for c in cells]
    assert len(keys) == len(set(keys)) and {type(k[1]) for k in keys} == {int}
    assert _published(connector) == _expected(rows)
    connector.close()
