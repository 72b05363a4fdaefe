"""File formats as classes (issue 14, item 5).

The files store read CSV, JSON lines and Parquet by switching on the format's name in seven
places. Each format is now a class (``detect``, ``sample``, ``infer``, ``read``,
``rewrite``) found in a registry, ``connectors.files.formats.FORMATS``: every built-in one
round-trips through it, and a format added to it at run time is read, counted and
rewritten by the store and by a nightly run, with nothing else changed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from connectors.errors import StoreError
from connectors.files.connector import FilesStore
from connectors.files.formats import (
    FORMATS,
    SAMPLE_ROWS,
    Csv,
    FileFormat,
    FileFormats,
    JsonLines,
    Parquet,
    Rewrite,
    Sample,
    convert,
    infer_text,
    to_json,
    to_text,
)
from connectors.protocol import ColumnInfo
from flows.cli import app
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions

# --- every built-in format round-trips through the registry ------------------------------------

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(',"\n'),
    max_size=8,
).map(lambda s: "x-" + s)  # never read as a number, a boolean or a date
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "integer": st.integers(-(10**15), 10**15),
    "numeric": st.integers(-(10**6), 10**6).map(lambda i: i / 4),  # exact in binary
    "boolean": st.booleans(),
    "date": st.dates(date(1900, 1, 1), date(2200, 12, 31)),
    "datetime": st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1)),
    "aware": st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
    "text": TEXT,
}
#: The family (and time-zone awareness) each column is read as, whatever its format.
FAMILIES = {
    "id": ("integer", False),
    "note": ("text", False),
    "integer": ("integer", False),
    "numeric": ("numeric", False),
    "boolean": ("boolean", False),
    "date": ("date", False),
    "datetime": ("datetime", False),
    "aware": ("datetime", True),
    "text": ("text", False),
}
ARROW = {
    "id": pa.int64(),
    "note": pa.string(),
    "integer": pa.int64(),
    "numeric": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us"),
    "aware": pa.timestamp("us", tz="UTC"),
    "text": pa.string(),
}
Columns = dict[str, list[Any]]


@st.composite
def frames(draw: st.DrawFn) -> Columns:
    """A few records: a unique ``id``, a ``note``, and up to four columns of other
    families; the first record has every value, the others may lack some."""
    count = draw(st.integers(1, 12))
    data: Columns = {
        "id": list(range(count)),
        "note": draw(st.lists(TEXT, min_size=count, max_size=count)),
    }
    for family in draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=4, unique=True)):
        rest = st.lists(st.none() | VALUES[family], min_size=count - 1, max_size=count - 1)
        data[family] = [draw(VALUES[family]), *draw(rest)]
    return data


def encode(name: str, data: Columns) -> bytes:
    """The records as a file of the format ``name``, written without Tenure's help."""
    columns, count = list(data), len(data["id"])
    records = [{c: data[c][i] for c in columns} for i in range(count)]
    if name == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([to_text(r[c]) for c in columns] for r in records)
        return out.getvalue().encode()
    if name == "jsonl":
        lines = (
            "{" + ", ".join(f"{json.dumps(c)}: {to_json(r[c])}" for c in columns) + "}\n"
            for r in records
        )
        return "".join(lines).encode()
    schema = pa.schema([(c, ARROW[c]) for c in columns])
    out_bytes = io.BytesIO()
    pq.write_table(pa.table(data, schema=schema), out_bytes)
    return out_bytes.getvalue()


def values(frames: Iterator[pd.DataFrame], columns: Sequence[str]) -> Columns:
    """What ``read`` gave, column by column, nulls as None."""
    read = list(frames)
    whole = pd.concat(read, ignore_index=True) if read else pd.DataFrame(columns=list(columns))
    return {c: [None if pd.isna(v) else v for v in whole[c].astype(object)] for c in columns}


@pytest.mark.parametrize(
    ("name", "suffix"), [("csv", ".csv"), ("jsonl", ".ndjson"), ("parquet", ".parquet")]
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=frames(), chunk=st.integers(1, 5), change=st.data())
def test_each_format_round_trips_through_the_registry(
    name: str, suffix: str, data: Columns, chunk: int, change: st.DataObject
) -> None:
    content = encode(name, data)
    detected = FORMATS.detect(f"part-0{suffix}")
    assert detected is not None
    fmt, compression = detected
    assert (fmt.name, compression) == (name, None) and fmt is FORMATS.get(name)

    columns = fmt.infer([fmt.sample(io.BytesIO(content))])
    assert list(columns) == list(data)
    assert {c: (i.family, i.timezone_aware) for c, i in columns.items()} == {
        c: FAMILIES[c] for c in data
    }
    read = list(fmt.read(io.BytesIO(content), list(columns.values()), chunk))
    assert all(len(frame) <= chunk for frame in read)
    assert values(iter(read), list(data)) == data
    assert fmt.rows(io.BytesIO(content)) == len(data["id"])

    count = len(data["id"])
    drop = change.draw(st.sets(st.integers(1, count - 1)) if count > 1 else st.just(set[int]()))
    notes = change.draw(st.dictionaries(st.integers(0, count - 1), TEXT))
    rewrite = Rewrite(drop=set(drop), updates={p: {"note": v} for p, v in notes.items()})
    out = io.BytesIO()
    fmt.rewrite(io.BytesIO(content), out, rewrite)
    assert (rewrite.touched, rewrite.kept) == (len(drop | set(notes)), count - len(drop))

    expected = {c: [v for i, v in enumerate(vs) if i not in drop] for c, vs in data.items()}
    expected["note"] = [notes.get(i, v) for i, v in enumerate(data["note"]) if i not in drop]
    again = FORMATS.detect(f"part-0{suffix}")
    assert again is not None and again[0] is fmt
    rewritten = out.getvalue()
    assert fmt.infer([fmt.sample(io.BytesIO(rewritten))]) == columns
    assert (
        values(fmt.read(io.BytesIO(rewritten), list(columns.values()), chunk), list(data))
        == expected
    )


