"""Reading and rewriting the three file formats of the files store: CSV, JSON lines, Parquet.

Kept apart from ``connectors.files.connector`` (which knows folders, partitions and atomic
replacement)
so that each format's quirks live in one place. Every function here works on one file and
raises ``BadFile`` with a one-line reason; the store adds the file's path and its own name.

CSV and JSON-lines files are read as text and typed here, by one set of rules, so that what
``describe`` infers from a sample is what ``scan`` produces; they are rewritten from their
text, so that a column nobody updated keeps its bytes.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any, Literal

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from connectors.protocol import ColumnInfo, TypeFamily
from connectors.values import plain

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl", "parquet")
EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}
SAMPLE_ROWS = 1000
"""Rows of each CSV or JSON-lines file whose values decide a column's family."""
REWRITE_ROWS = 65_536
"""Rows held in memory at once while a file is rewritten."""

Opener = Callable[[], IO[bytes]]
"""Opens the file for reading, decompressed; the caller's ``with`` closes it."""


class BadFile(Exception):
    """A file that cannot be read or written as its format; the message is one line and
    never quotes a value (values are personal data)."""


def detect(name: str, forced: Format | None) -> tuple[Format, str | None] | None:
    """The format and compression of a file by its name (``x.csv.gz``: csv, gzip), or
    None when the extension is not a known format and none is forced."""
    lowered = name.lower()
    compression = None
    for suffix, codec in COMPRESSIONS.items():
        if lowered.endswith(suffix):
            compression, lowered = codec, lowered[: -len(suffix)]
            break
    if forced is not None:
        return forced, compression
    for suffix, fmt in EXTENSIONS.items():
        if lowered.endswith(suffix) and not (fmt == "parquet" and compression):
            return fmt, compression
    return None


# --- type inference -----------------------------------------------------------------------

_INTEGER = re.compile(r"-?(?:0|[1-9]\d{0,17})")
_FLOAT = re.compile(r"-?(?:(?:0|[1-9]\d*)(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?")
_BOOLEAN = {"true", "false"}
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"
    r"(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?"
)
_TYPE_NAMES: dict[TypeFamily, str] = {
    "integer": "integer",
    "numeric": "float",
    "boolean": "boolean",
    "date": "date",
    "text": "string",
    "other": "mixed",
}


def info(name: str, family: TypeFamily, aware: bool = False, type_name: str = "") -> ColumnInfo:
    if not type_name:
        if family == "datetime":
            type_name = "timestamp with time zone" if aware else "timestamp"
        else:
            type_name = _TYPE_NAMES[family]
    return ColumnInfo(name, family, type_name, nullable=True, timezone_aware=aware)


def _valid_dates(values: Sequence[str]) -> bool:
    try:
        pd.to_datetime(pd.Series(values, dtype=object), format="%Y-%m-%d")
    except (ValueError, OverflowError):
        return False
    return True


def _temporal(name: str, values: Sequence[str]) -> ColumnInfo | None:
    """``date`` when all are ``YYYY-MM-DD``, ``datetime`` when all are ISO-8601 timestamps
    that agree on carrying an offset (aware) or not (naive), else None."""
    if all(DATE.fullmatch(v) for v in values):
        return info(name, "date") if _valid_dates(values) else None
    matches = [_TIMESTAMP.fullmatch(v) for v in values]
    if not all(matches):
        return None
    zoned = {m.group("zone") is not None for m in matches if m is not None}
    if len(zoned) != 1:
        return None  # some with an offset, some without: no honest reading of both
    aware = zoned.pop()
    try:
        pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", utc=aware)
    except (ValueError, OverflowError):
        return None
    return info(name, "datetime", aware)


def infer_text(name: str, values: Sequence[str]) -> ColumnInfo:
    """The family of a CSV column from its sampled non-empty values. Numbers with a leading
    zero or a plus sign (``007``, ``+33...``) stay text: they are codes, not quantities."""
    if not values:
        return info(name, "text")
    if all(_INTEGER.fullmatch(v) for v in values):
        return info(name, "integer")
    if all(_FLOAT.fullmatch(v) for v in values):
        return info(name, "numeric")
    if all(v.lower() in _BOOLEAN for v in values):
        return info(name, "boolean")
    return _temporal(name, values) or info(name, "text")


