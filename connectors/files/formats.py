"""The file formats of the files store as classes: CSV, JSON lines, Parquet.

Each format is a ``FileFormat``: it knows its files by name (``detect``), draws a sample of
one file's columns (``sample``), types a collection's columns from the samples of its files
(``infer``), reads a file's records typed that way (``read``), counts them (``rows``) and
writes a file anew without some records and with some fields set (``rewrite``). The
registry ``FORMATS`` (a ``FileFormats``) holds them by name, the ``?format=`` of a store's
URL, in the order a file's name is matched against them: a new format is one class here and
one entry in ``FORMATS`` (or ``FORMATS.add(...)`` at run time).

Folders, partitions and the atomic replacement of a file are the store's
(``connectors.files.layout``, ``connectors.files.atomic``): every method here works on one
open file and raises ``BadFile`` with a one-line reason; the store adds the file's path and
its own name.

CSV and JSON-lines files are read as text and typed here, by one set of rules, so that what
``infer`` finds in the samples is what ``read`` produces; they are rewritten from their
text, so that a column nobody updated keeps its bytes.
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any, Protocol

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from connectors.protocol import ColumnInfo, TypeFamily
from connectors.values import plain

COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}
SAMPLE_ROWS = 1000
"""Rows of each CSV or JSON-lines file whose values decide a column's family."""
REWRITE_ROWS = 65_536
"""Rows held in memory at once while a file is rewritten."""


class BadFile(Exception):
    """A file that cannot be read or written as its format; the message is one line and
    never quotes a value (values are personal data)."""


@dataclass(frozen=True)
class Sample:
    """What one file shows of its columns, in the file's order: up to ``SAMPLE_ROWS``
    non-null values of each (a format typed by its values), or the types its schema
    declares (a format that has one)."""

    values: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    types: tuple[ColumnInfo, ...] = ()


@dataclass
class Rewrite:
    """Records to drop, and fields to set, by position in the file."""

    drop: set[int]
    updates: dict[int, dict[str, Any]]
    touched: int = 0
    """How many of the named positions existed (deleted or updated)."""
    kept: int = 0
    """How many records the new file holds."""


class FileFormat(Protocol):
    """One file format of the files store (see the module docstring). ``opened`` is always
    the file's bytes, already decompressed."""

    @property
    def name(self) -> str:
        """Its name in the registry and in a URL's ``?format=``: ``csv``."""
        ...

    @property
    def title(self) -> str:
        """Its name in messages: ``CSV``."""
        ...

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The ends of its files' names, lower case, before any compression suffix."""
        ...

    @property
    def counts_rows(self) -> bool:
        """Whether ``rows`` takes the count from the file's metadata instead of its
        records (the store then counts a partition's records without reading them)."""
        ...

    def detect(self, name: str, compression: str | None) -> bool:
        """Whether a file so named (lower case, its compression suffix removed) is of
        this format, ``compression`` naming the codec of that suffix (or None)."""
        ...

    def sample(self, opened: IO[bytes]) -> Sample:
        """The file's columns, with sampled values or declared types."""
        ...

    def infer(self, samples: Sequence[Sample]) -> dict[str, ColumnInfo]:
        """The columns of a collection whose files gave these samples, in order of
        appearance."""
        ...

    def read(
        self, opened: IO[bytes], columns: Sequence[ColumnInfo], chunk_size: int
    ) -> Iterator[pd.DataFrame]:
        """The file's records in order, in frames of at most ``chunk_size`` rows (index
        from 0) holding ``columns``, typed by their families as ``convert`` does (null
        where the file lacks one); a value that does not fit is a ``BadFile`` naming its
        field and row number."""
        ...

    def rows(self, opened: IO[bytes]) -> int:
        """How many records the file holds."""
        ...

    def rewrite(self, opened: IO[bytes], out: IO[bytes], change: Rewrite) -> None:
        """Write ``opened`` to ``out`` without the dropped records and with the updated
        fields, in the same format and column order; counts go into ``change``."""
        ...


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