def test_the_registry_knows_files_by_suffix_and_compression() -> None:
    csv_, jsonl, parquet = (FORMATS.get(n) for n in ("csv", "jsonl", "parquet"))
    assert FORMATS.names == ("csv", "jsonl", "parquet")
    assert FORMATS.detect("a.CSV") == (csv_, None)
    assert FORMATS.detect("a.csv.gz") == (csv_, "gzip")
    assert FORMATS.detect("a.ndjson.xz") == (jsonl, "xz")
    assert FORMATS.detect("a.jsonl.bz2") == (jsonl, "bz2")
    assert FORMATS.detect("a.parquet") == (parquet, None)
    assert FORMATS.detect("a.parquet.gz") is None  # Parquet compresses inside the file
    assert FORMATS.detect("a.log") is None
    assert FORMATS.detect("a.log.gz", forced=jsonl) == (jsonl, "gzip")
    assert FORMATS.get("xml") is None and FORMATS.get(("csv",)) is None
    assert FORMATS.unknown() == (
        "not a .csv, .jsonl, .ndjson or .parquet file (optionally .gz, .bz2, .xz); "
        "set ?format= to read it as one"
    )


class OtherJson(JsonLines):
    name = "other"


def test_a_name_or_a_suffix_is_registered_once() -> None:
    formats = FileFormats([Csv(), JsonLines()])
    with pytest.raises(ValueError, match="'csv' is registered already"):
        formats.add(Csv())
    with pytest.raises(ValueError, match=r"suffix '\.jsonl' is registered already"):
        formats.add(OtherJson())
    formats.add(Parquet())
    assert formats.names == ("csv", "jsonl", "parquet") and FORMATS.names == formats.names
    assert formats.remove("jsonl").name == "jsonl"
    assert [f.name for f in formats] == ["csv", "parquet"]
    assert formats.detect("a.jsonl") is None and FORMATS.detect("a.jsonl") is not None


# --- a format added at run time ---------------------------------------------------------------


class Tsv:
    """Tab-separated values, as a format of one's own is written: its text typed by the
    CSV rules (``infer_text``, ``convert``), a header line, no quoting."""

    name = "tsv"
    title = "TSV"
    suffixes = (".tsv",)
    counts_rows = False

    def detect(self, name: str, compression: str | None) -> bool:
        return name.endswith(self.suffixes)

    def sample(self, opened: IO[bytes]) -> Sample:
        header, rows = _lines(opened)
        return Sample(
            values={c: [r[i] for r in rows[:SAMPLE_ROWS] if r[i]] for i, c in enumerate(header)}
        )

    def infer(self, samples: Sequence[Sample]) -> dict[str, ColumnInfo]:
        pooled: dict[str, list[Any]] = {}
        for sample in samples:
            for name, found in sample.values.items():
                pooled.setdefault(name, []).extend(found)
        return {name: infer_text(name, found) for name, found in pooled.items()}

    def read(
        self, opened: IO[bytes], columns: Sequence[ColumnInfo], chunk_size: int
    ) -> Iterator[pd.DataFrame]:
        header, rows = _lines(opened)
        for start in range(0, len(rows), chunk_size):
            part = rows[start : start + chunk_size]
            raw = {c.name: [r[header.index(c.name)] or None for r in part] for c in columns}
            typed = {c.name: convert(pd.Series(raw[c.name], dtype=object), c) for c in columns}
            yield pd.DataFrame(typed, index=pd.RangeIndex(len(part)))

    def rows(self, opened: IO[bytes]) -> int:
        return len(_lines(opened)[1])

    def rewrite(self, opened: IO[bytes], out: IO[bytes], change: Rewrite) -> None:
        header, rows = _lines(opened)
        lines = ["\t".join(header)]
        for position, row in enumerate(rows):
            fields = change.updates.get(position)
            if fields is not None or position in change.drop:
                change.touched += 1
            if position in change.drop:
                continue
            for field, value in (fields or {}).items():
                row[header.index(field)] = to_text(value)
            lines.append("\t".join(row))
            change.kept += 1
        out.write(("\n".join(lines) + "\n").encode())