def infer_json(name: str, values: Sequence[Any]) -> ColumnInfo:
    """The family of a JSON-lines key from its sampled non-null values: JSON's own types,
    and strings read as dates or timestamps when they all are (never as numbers)."""
    if not values:
        return info(name, "text")
    if all(isinstance(v, bool) for v in values):
        return info(name, "boolean")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return info(name, "integer")
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return info(name, "numeric")
    if all(isinstance(v, str) for v in values):
        return _temporal(name, values) or info(name, "text")
    return info(name, "other")


def infer_arrow(name: str, type_: Any) -> ColumnInfo:
    """Parquet types map directly; the Arrow type is the type name."""
    family: TypeFamily = "other"
    aware = False
    if pa.types.is_dictionary(type_):
        type_ = type_.value_type
    if pa.types.is_timestamp(type_):
        family, aware = "datetime", type_.tz is not None
    elif pa.types.is_date(type_):
        family = "date"
    elif pa.types.is_boolean(type_):
        family = "boolean"
    elif pa.types.is_integer(type_):
        family = "integer"
    elif pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        family = "numeric"
    elif pa.types.is_string(type_) or pa.types.is_large_string(type_):
        family = "text"
    return info(name, family, aware, str(type_))


# --- typing values --------------------------------------------------------------------------


def _first_bad(raw: pd.Series, typed: Any) -> int | None:
    """The position of the first value that was present but did not convert."""
    lost = raw.notna().to_numpy() & pd.isna(pd.Series(typed)).to_numpy()
    return int(lost.argmax()) if lost.any() else None


def convert(raw: pd.Series, column: ColumnInfo) -> pd.Series:
    """``raw`` (CSV text or JSON values, null as NaN/None) typed by the column's family:
    datetime64[us] (UTC when aware), ``datetime.date`` objects, Int64, float64, boolean.
    Raises ``ValueError`` carrying the position of the first value that does not fit."""
    family = column.family
    index = raw.index
    raw = raw.reset_index(drop=True)
    typed: Any
    if family == "datetime":
        aware = column.timezone_aware
        text = raw.astype(object).where(raw.map(lambda v: isinstance(v, str)), None)
        try:
            typed = pd.to_datetime(text, format="ISO8601", utc=aware, errors="coerce")
            if not aware and getattr(typed.dt, "tz", None) is not None:
                raise TypeError("offsets in a naive column")
        except (ValueError, TypeError, OverflowError):
            typed = pd.Series([_one_timestamp(v, aware) for v in text], dtype=object)
            typed = pd.to_datetime(typed, utc=aware)
        typed = typed.astype("datetime64[us, UTC]" if aware else "datetime64[us]")
    elif family == "date":
        parsed = pd.to_datetime(
            raw.where(raw.map(lambda v: isinstance(v, str) and bool(DATE.fullmatch(v))), None),
            format="%Y-%m-%d",
            errors="coerce",
        )
        typed = pd.Series([None if pd.isna(v) else v.date() for v in parsed], dtype=object)
    elif family == "integer":
        typed = pd.to_numeric(raw.astype(object), errors="coerce", dtype_backend="numpy_nullable")
        if str(typed.dtype) != "Int64":
            typed = typed.astype("Float64")
            whole = (typed == typed.round()).fillna(False).astype(bool)
            typed = typed.where(whole, pd.NA).astype("Int64")
    elif family == "numeric":
        typed = pd.to_numeric(raw.astype(object), errors="coerce").astype("float64")
    elif family == "boolean":
        typed = pd.array([_boolean(v) for v in raw], dtype="boolean")
    else:
        return raw.set_axis(index)
    bad = _first_bad(raw, typed)
    if bad is not None:
        raise ValueError(bad)
    return pd.Series(typed, name=raw.name).set_axis(index)


def _one_timestamp(value: Any, aware: bool) -> Any:
    """One value, for the rare frame pandas refuses to convert as a whole (offsets in a
    naive column): what does not fit is NaT, and reported."""
    if value is None:
        return pd.NaT
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return pd.NaT
    if (stamp.tzinfo is not None) != aware:
        return pd.NaT
    return stamp.tz_convert("UTC") if aware else stamp


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLEAN:
        return value.lower() == "true"
    return None