def _merge(seen: ColumnInfo | None, found: ColumnInfo) -> ColumnInfo:
    """A column typed differently by two Parquet files: integers widen to numeric, any other
    disagreement is read as it comes (family ``other``)."""
    if seen is None or seen == found:
        return found
    if seen.family == found.family:
        return seen
    if {seen.family, found.family} == {"integer", "numeric"}:
        return info(found.name, "numeric", type_name="double")
    return info(found.name, "other", type_name=f"{seen.type_name} | {found.type_name}")


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


def _arrow_typed(raw: pd.Series, column: ColumnInfo) -> Any:
    """A Parquet column as the other formats give it (a column a file lacks is all null)."""
    family = column.family
    if isinstance(raw.dtype, pd.CategoricalDtype):
        raw = raw.astype(object)  # dictionary-encoded columns read as their values
    if family == "datetime":
        if column.timezone_aware:
            stamps = pd.to_datetime(raw, utc=True)
            return stamps.astype("datetime64[us, UTC]")
        return pd.to_datetime(raw).astype("datetime64[us]")
    if family == "date":
        return pd.Series([None if pd.isna(v) else v for v in raw], dtype=object).to_numpy()
    if family == "integer":
        return raw.astype("Int64")
    if family == "numeric":
        return raw.astype("float64")
    if family == "boolean":
        return raw.astype("boolean")
    return raw


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


def _not_parquet(exc: BaseException) -> BadFile:
    text = str(exc).strip()
    return BadFile(f"not valid Parquet: {text.splitlines()[0] if text else type(exc).__name__}")


def _integer_mapper(type_: Any) -> Any:
    return pd.Int64Dtype() if pa.types.is_integer(type_) else None


