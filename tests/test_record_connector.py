"""The record-store kit's own promises, on the files store: shifting marks, whole
partitions, and replayed intents that never touch a unit twice."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from connectors.protocol import (
    ChunkWork,
    ColumnRewrite,
    Condition,
    Connector,
    ConnectorOptions,
    ExpirySelection,
    RowFilter,
)
from connectors.records.connector import RecordConnector
from connectors.registry import open_connector

CUTOFF = datetime(2024, 6, 1, tzinfo=UTC)


def write_log(root: Path, days: dict[date, list[dict[str, object]]]) -> None:
    for day, rows in days.items():
        folder = root / "access_log" / f"date={day.isoformat()}"
        folder.mkdir(parents=True)
        with (folder / "part-0.jsonl").open("w") as out:
            for row in rows:
                out.write(json.dumps(row) + "\n")


def opened(root: Path, books: Path) -> RecordConnector:
    connector = open_connector(
        "logs", f"files:///{root}", ConnectorOptions(read_only=False, bookkeeping_dir=books)
    )
    assert isinstance(connector, RecordConnector)
    return connector


def run(connector: Connector, work: ChunkWork) -> tuple[int, int]:
    after, rows, chunks = None, 0, 0
    while True:
        result = connector.execute_chunk(
            ChunkWork(
                work.run_id,
                work.label,
                chunks + 1,
                work.selection,
                after,
                work.limit,
                work.action,
                "UTC",
                work.rewrites,
            )
        )
        if result.last is None:
            return rows, chunks
        rows, chunks, after = rows + result.rows, chunks + 1, result.last


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_marks_follow_records_when_earlier_lines_are_deleted(tmp_path: Path) -> None:
    """One binding anonymizes the first six lines, another then deletes the first two
    lines of the same file: the marks move with the line numbers, so the risk count
    still finds exactly the four anonymized lines left, and a rerun anonymizes nothing."""
    start = datetime(2024, 5, 1, tzinfo=UTC)
    rows = [
        {
            "ts": (start + timedelta(minutes=i)).isoformat(),
            "ip": f"10.0.0.{i}",
            "kind": "bot" if i < 2 else "human",
        }
        for i in range(12)
    ]
    write_log(tmp_path / "logs", {date(2024, 5, 1): rows})
    connector = opened(tmp_path / "logs", tmp_path / "books")
    key = ("source_file", "row_number")
    six_minutes = start + timedelta(minutes=6)
    humans = ExpirySelection("access_log", "ts", six_minutes, primary_key=key, skip_marked="old")
    mask = ColumnRewrite("ip", transform=lambda s: s.map(lambda v: "masked"))
    assert run(
        connector, ChunkWork("run-1", "old", 1, humans, None, 5, "anonymize", rewrites=(mask,))
    ) == (6, 1)
    only_bots = RowFilter("humans", (Condition("kind", "eq", "human"),))
    bots = ExpirySelection("access_log", "ts", CUTOFF, primary_key=key, exclusions=(only_bots,))
    assert run(connector, ChunkWork("run-1", "bots", 1, bots, None, 5, "delete")) == (2, 1)
    path = tmp_path / "logs" / "access_log" / "date=2024-05-01" / "part-0.jsonl"
    assert [row["ip"] for row in lines(path)] == ["masked"] * 4 + [
        f"10.0.0.{i}" for i in range(6, 12)
    ]
    assert connector.count_groups("access_log", ["ip"], "old") == [(("masked",), 4)]
    rerun = ChunkWork("run-2", "old", 1, humans, None, 5, "anonymize", rewrites=(mask,))
    assert run(connector, rerun) == (0, 0)
    connector.close()


def test_whole_partitions_are_dropped_and_counted(tmp_path: Path) -> None:
    days = {
        date(2024, 5, 28) + timedelta(days=d): [{"ts": "x", "n": i} for i in range(d + 1)]
        for d in range(6)
    }
    write_log(tmp_path / "logs", days)
    connector = opened(tmp_path / "logs", tmp_path / "books")
    selection = ExpirySelection(
        "access_log", "date", CUTOFF, primary_key=("source_file", "row_number")
    )
    counts = connector.count_expiry(selection)
    assert (counts.total, counts.expired) == (21, 1 + 2 + 3 + 4)  # May 28-31 are before June 1
    rows, chunks = run(connector, ChunkWork("run-1", "logs", 1, selection, None, 3, "delete"))
    assert (rows, chunks) == (10, 3)
    left = sorted(p.name for p in (tmp_path / "logs" / "access_log").iterdir())
    assert left == ["date=2024-06-01", "date=2024-06-02"]
    assert [e.rows for e in connector.journal("run-1")] == [3, 3, 4]
    connector.close()


def test_a_crash_while_dropping_partitions_is_finished_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = {date(2024, 5, 20) + timedelta(days=d): [{"ts": "x"}] * 2 for d in range(4)}
    write_log(tmp_path / "logs", days)
    selection = ExpirySelection(
        "access_log", "date", CUTOFF, primary_key=("source_file", "row_number")
    )
    first = opened(tmp_path / "logs", tmp_path / "books")
    real = first.store.drop_partitions

    def dies(collection: str, partitions: list[object]) -> None:
        real(collection, partitions[:1])  # type: ignore[arg-type]
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(first.store, "drop_partitions", dies)
    with pytest.raises(RuntimeError):
        run(first, ChunkWork("run-1", "logs", 1, selection, None, 100, "delete"))
    assert len(list((tmp_path / "logs" / "access_log").iterdir())) == 3
    second = opened(tmp_path / "logs", tmp_path / "books")
    assert run(second, ChunkWork("run-2", "logs", 1, selection, None, 100, "delete")) == (8, 1)
    assert not (tmp_path / "logs" / "access_log").exists() or not any(
        (tmp_path / "logs" / "access_log").iterdir()
    )
    assert [(e.chunk_no, e.rows) for e in second.journal("run-2")] == [(1, 8)]
    assert second.journal("run-1") == []
    second.close()


def test_a_replayed_delete_skips_files_rewritten_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Line numbers shift when a file is rewritten: replaying the intent on a file whose
    version changed would delete the wrong lines, so it is skipped."""
    days = {
        date(2024, 5, d): [{"ts": f"2024-05-{d:02d}T00:00:00Z", "n": i} for i in range(4)]
        for d in (1, 2)
    }
    write_log(tmp_path / "logs", days)
    selection = ExpirySelection(
        "access_log", "ts", CUTOFF, primary_key=("source_file", "row_number")
    )
    first = opened(tmp_path / "logs", tmp_path / "books")
    real = first.store.delete

    def dies(collection: str, keys: list[tuple[object, ...]]) -> int:
        real(collection, [k for k in keys if "05-01" in str(k[0])])  # the first file is done
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(first.store, "delete", dies)
    with pytest.raises(RuntimeError):
        run(first, ChunkWork("run-1", "logs", 1, selection, None, 100, "delete"))
    second = opened(tmp_path / "logs", tmp_path / "books")
    assert run(second, ChunkWork("run-2", "logs", 1, selection, None, 100, "delete")) == (8, 1)
    assert not list((tmp_path / "logs" / "access_log").rglob("*.jsonl"))
    second.close()