def to_text(value: Any) -> str:
    """How an updated value is written into a CSV cell (empty for null)."""
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def to_json(value: Any) -> str:
    """How an updated value is written into a JSON line (text as UTF-8, not escaped)."""
    value = plain(value)
    if isinstance(value, datetime | date):
        value = to_text(value)
    return json.dumps(value, ensure_ascii=False)


# --- CSV --------------------------------------------------------------------------------------

_TOKENIZING = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _csv_error(exc: Exception) -> BadFile:
    if isinstance(exc, UnicodeDecodeError):
        return BadFile("not valid CSV: not UTF-8 text")
    message = str(exc)
    found = _TOKENIZING.search(message)
    if found:
        expected, line, saw = found.groups()
        return BadFile(f"not valid CSV: line {line}: expected {expected} fields, saw {saw}")
    if isinstance(exc, pd.errors.ParserWarning):
        return BadFile("not valid CSV: a row has more fields than the header")
    first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return BadFile(f"not valid CSV: {first}")


def _csv_frames(
    opened: IO[bytes], chunk_size: int | None, as_text: bool, nrows: int | None = None
) -> Iterator[pd.DataFrame]:
    """A CSV file in chunks (one frame when ``chunk_size`` is None), every cell a string:
    empty as NaN for reading, or kept as "" when rewriting (``as_text``) so that the cell is
    written back as it was. More fields than the header is an error, not a silent index."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            options: dict[str, Any] = {
                "dtype": str,
                "keep_default_na": False,
                "na_values": None if as_text else [""],
                "na_filter": not as_text,
                "index_col": False,
                "nrows": nrows,
                "encoding": "utf-8-sig",
            }
            if chunk_size is None:
                yield pd.read_csv(opened, **options)
                return
            with pd.read_csv(opened, chunksize=chunk_size, **options) as reader:
                yield from reader
        except pd.errors.EmptyDataError:
            return
        except (ValueError, pd.errors.ParserWarning, UnicodeDecodeError) as exc:
            raise _csv_error(exc) from None


# --- JSON lines --------------------------------------------------------------------------------


def _json_records(opened: IO[bytes]) -> Iterator[tuple[bytes, dict[str, Any] | None]]:
    """Each line as read (bytes, terminator included) and its object, None for a blank line
    (blank lines are kept on rewrite but are not records)."""
    for number, line in enumerate(opened, start=1):
        if not line.strip():
            yield line, None
            continue
        try:
            record = json.loads(line)
        except UnicodeDecodeError:
            raise BadFile(f"not valid JSON lines: line {number}: not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise BadFile(f"not valid JSON lines: line {number}: {exc.msg}") from None
        if not isinstance(record, dict):
            raise BadFile(f"not valid JSON lines: line {number}: not a JSON object")
        yield line, record


_SPACE = re.compile(r"[ \t\r\n]*")


def splice(line: str, updates: Mapping[str, str]) -> str:
    """``line`` (one JSON object) with the values of ``updates``' keys replaced by the
    given JSON texts, every other byte kept; keys it lacks are appended before ``}``."""
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    pos = _SPACE.match(line, 0).end()  # type: ignore[union-attr]
    pos = _SPACE.match(line, pos + 1).end()  # type: ignore[union-attr]
    while line[pos] != "}":
        key, pos = decoder.raw_decode(line, pos)
        pos = _SPACE.match(line, pos).end()  # type: ignore[union-attr]
        start = _SPACE.match(line, pos + 1).end()  # type: ignore[union-attr]
        _, end = decoder.raw_decode(line, start)
        spans[key] = (start, end)
        pos = _SPACE.match(line, end).end()  # type: ignore[union-attr]
        if line[pos] == ",":
            pos = _SPACE.match(line, pos + 1).end()  # type: ignore[union-attr]
    close = pos
    missing = [k for k in updates if k not in spans]
    if missing:
        extra = ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {updates[k]}" for k in missing)
        line = line[:close] + (", " if spans else "") + extra + line[close:]
    for key, (start, end) in sorted(spans.items(), key=lambda item: -item[1][0]):
        if key in updates:
            line = line[:start] + updates[key] + line[end:]
    return line


# --- reading ------------------------------------------------------------------------------------


def sample(fmt: Format, opened: IO[bytes]) -> tuple[list[str], dict[str, list[Any]]]:
    """A CSV or JSON-lines file's columns and up to ``SAMPLE_ROWS`` non-null values each."""
    columns: list[str] = []
    values: dict[str, list[Any]] = {}
    if fmt == "csv":
        for frame in _csv_frames(opened, None, as_text=False, nrows=SAMPLE_ROWS):
            columns = [str(c) for c in frame.columns]
            for column in columns:
                values[column] = [str(v) for v in frame[column].dropna()]
        return columns, values
    for count, (_, record) in enumerate(_json_records(opened)):
        if count >= SAMPLE_ROWS:
            break
        for key, value in (record or {}).items():
            if key not in values:
                columns.append(key)
                values[key] = []
            if value is not None:
                values[key].append(value)
    return columns, values