def _json_frame(records: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    data = {c: pd.Series([r.get(c) for r in records], dtype=object) for c in columns}
    return pd.DataFrame(data, index=pd.RangeIndex(len(records)), columns=list(columns))


def _typed(
    raw: pd.DataFrame,
    columns: Sequence[ColumnInfo],
    offset: int,
    typed: Callable[[pd.Series, ColumnInfo], Any],
) -> pd.DataFrame:
    """``raw`` (records as read, the first at position ``offset`` in the file) with each of
    ``columns`` typed by ``typed``; a value that does not fit is reported by its row number
    in the file."""
    data: dict[str, Any] = {}
    for column in columns:
        try:
            data[column.name] = typed(raw[column.name].reset_index(drop=True), column)
        except ValueError as exc:
            row = f"row_number {offset + int(exc.args[0])}" if exc.args else "a value"
            raise BadFile(f"field {column.name}: {row} is not {column.family}") from None
        except (TypeError, OverflowError):
            raise BadFile(f"field {column.name}: values are not {column.family}") from None
    return pd.DataFrame(data, index=pd.RangeIndex(len(raw)))


# --- rewriting ----------------------------------------------------------------------------------


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
        raise _not_parquet(exc) from None


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


# --- the formats ------------------------------------------------------------------------------


class _Format(ABC):
    """What the built-in formats share: records read as the file holds them (``_raw``),
    then typed column by column (``_convert``)."""

    def read(
        self, opened: IO[bytes], columns: Sequence[ColumnInfo], chunk_size: int
    ) -> Iterator[pd.DataFrame]:
        offset = 0
        for raw in self._raw(opened, [c.name for c in columns], chunk_size):
            yield _typed(raw, columns, offset, self._convert)
            offset += len(raw)

    @abstractmethod
    def _raw(
        self, opened: IO[bytes], columns: Sequence[str], chunk_size: int
    ) -> Iterator[pd.DataFrame]:
        """The records in frames of at most ``chunk_size`` rows, as read (text, JSON values
        or Arrow-typed), null where the file lacks a column."""

    @abstractmethod
    def _convert(self, raw: pd.Series, column: ColumnInfo) -> Any:
        """A column as read, typed by its family (``convert``); ``ValueError`` carries the
        position of the first value that does not fit."""


class _TextFormat(_Format):
    """What CSV and JSON lines share: files found by their suffixes (compressed or not),
    columns typed by their sampled values pooled over the collection's files (and the
    same rules, ``convert``, when read), and records counted by reading them."""

    suffixes: tuple[str, ...]
    counts_rows = False
    _family: Callable[[str, Sequence[Any]], ColumnInfo]
    """A column's type from its sampled non-null values."""

    def detect(self, name: str, compression: str | None) -> bool:
        return name.endswith(self.suffixes)

    def infer(self, samples: Sequence[Sample]) -> dict[str, ColumnInfo]:
        pooled: dict[str, list[Any]] = {}
        for sample in samples:
            for name, values in sample.values.items():
                pooled.setdefault(name, []).extend(values)
        return {name: self._family(name, values) for name, values in pooled.items()}

    def rows(self, opened: IO[bytes]) -> int:
        return sum(len(frame) for frame in self._raw(opened, [], REWRITE_ROWS))

    def _convert(self, raw: pd.Series, column: ColumnInfo) -> Any:
        return convert(raw, column)


class Csv(_TextFormat):
    """Comma-separated values with a header line, UTF-8 (a byte-order mark is kept)."""

    name = "csv"
    title = "CSV"
    suffixes = (".csv",)
    _family = staticmethod(infer_text)

    def sample(self, opened: IO[bytes]) -> Sample:
        values: dict[str, list[Any]] = {}
        for frame in _csv_frames(opened, None, as_text=False, nrows=SAMPLE_ROWS):
            for column in [str(c) for c in frame.columns]:
                values[column] = [str(v) for v in frame[column].dropna()]
        return Sample(values=values)

    def _raw(
        self, opened: IO[bytes], columns: Sequence[str], chunk_size: int
    ) -> Iterator[pd.DataFrame]:
        for frame in _csv_frames(opened, chunk_size, as_text=False):
            yield frame.reindex(columns=list(columns))

    def rewrite(self, opened: IO[bytes], out: IO[bytes], change: Rewrite) -> None:
        _rewrite_csv(opened, out, change)


class JsonLines(_TextFormat):
    """One JSON object a line, UTF-8; blank lines are kept but are not records."""

    name = "jsonl"
    title = "JSON lines"
    suffixes = (".jsonl", ".ndjson")
    _family = staticmethod(infer_json)

    def sample(self, opened: IO[bytes]) -> Sample:
        values: dict[str, list[Any]] = {}
        for count, (_, record) in enumerate(_json_records(opened)):
            if count >= SAMPLE_ROWS:
                break
            for key, value in (record or {}).items():
                found = values.setdefault(key, [])
                if value is not None:
                    found.append(value)
        return Sample(values=values)

    def _raw(
        self, opened: IO[bytes], columns: Sequence[str], chunk_size: int
    ) -> Iterator[pd.DataFrame]:
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

    def rewrite(self, opened: IO[bytes], out: IO[bytes], change: Rewrite) -> None:
        _rewrite_jsonl(opened, out, change)


class Parquet(_Format):
    """Apache Parquet: typed by its schema (files that disagree are merged, ``_merge``),
    compressed inside the file (so a ``.parquet.gz`` is not one), its rows counted from
    its metadata."""

    name = "parquet"
    title = "Parquet"
    suffixes = (".parquet",)
    counts_rows = True

    def detect(self, name: str, compression: str | None) -> bool:
        return compression is None and name.endswith(self.suffixes)

    def sample(self, opened: IO[bytes]) -> Sample:
        try:
            schema = pq.read_schema(opened)
        except (pa.ArrowException, OSError) as exc:
            raise _not_parquet(exc) from None
        return Sample(types=tuple(infer_arrow(f.name, f.type) for f in schema))

    def infer(self, samples: Sequence[Sample]) -> dict[str, ColumnInfo]:
        columns: dict[str, ColumnInfo] = {}
        for sample in samples:
            for found in sample.types:
                columns[found.name] = _merge(columns.get(found.name), found)
        return columns

    def _raw(
        self, opened: IO[bytes], columns: Sequence[str], chunk_size: int
    ) -> Iterator[pd.DataFrame]:
        """Arrow-typed frames (integers as Int64)."""
        try:
            parquet = pq.ParquetFile(opened)
            present = [c for c in columns if c in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(batch_size=chunk_size, columns=present):
                frame = batch.to_pandas(types_mapper=_integer_mapper)
                yield frame.reindex(columns=list(columns))
        except (pa.ArrowException, OSError) as exc:
            raise _not_parquet(exc) from None

    def _convert(self, raw: pd.Series, column: ColumnInfo) -> Any:
        return _arrow_typed(raw, column)

    def rows(self, opened: IO[bytes]) -> int:
        try:
            return int(pq.ParquetFile(opened).metadata.num_rows)
        except (pa.ArrowException, OSError) as exc:
            raise _not_parquet(exc) from None

    def rewrite(self, opened: IO[bytes], out: IO[bytes], change: Rewrite) -> None:
        _rewrite_parquet(opened, out, change)


# --- the registry -----------------------------------------------------------------------------


class FileFormats:
    """File formats by name, in the order a file's name is matched against them. A name
    or a suffix is registered once: adding a second format for it is an error."""

    def __init__(self, formats: Iterable[FileFormat] = ()) -> None:
        self._formats: dict[str, FileFormat] = {}
        for fmt in formats:
            self.add(fmt)

    def add(self, fmt: FileFormat) -> None:
        """Register ``fmt``, matched after the formats already there."""
        if fmt.name in self._formats:
            raise ValueError(f"file format {fmt.name!r} is registered already")
        taken = sorted(set(fmt.suffixes) & set(self.suffixes))
        if taken:
            raise ValueError(f"suffix {taken[0]!r} is registered already")
        self._formats[fmt.name] = fmt

    def remove(self, name: str) -> FileFormat:
        """Unregister the format ``name`` (``KeyError`` when there is none) and return it."""
        return self._formats.pop(name)

    def get(self, name: object) -> FileFormat | None:
        """The format named ``name`` (a URL's ``?format=``), None when there is none."""
        return self._formats.get(name) if isinstance(name, str) else None

    def copy(self) -> FileFormats:
        return FileFormats(self._formats.values())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._formats)

    @property
    def suffixes(self) -> tuple[str, ...]:
        return tuple(s for fmt in self._formats.values() for s in fmt.suffixes)

    def __iter__(self) -> Iterator[FileFormat]:
        return iter(list(self._formats.values()))

    def detect(
        self, name: str, forced: FileFormat | None = None
    ) -> tuple[FileFormat, str | None] | None:
        """The format and compression of a file by its name (``x.csv.gz``: CSV, gzip), or
        None when no format knows its name and none is ``forced``."""
        lowered = name.lower()
        compression = None
        for suffix, codec in COMPRESSIONS.items():
            if lowered.endswith(suffix):
                compression, lowered = codec, lowered[: -len(suffix)]
                break
        if forced is not None:
            return forced, compression
        for fmt in self._formats.values():
            if fmt.detect(lowered, compression):
                return fmt, compression
        return None

    def unknown(self) -> str:
        """Why a file no format knows cannot be read, in one line."""
        *others, last = self.suffixes or ("known",)
        listed = f"{', '.join(others)} or {last}" if others else last
        return (
            f"not a {listed} file (optionally {', '.join(COMPRESSIONS)}); "
            "set ?format= to read it as one"
        )


FORMATS = FileFormats([Csv(), JsonLines(), Parquet()])
"""The formats every files store reads (unless given its own ``FileFormats``)."""
