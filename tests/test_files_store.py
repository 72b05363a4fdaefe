"""The files store's primitives on CSV, JSON-lines and Parquet folders, local and in memory."""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import connectors.files.atomic as atomic
from connectors.conformance import ConformanceFixture, ConnectorConformance, Record
from connectors.errors import StoreError, StoreUnavailable
from connectors.files.connector import FilesStore
from connectors.protocol import ConnectorOptions
from connectors.records.store import Partition, RecordStore
from connectors.registry import open_connector

FORMATS = ["csv", "jsonl", "parquet"]
COLUMNS = ["ip", "visited_at", "day", "visits", "note"]
SCHEMA = pa.schema(
    [
        ("ip", pa.string()),
        ("visited_at", pa.timestamp("us", tz="UTC")),
        ("day", pa.date32()),
        ("visits", pa.int64()),
        ("note", pa.string()),
    ]
)
Row = dict[str, Any]


def row(ip: str, at: str, visits: int | None, note: str | None) -> Row:
    return {"ip": ip, "visited_at": at, "day": at[:10], "visits": visits, "note": note}


FIRST = [
    row("10.0.0.1", "2024-05-01T10:00:00Z", 1, "café, au lait"),
    row("10.0.0.2", "2024-05-01T11:30:00Z", 2, None),
    row("10.0.0.3", "2024-05-01T23:59:59Z", 3, 'say "hi"'),
]
SECOND = [
    row("10.0.0.4", "2024-05-02T08:00:00Z", None, "007"),
    row("10.0.0.5", "2024-05-02T09:00:00Z", 5, "last"),
]


def encode(fmt: str, rows: list[Row], columns: list[str] = COLUMNS) -> bytes:
    """Rows as a file's bytes: CSV and JSON lines written by hand (so that byte-level
    preservation is tested against text pandas did not write), Parquet by pyarrow."""
    if fmt == "csv":
        out = io.StringIO()
        out.write(",".join(columns) + "\n")
        for r in rows:
            cells = []
            for c in columns:
                value = "" if r.get(c) is None else str(r[c])
                if any(ch in value for ch in ',"\n'):
                    value = '"' + value.replace('"', '""') + '"'
                cells.append(value)
            out.write(",".join(cells) + "\n")
        return out.getvalue().encode()
    if fmt == "jsonl":
        return b"".join(
            (json.dumps({c: r.get(c) for c in columns}, ensure_ascii=False) + "\n").encode()
            for r in rows
        )
    data: dict[str, list[Any]] = {c: [r.get(c) for r in rows] for c in columns}
    if "visited_at" in data:
        data["visited_at"] = [datetime.fromisoformat(v) if v else None for v in data["visited_at"]]
    if "day" in data:
        data["day"] = [date.fromisoformat(v) if v else None for v in data["day"]]
    fields = [
        SCHEMA.field(c) if c in SCHEMA.names else pa.field(c, pa.array(data[c]).type)
        for c in columns
    ]
    out_bytes = io.BytesIO()
    pq.write_table(pa.table(data, schema=pa.schema(fields)), out_bytes, compression="zstd")
    return out_bytes.getvalue()