def parquet_schema(opened: IO[bytes]) -> Any:
    try:
        return pq.read_schema(opened)
    except (pa.ArrowException, OSError) as exc:
        raise BadFile(f"not valid Parquet: {_first_line(exc)}") from None


def parquet_rows(opened: IO[bytes]) -> int:
    try:
        return int(pq.ParquetFile(opened).metadata.num_rows)
    except (pa.ArrowException, OSError) as exc:
        raise BadFile(f"not valid Parquet: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read(
    fmt: Format, opened: IO[bytes], columns: Sequence[str], chunk_size: int
) -> Iterator[pd.DataFrame]:
    """The file's records in order, in frames of at most ``chunk_size`` rows holding
    ``columns`` (null where the file lacks one): text for CSV, JSON values for JSON
    lines, Arrow-typed for Parquet (integers as Int64)."""
    if fmt == "csv":
        for frame in _csv_frames(opened, chunk_size, as_text=False):
            yield frame.reindex(columns=list(columns))
    elif fmt == "jsonl":
        records: list[dict[str, Any]] = []
        for _, record in _json_records(opened):
            if record is None:
                continue
            records.append(record)
            if len(records) == chunk_size:
                yield _json_frame(records, columns)
                records = []
        if records:
            yield _json_frame(records, columns)
    else:
        try:
            parquet = pq.ParquetFile(opened)
            present = [c for c in columns if c in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(batch_size=chunk_size, columns=present):
                frame = batch.to_pandas(types_mapper=_integer_mapper)
                yield frame.reindex(columns=list(columns))
        except (pa.ArrowException, OSError) as exc:
            raise BadFile(f"not valid Parquet: {_first_line(exc)}") from None


def _integer_mapper(type_: Any) -> Any:
    return pd.Int64Dtype() if pa.types.is_integer(type_) else None


def _json_frame(records: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    data = {c: pd.Series([r.get(c) for r in records], dtype=object) for c in columns}
    return pd.DataFrame(data, index=pd.RangeIndex(len(records)), columns=list(columns))


# --- rewriting ----------------------------------------------------------------------------------


@dataclass
class Rewrite:
    """Records to drop, and fields to set, by position in the file."""

    drop: set[int]
    updates: dict[int, dict[str, Any]]
    touched: int = 0
    """How many of the named positions existed (deleted or updated)."""
    kept: int = 0
    """How many records the new file holds."""


def rewrite(fmt: Format, opened: IO[bytes], out: IO[bytes], change: Rewrite) -> None:
    """Write ``opened`` to ``out`` without the dropped records and with the updated
    fields, in the same format and column order; counts go into ``change``."""
    if fmt == "csv":
        _rewrite_csv(opened, out, change)
    elif fmt == "jsonl":
        _rewrite_jsonl(opened, out, change)
    else:
        _rewrite_parquet(opened, out, change)


def _added(change: Rewrite, present: Sequence[str]) -> set[str]:
    """Fields a file lacks that an update gives a value (a null for them changes nothing)."""
    given = {
        f for fields in change.updates.values() for f, v in fields.items() if plain(v) is not None
    }
    return given - set(present)


def _csv_style(opened: IO[bytes]) -> tuple[bytes, str]:
    """The file's byte-order mark (if any) and line terminator, to write them back."""
    head = opened.read(65_536)
    opened.seek(0)
    newline = head.find(b"\n")
    terminator = "\r\n" if newline > 0 and head[newline - 1 : newline] == b"\r" else "\n"
    return (BOM if head.startswith(BOM) else b""), terminator


BOM = b"\xef\xbb\xbf"


def _rewrite_csv(opened: IO[bytes], out: IO[bytes], change: Rewrite) -> None:
    bom, terminator = _csv_style(opened)
    out.write(bom)
    header: list[str] | None = None
    offset = 0
    for frame in _csv_frames(opened, REWRITE_ROWS, as_text=True):
        if header is None:
            header = [str(c) for c in frame.columns]
            header += sorted(_added(change, header))
        frame = frame.reindex(columns=header, fill_value="")
        positions = range(offset, offset + len(frame))
        cells: dict[str, tuple[list[int], list[str]]] = {}
        for row, position in enumerate(positions):
            fields = change.updates.get(position)
            if fields is not None:
                for field, value in fields.items():
                    if field in header:
                        rows, texts = cells.setdefault(field, ([], []))
                        rows.append(row)
                        texts.append(to_text(value))
            if fields is not None or position in change.drop:
                change.touched += 1
        for field, (rows, texts) in cells.items():
            frame.iloc[rows, header.index(field)] = texts
        frame = frame[[p not in change.drop for p in positions]]
        change.kept += len(frame)
        text = frame.to_csv(index=False, header=offset == 0, lineterminator=terminator)
        out.write(text.encode("utf-8"))
        offset += len(positions)


def _rewrite_jsonl(opened: IO[bytes], out: IO[bytes], change: Rewrite) -> None:
    position = 0
    for line, record in _json_records(opened):
        if record is None:
            out.write(line)
            continue
        fields = change.updates.get(position)
        if position in change.drop:
            change.touched += 1
        else:
            if fields is not None:
                change.touched += 1
                texts = {
                    k: to_json(v) for k, v in fields.items() if plain(v) is not None or k in record
                }
                line = splice(line.decode("utf-8"), texts).encode("utf-8")
            out.write(line)
            change.kept += 1
        position += 1


_CODECS = {"UNCOMPRESSED": "none", "LZ4_RAW": "lz4", "LZ4": "lz4"}


def _rewrite_parquet(opened: IO[bytes], out: IO[bytes], change: Rewrite) -> None:
    try:
        parquet = pq.ParquetFile(opened)
        schema = parquet.schema_arrow
        codec = "snappy"
        if parquet.metadata.num_row_groups and parquet.metadata.num_columns:
            found = parquet.metadata.row_group(0).column(0).compression
            codec = _CODECS.get(found, found.lower())
        added = _added(change, schema.names)
        if added:
            raise BadFile(f"cannot add fields to a Parquet file: {', '.join(sorted(added))}")
        offset = 0
        with pq.ParquetWriter(out, schema, compression=codec) as writer:
            for batch in parquet.iter_batches(batch_size=REWRITE_ROWS):
                table = pa.Table.from_batches([batch]).replace_schema_metadata(schema.metadata)
                table = _apply_parquet(table, schema, offset, change)
                offset += batch.num_rows
                change.kept += table.num_rows
                writer.write_table(table)
    except (pa.ArrowException, OSError) as exc:
        raise BadFile(f"not valid Parquet: {_first_line(exc)}") from None


def _apply_parquet(table: Any, schema: Any, offset: int, change: Rewrite) -> Any:
    rows = range(offset, offset + table.num_rows)
    updated = {p - offset: change.updates[p] for p in rows if p in change.updates}
    change.touched += sum(1 for p in rows if p in change.drop or p in change.updates)
    for field in {f for fields in updated.values() for f in fields if f in schema.names}:
        index = schema.get_field_index(field)
        type_ = schema.field(index).type
        values = table.column(index).to_pylist()
        for row, fields in updated.items():
            if field in fields:
                values[row] = _arrow_value(fields[field], type_)
        try:
            column = pa.array(values, type=type_)
        except (pa.ArrowException, TypeError, ValueError):
            raise BadFile(f"field {field}: an updated value does not fit {type_}") from None
        table = table.set_column(index, schema.field(index), column)
    mask = pa.array([p not in change.drop for p in rows], type=pa.bool_())
    return table.filter(mask)


def _arrow_value(value: Any, type_: Any) -> Any:
    value = plain(value)
    if isinstance(value, datetime) and pa.types.is_date(type_):
        return value.date()
    return value