def _lines(opened: IO[bytes]) -> tuple[list[str], list[list[str]]]:
    lines = opened.read().decode().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


NOW = datetime(2026, 11, 1, tzinfo=UTC)
TSV = "at\tamount\taccount\n" + "".join(
    f"{year}-03-01T09:30:00Z\t{amount}\t{amount % 7}\n"
    for amount, year in enumerate([2020, 2026, 2021, 2026, 2019])
)


@pytest.fixture
def tsv_registered() -> Iterator[FileFormat]:
    """``Tsv`` in the registry every files store reads by, for one test."""
    added = Tsv()
    FORMATS.add(added)
    try:
        yield added
    finally:
        FORMATS.remove(added.name)


def test_a_format_added_at_run_time_is_read_and_rewritten_by_the_store(
    tmp_path: Path, tsv_registered: FileFormat
) -> None:
    (tmp_path / "events" / "day=2026-03-01").mkdir(parents=True)
    path = tmp_path / "events" / "day=2026-03-01" / "part-0.tsv"
    path.write_text(TSV)
    store = FilesStore("logs", f"files:///{tmp_path}", read_only=False)
    described = store.describe("events")
    assert described is not None
    assert {n: f.family for n, f in described.fields.items()} == {
        "source_file": "text",
        "row_number": "integer",
        "day": "date",
        "at": "datetime",
        "amount": "integer",
        "account": "integer",
    }
    scanned = pd.concat(store.scan("events", ["at", "amount"], 2), ignore_index=True)
    assert scanned["amount"].tolist() == [0, 1, 2, 3, 4]
    assert scanned["at"][4] == pd.Timestamp("2019-03-01T09:30:00Z")
    assert [p.records for p in store.partitions("events")] == [None]  # TSV counts by reading
    assert store.delete("events", [("day=2026-03-01/part-0.tsv", 0)]) == 1
    values = pd.DataFrame({"account": [None]})
    assert store.update("events", [("day=2026-03-01/part-0.tsv", 1)], values) == 1
    assert path.read_text().splitlines()[1:3] == [
        "2026-03-01T09:30:00Z\t1\t1",
        "2021-03-01T09:30:00Z\t2\t",
    ]
    assert not list(path.parent.glob(".*tenure-tmp"))
    forced = FilesStore("logs", f"files:///{tmp_path}?format=tsv")
    assert forced.describe("events") is not None


def test_without_the_format_its_files_are_refused_naming_what_is_known(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "part-0.tsv").write_text(TSV)
    with pytest.raises(StoreError, match=r"format must be one of csv, jsonl, parquet$"):
        FilesStore("logs", f"files:///{tmp_path}?format=tsv")
    with pytest.raises(StoreError, match=r"events/part-0.tsv: not a \.csv, \.jsonl, \.ndjson or"):
        FilesStore("logs", f"files:///{tmp_path}").describe("events")
    own = FORMATS.copy()
    own.add(Tsv())
    assert FilesStore("logs", f"files:///{tmp_path}", formats=own).describe("events") is not None
    with pytest.raises(StoreError, match=r"not a \.csv, \.jsonl, \.ndjson, \.parquet or \.tsv"):
        (tmp_path / "events" / "part-1.txt").write_text(TSV)
        FilesStore("logs", f"files:///{tmp_path}", formats=own).describe("events")


POLICY = """version: 1
name: tsv
timezone: UTC
scan: {{on_coverage_gap: warn}}
categories:
  usage.amount: {{description: An amount, identifier: none}}
purposes:
  security:
    {{description: Fraud., legal_basis: legitimate_interest,
      min_retention: 6 months, max_retention: 2 years}}
stores:
  logs: 'files:///{root}'
datasets:
  - name: events
    store: logs
    table: events
    purpose: security
    primary_key: [source_file, row_number]
    subject_key: account
    columns: {{amount: usage.amount}}
    clock: {{column: at}}
    retention: 1 year
    action: delete
"""


def test_a_format_added_at_run_time_is_used_by_plan_and_the_nightly_run(
    tmp_path: Path, tsv_registered: FileFormat
) -> None:
    root = tmp_path / "logs"
    (root / "events").mkdir(parents=True)
    (root / "events" / "part-0.tsv").write_text(TSV)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(root=root))

    planned = CliRunner().invoke(app, ["plan", str(policy), "--json", "--now", NOW.isoformat()])
    assert planned.exit_code == 0, planned.output
    [events] = json.loads(planned.stdout)["datasets"]
    assert (events["dataset"], events["expired"]) == ("events", 3)

    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    report = run_policy(policy, RunOptions(now=NOW, state_url=state, coverage_gate=False))
    assert not report.failed, [(o.dataset, o.error) for o in report.outcomes]
    assert [o.processed for o in report.outcomes] == [3]
    kept = (root / "events" / "part-0.tsv").read_text().splitlines()
    assert [line.split("\t")[1] for line in kept[1:]] == ["1", "3"]