def put(root: Path, rel: str, content: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def access_log(root: Path, fmt: str) -> tuple[Path, Path]:
    """Two partitions of the ``access_log`` collection, plus files the store must ignore."""
    first = put(root, f"access_log/date=2024-05-01/part-0.{fmt}", encode(fmt, FIRST))
    second = put(root, f"access_log/date=2024-05-02/part-0.{fmt}", encode(fmt, SECOND))
    put(root, "access_log/_SUCCESS", b"")
    put(root, "access_log/.hidden/junk.txt", b"not data")
    put(root, "access_log/date=2024-05-01/.part-9.csv.tenure-tmp", b"half a file")
    put(root, "_bookkeeping/state.sqlite", b"")
    return first, second


def store_for(root: Path, read_only: bool = False) -> FilesStore:
    return FilesStore("logs", f"files:///{root}", read_only=read_only)


def everything(store: RecordStore, collection: str = "access_log", size: int = 100) -> pd.DataFrame:
    described = store.describe(collection)
    assert described is not None
    fields = [f for f in described.fields if f not in described.key]
    frames = list(store.scan(collection, fields, size))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@pytest.fixture(params=FORMATS)
def fmt(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- describe and scan -----------------------------------------------------------------------


def test_describes_fields_partitions_and_key(tmp_path: Path, fmt: str) -> None:
    access_log(tmp_path, fmt)
    (tmp_path / "bad name").mkdir()
    store = store_for(tmp_path)
    store.ping()
    assert store.collections() == ["access_log"]
    described = store.describe("access_log")
    assert described is not None
    assert described.key == ("source_file", "row_number")
    assert (described.unit, described.positional) == (1, True)
    assert described.partition_fields == ("date",)
    families = {name: (c.family, c.timezone_aware) for name, c in described.fields.items()}
    assert families == {
        "source_file": ("text", False),
        "row_number": ("integer", False),
        "date": ("date", False),
        "ip": ("text", False),
        "visited_at": ("datetime", True),
        "day": ("date", False),
        "visits": ("integer", False),
        "note": ("text", False),
    }
    assert store.describe("no_such") is None
    assert store.describe("_bookkeeping") is None
    assert store.describe("../access_log") is None


def test_scans_in_key_order_in_chunks(tmp_path: Path, fmt: str) -> None:
    access_log(tmp_path, fmt)
    store = store_for(tmp_path)
    frames = list(store.scan("access_log", ["visited_at", "day", "visits", "note"], 2))
    assert [len(f) for f in frames] == [2, 2, 1]
    whole = pd.concat(frames, ignore_index=True)
    assert list(whole.columns) == [
        "source_file", "row_number", "date", "visited_at", "day", "visits", "note"
    ]  # fmt: skip
    assert list(zip(whole["source_file"], whole["row_number"], strict=True)) == [
        ("date=2024-05-01/part-0." + fmt, 0),
        ("date=2024-05-01/part-0." + fmt, 1),
        ("date=2024-05-01/part-0." + fmt, 2),
        ("date=2024-05-02/part-0." + fmt, 0),
        ("date=2024-05-02/part-0." + fmt, 1),
    ]
    assert str(whole["visited_at"].dtype) == "datetime64[us, UTC]"
    assert whole["visited_at"][0] == pd.Timestamp("2024-05-01T10:00:00Z")
    assert whole["day"].tolist()[0] == date(2024, 5, 1)
    assert whole["date"].tolist() == [date(2024, 5, 1)] * 3 + [date(2024, 5, 2)] * 2
    assert str(whole["visits"].dtype) == "Int64" and whole["visits"].isna().tolist()[3]
    assert whole["note"].tolist()[3] == "007" and pd.isna(whole["note"][1])
    only = Partition("date=2024-05-02", {"date": date(2024, 5, 2)})
    second = pd.concat(store.scan("access_log", ["ip"], 10, [only]))
    assert second["ip"].tolist() == ["10.0.0.4", "10.0.0.5"]


def test_infers_families_of_text_files() -> None:
    from connectors.files.formats import infer_json, infer_text

    def family(values: list[str]) -> tuple[str, bool]:
        found = infer_text("x", values)
        return found.family, found.timezone_aware

    assert family(["2024-05-01T10:00:00Z", "2024-05-01 10:00:00+02:00"]) == ("datetime", True)
    assert family(["2024-05-01T10:00:00", "2024-05-01 10:00"]) == ("datetime", False)
    assert family(["2024-05-01T10:00:00Z", "2024-05-01T10:00:00"]) == ("text", False)
    assert family(["2024-05-01", "1999-12-31"]) == ("date", False)
    assert family(["2024-13-01"]) == ("text", False)
    assert family(["12", "-3"]) == ("integer", False)
    assert family(["007", "12"]) == ("text", False)
    assert family(["1.5", "2"]) == ("numeric", False)
    assert family(["true", "False"]) == ("boolean", False)
    assert family([]) == ("text", False)
    assert infer_json("x", [1, 2]).family == "integer"
    assert infer_json("x", ["1", "2"]).family == "text"
    assert infer_json("x", [{"a": 1}]).family == "other"


def test_nested_partitions_are_typed_and_counted(tmp_path: Path) -> None:
    for month in ("04", "05"):
        put(tmp_path, f"events/year=2024/month={month}/a.parquet", encode("parquet", FIRST))
    store = store_for(tmp_path)
    described = store.describe("events")
    assert described is not None and described.partition_fields == ("year", "month")
    assert [(p.name, p.values, p.records) for p in store.partitions("events")] == [
        ("year=2024/month=04", {"year": 2024, "month": 4}, 3),
        ("year=2024/month=05", {"year": 2024, "month": 5}, 3),
    ]
    frame = pd.concat(store.scan("events", ["month"], 10))
    assert str(frame["month"].dtype) == "Int64" and frame["month"].tolist() == [4] * 3 + [5] * 3


# --- partitions -------------------------------------------------------------------------------


def test_lists_and_drops_partitions(tmp_path: Path, fmt: str) -> None:
    access_log(tmp_path, fmt)
    store = store_for(tmp_path)
    listed = store.partitions("access_log")
    assert [(p.name, p.values) for p in listed] == [
        ("date=2024-05-01", {"date": date(2024, 5, 1)}),
        ("date=2024-05-02", {"date": date(2024, 5, 2)}),
    ]
    assert [p.records for p in listed] == ([3, 2] if fmt == "parquet" else [None, None])
    leftover = tmp_path / "access_log" / ".date=2024-04-30.tenure-drop"
    put(leftover, "part-0.csv", b"crashed drop")
    store.drop_partitions("access_log", [listed[0], Partition("date=1999-01-01", {})])
    assert not (tmp_path / "access_log" / "date=2024-05-01").exists()
    assert not leftover.exists()
    assert [p.name for p in store.partitions("access_log")] == ["date=2024-05-02"]
    assert everything(store)["ip"].tolist() == ["10.0.0.4", "10.0.0.5"]
    store.drop_partitions("access_log", [listed[0]])  # already gone: ignored
    with pytest.raises(StoreError, match="not a partition"):
        store.drop_partitions("access_log", [Partition("../x=1", {})])


# --- delete and update --------------------------------------------------------------------------


def test_deletes_by_keys(tmp_path: Path, fmt: str) -> None:
    first, second = access_log(tmp_path, fmt)
    store = store_for(tmp_path)
    name = f"date=2024-05-01/part-0.{fmt}"
    deleted = store.delete(
        "access_log", [(name, 1), (name, 9), ("date=2099-01-01/gone.csv", 0), (name, 1)]
    )
    assert deleted == 1
    assert everything(store)["ip"].tolist() == ["10.0.0.1", "10.0.0.3", "10.0.0.4", "10.0.0.5"]
    if fmt != "parquet":
        original = encode(fmt, FIRST).splitlines(keepends=True)
        gone = 2 if fmt == "csv" else 1  # the header is line 0 of a CSV file
        assert (
            first.read_bytes().splitlines(keepends=True) == original[:gone] + original[gone + 1 :]
        )
    else:
        assert pq.read_schema(first).equals(SCHEMA)
        assert pq.ParquetFile(first).metadata.row_group(0).column(0).compression == "ZSTD"
    other = f"date=2024-05-02/part-0.{fmt}"
    assert store.delete("access_log", [(other, 0), (other, 1)]) == 2
    assert not second.exists() and not second.parent.exists()
    assert [p.name for p in store.partitions("access_log")] == ["date=2024-05-01"]


def test_updates_by_keys_keeping_other_bytes(tmp_path: Path, fmt: str) -> None:
    first, _ = access_log(tmp_path, fmt)
    store = store_for(tmp_path)
    name = f"date=2024-05-01/part-0.{fmt}"
    keys = [(name, 0), (name, 2), (name, 7)]
    values = pd.DataFrame({"note": ["redacted", None, "nobody"], "visits": [10, 30, 70]})
    assert store.update("access_log", keys, values) == 2
    after = first.read_bytes()
    scanned = everything(store)
    assert scanned["note"][0] == "redacted" and scanned["note"][1:3].isna().all()
    assert scanned["visits"].tolist()[:3] == [10, 2, 30]
    if fmt == "csv":
        lines = after.decode().splitlines()
        assert lines[0] == "ip,visited_at,day,visits,note"
        assert lines[1] == "10.0.0.1,2024-05-01T10:00:00Z,2024-05-01,10,redacted"
        assert lines[2] == encode(fmt, FIRST).decode().splitlines()[2]
        assert lines[3] == "10.0.0.3,2024-05-01T23:59:59Z,2024-05-01,30,"
    elif fmt == "jsonl":
        lines = after.decode().splitlines()
        assert lines[0] == (
            '{"ip": "10.0.0.1", "visited_at": "2024-05-01T10:00:00Z", "day": "2024-05-01", '
            '"visits": 10, "note": "redacted"}'
        )
        assert lines[1] == encode(fmt, FIRST).decode().splitlines()[1]
    else:
        assert pq.read_schema(first).equals(SCHEMA)
    # a replay after the rewrite completed writes the same values: nothing changes
    assert store.update("access_log", keys, values) == 2
    assert first.read_bytes() == after or fmt == "parquet"
    pd.testing.assert_frame_equal(everything(store), scanned)


def test_updates_typed_values(tmp_path: Path, fmt: str) -> None:
    first, _ = access_log(tmp_path, fmt)
    store = store_for(tmp_path)
    name = f"date=2024-05-01/part-0.{fmt}"
    month = pd.Timestamp("2024-05-01T00:00:00Z")
    values = pd.DataFrame({"visited_at": [month], "day": [date(2024, 5, 1)]})
    assert store.update("access_log", [(name, 1)], values) == 1
    scanned = everything(store)
    assert scanned["visited_at"][1] == month
    if fmt == "csv":
        assert b"10.0.0.2,2024-05-01T00:00:00Z,2024-05-01,2," in first.read_bytes()
    with pytest.raises(StoreError, match="cannot be updated"):
        store.update("access_log", [(name, 0)], pd.DataFrame({"date": [date(2020, 1, 1)]}))


def test_a_crash_while_writing_leaves_the_file_whole(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = access_log(tmp_path, fmt)
    store = store_for(tmp_path)
    before_bytes, before = first.read_bytes(), everything(store)
    monkeypatch.setattr(atomic, "_open_temp", half_then_crash)
    name = f"date=2024-05-01/part-0.{fmt}"
    with pytest.raises((StoreError, OSError), match="disk on fire"):
        store.delete("access_log", [(name, 0)])
    with pytest.raises((StoreError, OSError), match="disk on fire"):
        store.update("access_log", [(name, 0)], pd.DataFrame({"note": ["x"]}))
    assert first.read_bytes() == before_bytes
    assert not list(first.parent.glob(f".part-0.{fmt}.tenure-tmp"))
    pd.testing.assert_frame_equal(everything(store), before)


class HalfThenCrash(io.FileIO):
    """A disk that fails half-way through the first write of a rewrite."""

    def write(self, data: Any) -> int:
        written = super().write(bytes(data)[: max(1, len(data) // 2)])
        self.flush()
        raise OSError(f"disk on fire after {written} bytes")


def half_then_crash(path: str) -> Any:
    return HalfThenCrash(path, "wb")


def test_versions_change_when_a_file_is_rewritten(tmp_path: Path, fmt: str) -> None:
    access_log(tmp_path, fmt)
    store = store_for(tmp_path)
    unit = (f"date=2024-05-01/part-0.{fmt}",)
    before = store.versions("access_log", [unit, ("nope.csv",)])
    assert list(before) == [unit]
    assert store.versions("access_log", [unit]) == before
    store.update("access_log", [(unit[0], 0)], pd.DataFrame({"note": ["café, au lait"]}))
    assert store.versions("access_log", [unit]) != before


# --- other filesystems, formats and options ---------------------------------------------------


@pytest.fixture
def memory_root() -> Iterator[str]:
    root = f"/tenure-test-{uuid.uuid4().hex}"
    yield root
    memory = fsspec.filesystem("memory")
    if memory.exists(root):
        memory.rm(root, recursive=True)


def test_works_on_an_fsspec_memory_filesystem(memory_root: str, fmt: str) -> None:
    memory = fsspec.filesystem("memory")
    memory.pipe(f"{memory_root}/access_log/date=2024-05-01/part-0.{fmt}", encode(fmt, FIRST))
    memory.pipe(f"{memory_root}/access_log/date=2024-05-02/part-0.{fmt}", encode(fmt, SECOND))
    store = FilesStore("mem", f"files+memory://{memory_root}", read_only=False)
    store.ping()
    assert store.collections() == ["access_log"]
    assert [len(f) for f in store.scan("access_log", ["ip"], 4)] == [4, 1]
    name = f"date=2024-05-01/part-0.{fmt}"
    version = store.versions("access_log", [(name,)])
    assert store.delete("access_log", [(name, 0)]) == 1
    assert store.versions("access_log", [(name,)]) != version
    assert store.update("access_log", [(name, 0)], pd.DataFrame({"note": ["changed"]})) == 1
    scanned = everything(store)
    assert scanned["ip"].tolist() == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]
    assert scanned["note"].tolist()[0] == "changed"
    store.drop_partitions("access_log", store.partitions("access_log")[1:])
    assert everything(store)["ip"].tolist() == ["10.0.0.2", "10.0.0.3"]


def test_a_crash_on_another_filesystem_leaves_the_object_whole(
    memory_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = fsspec.filesystem("memory")
    path = f"{memory_root}/access_log/part-0.csv"
    memory.pipe(path, encode("csv", FIRST))
    store = FilesStore("mem", f"files+memory://{memory_root}", read_only=False)
    monkeypatch.setattr(atomic, "_open_temp", half_then_crash)
    with pytest.raises(StoreError, match="disk on fire"):
        store.delete("access_log", [("part-0.csv", 0)])
    assert memory.cat(path) == encode("csv", FIRST)
    assert memory.ls(f"{memory_root}/access_log", detail=False) == [path]


def test_display_url_hides_the_password_and_ping_fails_clearly(tmp_path: Path) -> None:
    store = FilesStore("s", "files+memory://user:s3cret@bucket/none?format=csv")
    assert "s3cret" not in store.display_url and "***" in store.display_url
    with pytest.raises(StoreUnavailable) as missing:
        store.ping()
    assert "s3cret" not in str(missing.value)
    with pytest.raises(StoreUnavailable, match="does not exist"):
        store_for(tmp_path / "nowhere").ping()
    with pytest.raises(StoreError, match="format must be"):
        FilesStore("s", f"files:///{tmp_path}?format=xml")


def test_relative_urls_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access_log(tmp_path / "data", "csv")
    monkeypatch.chdir(tmp_path)
    assert FilesStore("s", "files:///data").collections() == ["access_log"]
    assert FilesStore("s", f"files:///{tmp_path}/data").collections() == ["access_log"]


def test_compressed_and_forced_formats(tmp_path: Path) -> None:
    put(tmp_path, "logs/a.csv.gz", gzip.compress(encode("csv", FIRST)))
    put(tmp_path, "raw/a.log", encode("jsonl", SECOND))
    store = store_for(tmp_path)
    assert everything(store, "logs")["ip"].tolist() == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert store.delete("logs", [("a.csv.gz", 0)]) == 1
    text = gzip.decompress((tmp_path / "logs/a.csv.gz").read_bytes()).decode()
    assert text.splitlines()[1].startswith("10.0.0.2,")
    with pytest.raises(StoreError, match=r"raw/a.log: not a \.csv"):
        store.describe("raw")
    forced = FilesStore("s", f"files:///{tmp_path}?format=jsonl")
    assert everything(forced, "raw")["ip"].tolist() == ["10.0.0.4", "10.0.0.5"]


def test_connector_entry_point(tmp_path: Path) -> None:
    access_log(tmp_path, "csv")
    connector = open_connector(
        "logs", f"files:///{tmp_path}", ConnectorOptions(bookkeeping_dir=tmp_path / "_books")
    )
    assert connector.table_names() == ["access_log"]
    info = connector.table_info("access_log")
    assert info is not None and info.primary_key == ("source_file", "row_number")
    connector.close()


# --- bad input and refusals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "content", "message"),
    [
        (
            "date=2024-05-01/part-0.csv",
            b"a,b,c,d,e\n1,2,3,4,5\n1,2,3,4,5,6,7\n",
            "access_log/date=2024-05-01/part-0.csv: "
            "not valid CSV: line 3: expected 5 fields, saw 7",
        ),
        (
            "part-0.parquet",
            b"PAR1 this is not parquet",
            "access_log/part-0.parquet: not valid Parquet",
        ),
        (
            "part-0.jsonl",
            b'{"a": 1}\n{"a": \n',
            "access_log/part-0.jsonl: not valid JSON lines: line 2",
        ),
        ("part-0.jsonl", b'{"a": 1}\n[1, 2]\n', "line 2: not a JSON object"),
        ("part-0.csv", "a\nn\u00e9\n".encode("latin-1"), "access_log/part-0.csv: not valid CSV"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, rel: str, content: bytes, message: str) -> None:
    put(tmp_path, f"access_log/{rel}", content)
    store = store_for(tmp_path)
    with pytest.raises(StoreError) as error:
        store.describe("access_log")
        list(store.scan("access_log", [], 10))
    assert message in str(error.value)
    assert len(str(error.value).splitlines()) == 1


def test_mixed_formats_and_bad_values_are_named(tmp_path: Path) -> None:
    put(tmp_path, "mixed/a.csv", encode("csv", FIRST))
    put(tmp_path, "mixed/b.jsonl", encode("jsonl", FIRST))
    store = store_for(tmp_path)
    with pytest.raises(StoreError, match=r"mixed/b\.jsonl: JSON lines among CSV files"):
        store.describe("mixed")
    rows = "n\n" + "".join(f"{i}\n" for i in range(1500)) + "oops\n"
    put(tmp_path, "numbers/a.csv", rows.encode())
    with pytest.raises(StoreError, match=r"numbers/a.csv: field n: row_number 1500 is not integer"):
        list(store.scan("numbers", ["n"], 400))


def test_read_only_refuses_to_change_anything(tmp_path: Path, fmt: str) -> None:
    first, _ = access_log(tmp_path, fmt)
    store = store_for(tmp_path, read_only=True)
    before = first.read_bytes()
    name = f"date=2024-05-01/part-0.{fmt}"
    with pytest.raises(StoreError, match="opened read-only"):
        store.delete("access_log", [(name, 0)])
    with pytest.raises(StoreError, match="opened read-only"):
        store.update("access_log", [(name, 0)], pd.DataFrame({"note": ["x"]}))
    with pytest.raises(StoreError, match="opened read-only"):
        store.drop_partitions("access_log", store.partitions("access_log"))
    assert first.read_bytes() == before and first.parent.exists()


# --- a property ---------------------------------------------------------------------------------

TEXT = st.text(alphabet='abz ,"\n\u00e9', min_size=1, max_size=6)
FILE_ROWS = st.lists(st.tuples(TEXT, st.integers(-1000, 1000)), min_size=1, max_size=12)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fmt=st.sampled_from(FORMATS),
    files=st.lists(FILE_ROWS, min_size=1, max_size=3),
    picks=st.data(),
)
def test_delete_then_scan_returns_exactly_the_other_rows(
    fmt: str, files: list[list[tuple[str, int]]], picks: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for number, rows in enumerate(files):
            records = [{"word": w, "n": n} for w, n in rows]
            put(root, f"c/part-{number}.{fmt}", encode(fmt, records, ["word", "n"]))
        store = store_for(root)
        before = pd.concat(store.scan("c", ["word", "n"], 5), ignore_index=True)
        keys = list(zip(before["source_file"], before["row_number"], strict=True))
        chosen = picks.draw(st.lists(st.sampled_from(keys), unique=True) if keys else st.just([]))
        assert store.delete("c", chosen) == len(chosen)
        expected = before[[k not in set(chosen) for k in keys]]
        frames = list(store.scan("c", ["word", "n"], 5))
        after = pd.concat(frames, ignore_index=True) if frames else before.iloc[:0]
        got = list(zip(after["source_file"], after["word"], after["n"], strict=True))
        want = list(zip(expected["source_file"], expected["word"], expected["n"], strict=True))
        assert got == want
        assert all(
            list(group["row_number"]) == list(range(len(group)))
            for _, group in after.groupby("source_file")
        )
        assert not [p for p in os.listdir(root / "c") if p.endswith(".tenure-tmp")]


# --- the conformance suite, on each format --------------------------------------------------------

Make = Callable[[list[Record]], ConformanceFixture]


def conformance_store(tmp_path: Path, fmt: str) -> Make:
    """The suite's records in month partitions of an ``events`` collection."""

    def make(records: list[Record]) -> ConformanceFixture:
        months: dict[str, list[Row]] = {}
        for r in records:
            at = r.clock.astimezone(UTC).isoformat().replace("+00:00", "Z")
            months.setdefault(r.clock.strftime("%Y-%m"), []).append(
                {"happened_at": at, "note": r.text, "team": r.group}
            )
        for month, rows in months.items():
            content = encode(fmt, rows, ["happened_at", "note", "team"])
            if fmt == "parquet":
                data = {
                    "happened_at": [datetime.fromisoformat(r["happened_at"]) for r in rows],
                    "note": [r["note"] for r in rows],
                    "team": [r["team"] for r in rows],
                }
                buffer = io.BytesIO()
                pq.write_table(pa.table(data), buffer)
                content = buffer.getvalue()
            put(tmp_path / "store", f"events/month={month}/part-0.{fmt}", content)
        url = f"files:///{tmp_path / 'store'}"
        return ConformanceFixture(
            open=lambda read_only: open_connector(
                "files",
                url,
                ConnectorOptions(read_only=read_only, bookkeeping_dir=tmp_path / "books"),
            ),
            collection="events",
            key=("source_file", "row_number"),
            clock="happened_at",
            text="note",
            group="team",
        )

    return make


class TestFilesCSV(ConnectorConformance):
    CAPABILITIES = FilesStore.capabilities

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Make:
        return conformance_store(tmp_path, "csv")


class TestFilesJsonLines(ConnectorConformance):
    CAPABILITIES = FilesStore.capabilities

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Make:
        return conformance_store(tmp_path, "jsonl")


class TestFilesParquet(ConnectorConformance):
    CAPABILITIES = FilesStore.capabilities

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Make:
        return conformance_store(tmp_path, "parquet")
