"""Published statistics: the released rollups written where analysts already work.

A policy's ``publish:`` section names one destination (``retention_rules.model.Publish``):

- ``sql:`` a SQLAlchemy URL, with an optional ``schema`` and table ``prefix``: one table
  per rollup (``<prefix><rollup>``) and ``<prefix>data_dictionary``. The whole release,
  every table and the dictionary, is written in ONE transaction (PostgreSQL and SQLite
  have transactional DDL): a reader sees the previous release or the new one, never a
  mix. A table whose columns are unchanged keeps its definition (its rows are deleted
  and inserted, which other transactions see only at commit); one whose columns
  changed is dropped and created again inside the transaction. MySQL and MariaDB commit
  every ``CREATE`` and ``DROP`` on their own, so a release could not be replaced whole:
  they are refused.
- ``parquet:`` a folder (relative to the policy file) or any fsspec URL: one
  ``<rollup>.parquet`` per rollup, ``data_dictionary.json`` and a ``README.md``. Every
  file is first written whole under a staging name (``.<name>.<token>.tenure-staging``,
  which no ``*.parquet`` pattern matches), then each is moved into place, the dictionary
  last; a failure removes the staging files, and a later publish removes those a killed
  one left. Each file is always whole; between the first and the last move (renames,
  milliseconds on a local disk; copies on object stores, which have no rename) a reader
  listing the folder may see some tables of the new release beside others of the
  previous one, and a publish killed then leaves them so until the next one, which
  rewrites every table (the dictionary still names the previous release).

The content of a release (tables, columns, rows, descriptions, disclosure) has a SHA-256
kept in the dictionary: a publish whose content the destination already holds writes
nothing at all.

Nothing but ``ReleasedTable.frame`` (released cells: counts of people and measures, never
a row of a store) and the policy's descriptions is written.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.schema import CreateSchema

from connectors.files.atomic import fsync_dir
from connectors.urls import hide_secrets, mask_url
from flows import audit
from flows.releases import ReleasedTable, release_tables
from flows.run.types import first_line
from flows.state.tables import StateError
from retention_rules.model import Policy, Publish

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem  # type: ignore[import-untyped]

    from flows.run.types import RunContext, RunReport

DICTIONARY = "data_dictionary"
DICTIONARY_FILE = "data_dictionary.json"
README_FILE = "README.md"
STAGING_SUFFIX = ".tenure-staging"
#: Rows per INSERT statement (executemany).
_BATCH = 5_000


class PublishError(Exception):
    """The release could not be published: one line, at the ``publish:`` field it
    concerns (``sql`` or ``parquet``), no secret of the URL in it."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        self.message = message
        super().__init__(message)

    @property
    def loc(self) -> tuple[str, ...]:
        """Where in the policy: ``publish`` or ``publish.<field>``."""
        return ("publish",) if self.field == "publish" else ("publish", self.field)


# ----------------------------------------------------------------------------- content


@dataclass(frozen=True)
class PublishedColumn:
    name: str
    kind: str
    """date, integer, float, boolean, timestamp or text."""
    description: str


@dataclass(frozen=True)
class PublishedTable:
    """One released rollup under its published name."""

    name: str
    released: ReleasedTable
    columns: tuple[PublishedColumn, ...]

    @property
    def frame(self) -> pd.DataFrame:
        return self.released.frame

    def entry(self) -> dict[str, Any]:
        """The table's part of the data dictionary."""
        released = self.released
        return {
            "table": self.name,
            "dataset": released.dataset,
            "rollup": released.rollup,
            "period": released.period,
            "description": released.description,
            "rows": len(released.frame),
            "disclosure": _plain(released.disclosure),
            "released_at": _instant(released.released_at),
            "columns": [
                {"name": c.name, "type": c.kind, "description": c.description} for c in self.columns
            ],
        }


@dataclass(frozen=True)
class Release:
    """Everything one publish writes, and the SHA-256 of it."""

    policy: str
    tables: tuple[PublishedTable, ...]
    sha256: str

    def dictionary(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "content_sha256": self.sha256,
            "tables": [table.entry() for table in self.tables],
        }


def release_content(policy: str, tables: Sequence[ReleasedTable], prefix: str = "") -> Release:
    """The release to publish: each table under its published name, with its columns'
    types and descriptions, and the SHA-256 of the whole (names, columns, descriptions,
    disclosure, release dates and every value)."""
    published = []
    for released in sorted(tables, key=lambda t: (t.rollup, t.dataset)):
        columns = tuple(
            PublishedColumn(
                str(name),
                column_kind(str(name), released.frame[name]),
                released.columns.get(str(name), ""),
            )
            for name in released.frame.columns
        )
        published.append(PublishedTable(f"{prefix}{released.rollup}", released, columns))
    names = [table.name for table in published]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise PublishError(
            "publish", f"two rollups would be published as {', '.join(twice)}: rename one"
        )
    digest = hashlib.sha256()
    for table in published:
        digest.update(json.dumps(table.entry(), sort_keys=True).encode())
        for row in table.frame.itertuples(index=False, name=None):
            digest.update(json.dumps([_value(v) for v in row]).encode())
            digest.update(b"\n")
    return Release(policy, tuple(published), digest.hexdigest())


def column_kind(name: str, series: pd.Series) -> str:
    """The published type of a column of a released frame."""
    dtype = series.dtype
    if name == "period":
        return "date"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    values = series.dropna()
    if len(values) and all(isinstance(v, date) and not isinstance(v, datetime) for v in values):
        return "date"
    return "text"


def _value(value: Any) -> Any:
    """A cell as JSON (the content hash): NA as null, dates in ISO 8601."""
    value = _sql_value(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _plain(value: Any) -> Any:
    """A disclosure's parameters as JSON values."""
    return json.loads(json.dumps(value, default=_value, sort_keys=True))


def _instant(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


# ----------------------------------------------------------------------------- publishing


@dataclass(frozen=True)
class Publication:
    """What a publish did (or, dry, would do)."""

    destination: str
    """Where, as it may be shown: a password or secret query value masked."""
    tables: dict[str, int]
    """Each published table and its rows."""
    sha256: str
    changed: bool
    """False when the destination already held this release: nothing was written."""
    dry_run: bool = False
    removed: tuple[str, ...] = ()
    """Tables an earlier release published that no rollup of the policy has now."""
    unchecked: str | None = None
    """A dry run that could not check the destination is writable says why."""

    def lines(self) -> list[str]:
        rows = sum(self.tables.values())
        what = f"{len(self.tables)} table(s), {rows:,} row(s), and the data dictionary"
        if not self.changed:
            verb = "would change nothing" if self.dry_run else "unchanged"
            head = f"{self.destination}: {verb}: it holds this release already ({what})"
        elif self.dry_run:
            head = f"would publish {what} to {self.destination}"
        else:
            head = f"published {what} to {self.destination}"
        lines = [f"{head}; content sha256 {self.sha256}"]
        if self.changed:
            lines += [f"  {name}: {count:,} row(s)" for name, count in self.tables.items()]
            verb = "would remove" if self.dry_run else "removed"
            lines += [
                f"  {verb} {name} (no rollup of the policy has it now)" for name in self.removed
            ]
        if self.unchecked:
            lines.append(f"  not checked: {self.unchecked}")
        return lines

    def summary(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "tables": dict(self.tables),
            "content_sha256": self.sha256,
            "changed": self.changed,
            "removed": list(self.removed),
        }


def publish(
    state: Engine, policy_file: Path, policy: Policy, *, dry_run: bool = False
) -> Publication:
    """Publish the released rollups of ``policy`` (``release_tables``) to its
    ``publish:`` destination; raise `PublishError` when it cannot be written (nothing is
    left half written)."""
    target = policy.publish
    assert target is not None, "the callers say what a policy without publish: means"
    key = None if dry_run else audit.current_key()  # before anything is written
    try:
        tables = release_tables(state, policy)
    except SQLAlchemyError as exc:  # a state database of an earlier layout, or gone
        reason = first_line(getattr(exc, "orig", None) or exc)
        raise StateError(f"cannot read the releases: {reason}") from None
    done = publish_tables(tables, target, policy.name, policy_file.parent, dry_run=dry_run)
    if key is not None and done.changed:  # what analysts were given, and when, is audited
        entry = {"event": audit.PUBLISHED, "policy": policy.name, **done.summary()}
        audit.append(state, [entry], key)
    return done


def publish_tables(
    tables: Sequence[ReleasedTable],
    publish: Publish,
    policy_name: str,
    base: Path,
    *,
    dry_run: bool = False,
) -> Publication:
    """Publish ``tables`` to ``publish``'s destination (a relative folder is read from
    ``base``, the policy file's folder)."""
    release = release_content(policy_name, tables, publish.prefix)
    destination: _Destination
    if publish.sql is not None:
        destination = _SqlDestination(publish.sql, publish.db_schema, publish.prefix)
    else:
        assert publish.parquet is not None, "the model requires one destination"
        destination = _ParquetFolder(_folder(publish.parquet, base))
    with destination.opened():
        if not dry_run:
            destination.tidy()
        previous = destination.previous()
        removed = tuple(sorted(set(previous.tables) - {t.name for t in release.tables}))
        written = {t.name: len(t.frame) for t in release.tables}
        if previous.sha256 == release.sha256 and previous.complete:
            return Publication(destination.shown, written, release.sha256, False, dry_run)
        unchecked = None
        if dry_run:
            unchecked = destination.check(release, removed)
        else:
            destination.write(release, removed)
        return Publication(
            destination.shown, written, release.sha256, True, dry_run, removed, unchecked
        )


def publish_after_run(context: RunContext, report: RunReport) -> None:
    """After a real run, publish the policy's released rollups when it has ``publish:``;
    a failure is recorded on the report (the run then counts as failed), never raised:
    what the run deleted and released stays done."""
    if context.options.dry_run or context.state is None or context.policy.publish is None:
        return
    if report.blocked:  # the coverage gate refused the run: it touches nothing at all
        return
    try:
        done = publish(context.state, context.loaded.path, context.policy)
    except PublishError as exc:
        report.publish_error = f"{'.'.join(exc.loc)}: {exc.message}"
    except Exception as exc:  # a defect: reported, retention stays done
        report.publish_error = f"publish: unexpected {type(exc).__name__}: {first_line(exc)}"
    else:
        report.publication = done.summary()


# ----------------------------------------------------------------------------- destinations


@dataclass(frozen=True)
class _Previous:
    sha256: str | None = None
    tables: tuple[str, ...] = ()
    complete: bool = False
    """Every table the dictionary lists is there."""


class _Destination:
    shown: str

    @contextmanager
    def opened(self) -> Iterator[None]:
        yield

    def tidy(self) -> None:
        """Remove what a killed publish left behind (never part of a release)."""

    def previous(self) -> _Previous:
        raise NotImplementedError

    def check(self, release: Release, removed: Sequence[str]) -> str | None:
        raise NotImplementedError

    def write(self, release: Release, removed: Sequence[str]) -> None:
        raise NotImplementedError


# --- SQL


_SQL_TYPES: dict[str, Any] = {
    "date": sa.Date,
    "integer": sa.BigInteger,
    "float": lambda: sa.Float(precision=53),
    "boolean": sa.Boolean,
    "timestamp": lambda: sa.DateTime(timezone=True),
    "text": sa.Text,
}


def _reflected_kind(column_type: Any) -> str:
    """The published kind a reflected column type stores."""
    for kind, types in (
        ("boolean", sa.Boolean),
        ("integer", sa.Integer),
        ("float", (sa.Float, sa.Numeric)),
        ("timestamp", sa.DateTime),
        ("date", sa.Date),
    ):
        if isinstance(column_type, types):
            return kind
    return "text"


def dictionary_table(metadata: sa.MetaData, prefix: str) -> sa.Table:
    """The SQL data dictionary: one row per published table (``column_name`` NULL) and
    one per column, with the table's disclosure and release date on each."""
    return sa.Table(
        f"{prefix}{DICTIONARY}",
        metadata,
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("column_name", sa.Text),
        sa.Column("data_type", sa.Text),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("disclosure_method", sa.Text),
        sa.Column("disclosure_parameters", sa.Text),
        sa.Column("released_at", sa.DateTime(timezone=True)),
        sa.Column("content_sha256", sa.Text, nullable=False),
    )


def dictionary_rows(release: Release) -> list[dict[str, Any]]:
    rows = []
    for table in release.tables:
        released = table.released
        parameters = {k: v for k, v in _plain(released.disclosure).items() if k != "method"}
        common = {
            "table_name": table.name,
            "disclosure_method": released.disclosure.get("method"),
            "disclosure_parameters": json.dumps(parameters, sort_keys=True),
            "released_at": released.released_at,
            "content_sha256": release.sha256,
        }
        rows.append(
            {**common, "column_name": None, "data_type": None, "description": released.description}
        )
        rows += [
            {**common, "column_name": c.name, "data_type": c.kind, "description": c.description}
            for c in table.columns
        ]
    return rows


class _SqlDestination(_Destination):
    def __init__(self, url: str, schema: str | None, prefix: str) -> None:
        self.url = url
        self.schema = schema
        self.prefix = prefix
        self.shown = mask_url(url)
        self.engine: Engine | None = None

    def _error(self, exc: BaseException, doing: str) -> PublishError:
        reason = hide_secrets(first_line(getattr(exc, "orig", None) or exc), self.url)
        return PublishError("sql", f"{doing} {self.shown}: {reason}")

    @contextmanager
    def opened(self) -> Iterator[None]:
        try:
            engine = sa.create_engine(self.url)
        except (ArgumentError, ValueError, ImportError) as exc:
            raise PublishError(
                "sql", f"not a SQLAlchemy URL or no driver for it: {self.shown} ({first_line(exc)})"
            ) from None
        if engine.dialect.name in ("mysql", "mariadb"):
            engine.dispose()
            raise PublishError(
                "sql",
                f"{self.shown}: MySQL and MariaDB commit each CREATE and DROP TABLE on its "
                "own, so a release could not replace the previous one whole: publish to "
                "PostgreSQL, SQLite or a parquet: folder",
            )
        if engine.dialect.name == "sqlite":
            _transactional_sqlite(engine)
        self.engine = engine
        try:
            yield
        finally:
            engine.dispose()

    def _metadata(self) -> sa.MetaData:
        return sa.MetaData(schema=self.schema)

    def previous(self) -> _Previous:
        assert self.engine is not None
        try:
            with self.engine.connect() as connection:
                inspector = sa.inspect(connection)
                name = f"{self.prefix}{DICTIONARY}"
                if not inspector.has_table(name, schema=self.schema):
                    return _Previous()
                dictionary = dictionary_table(self._metadata(), self.prefix)
                rows = connection.execute(
                    sa.select(dictionary.c.table_name, dictionary.c.content_sha256).distinct()
                ).all()
                tables = tuple(sorted({row.table_name for row in rows}))
                hashes = {row.content_sha256 for row in rows}
                complete = all(inspector.has_table(t, schema=self.schema) for t in tables)
        except SQLAlchemyError as exc:
            raise self._error(exc, "cannot read") from None
        sha = hashes.pop() if len(hashes) == 1 else None
        return _Previous(sha, tables, complete)

    def check(self, release: Release, removed: Sequence[str]) -> str | None:
        """Write the whole release in a transaction and roll it back: the privileges,
        the schema and the types are checked, nothing stays."""
        assert self.engine is not None
        database = self.engine.url.database or ""
        if self.engine.dialect.name == "sqlite" and not Path(database).exists():
            folder = Path(database).parent
            if not os.access(_existing(folder), os.W_OK | os.X_OK):
                raise PublishError("sql", f"cannot create {self.shown}: folder not writable")
            return None
        try:
            with self.engine.connect() as connection:
                transaction = connection.begin()
                try:
                    self._write(connection, release, removed)
                finally:
                    transaction.rollback()
        except SQLAlchemyError as exc:
            raise self._error(exc, "cannot write") from None
        return None

    def write(self, release: Release, removed: Sequence[str]) -> None:
        assert self.engine is not None
        try:
            with self.engine.begin() as connection:
                self._write(connection, release, removed)
        except SQLAlchemyError as exc:
            raise self._error(exc, "cannot write") from None

    def _write(self, connection: Connection, release: Release, removed: Sequence[str]) -> None:
        if self.schema is not None and connection.dialect.name == "postgresql":
            connection.execute(CreateSchema(self.schema, if_not_exists=True))
        metadata = self._metadata()
        for table in release.tables:
            _replace_table(connection, metadata, table)
        for name in removed:
            sa.Table(name, metadata).drop(connection, checkfirst=True)
        dictionary = dictionary_table(metadata, self.prefix)
        _replace_rows(connection, dictionary, dictionary_rows(release))


def _replace_table(connection: Connection, metadata: sa.MetaData, table: PublishedTable) -> None:
    """Give ``table`` the release's rows: its rows replaced when its columns are those of
    the release, else dropped and created again (inside the caller's transaction)."""
    columns = [sa.Column(c.name, _SQL_TYPES[c.kind]()) for c in table.columns]
    target = sa.Table(table.name, metadata, *columns)
    rows = [
        {c.name: _sql_value(v) for c, v in zip(table.columns, row, strict=True)}
        for row in table.frame.itertuples(index=False, name=None)
    ]
    _replace_rows(connection, target, rows)


def _replace_rows(connection: Connection, target: sa.Table, rows: list[dict[str, Any]]) -> None:
    inspector = sa.inspect(connection)
    wanted = [(c.name, _reflected_kind(c.type)) for c in target.columns]
    if inspector.has_table(target.name, schema=target.schema):
        found = [
            (c["name"], _reflected_kind(c["type"]))
            for c in inspector.get_columns(target.name, schema=target.schema)
        ]
        if found == wanted:
            connection.execute(sa.delete(target))
        else:
            target.drop(connection)
            target.create(connection)
    else:
        target.create(connection)
    for start in range(0, len(rows), _BATCH):
        connection.execute(sa.insert(target), rows[start : start + _BATCH])


def _sql_value(value: Any) -> Any:
    """A cell as the driver takes it: NA as None, Python scalars for numpy's."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


def _transactional_sqlite(engine: Engine) -> None:
    """pysqlite opens a transaction only before a row change, so a ``CREATE TABLE``
    would commit on its own: SQLAlchemy's recipe makes ``BEGIN`` explicit, so that the
    whole release is one transaction."""

    @event.listens_for(engine, "connect")
    def _no_implicit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# --- Parquet


def _folder(text: str, base: Path) -> str:
    """The folder a ``parquet:`` value names (its ``${VAR}`` references read by the
    policy's loader): a relative path taken from the policy file's folder, a URL as it
    is."""
    if "://" in text:
        return text
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _existing(path: Path) -> Path:
    """The nearest folder of ``path`` (itself or an ancestor) that exists."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


class _ParquetFolder(_Destination):
    def __init__(self, location: str) -> None:
        from fsspec.core import url_to_fs  # type: ignore[import-untyped]
        from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]

        self.location = location
        self.shown = mask_url(location) if "://" in location else location
        try:
            fs, root = url_to_fs(location)
        except (ImportError, ValueError) as exc:
            raise PublishError(
                "parquet", f"cannot open {self.shown}: {hide_secrets(first_line(exc), location)}"
            ) from None
        self.fs: AbstractFileSystem = fs
        self.root: str = root.rstrip("/") or "/"
        self.local = isinstance(fs, LocalFileSystem)

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def _error(self, exc: BaseException, doing: str) -> PublishError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        return PublishError(
            "parquet", f"{doing} {self.shown}: {hide_secrets(reason, self.location)}"
        )

    def previous(self) -> _Previous:
        path = self._path(DICTIONARY_FILE)
        try:
            if not self.fs.exists(path):
                return _Previous()
            with self.fs.open(path, "rb") as handle:
                document = json.loads(handle.read())
        except ValueError:
            return _Previous()  # not ours, or damaged: written again
        except OSError as exc:
            raise self._error(exc, "cannot read") from None
        tables = tuple(str(t["table"]) for t in document.get("tables", []))
        complete = all(self.fs.exists(self._path(f"{t}.parquet")) for t in tables)
        return _Previous(document.get("content_sha256"), tables, complete)

    def check(self, release: Release, removed: Sequence[str]) -> str | None:
        """A local folder (or the nearest existing folder above it) must be writable;
        a remote one is not written to in a dry run."""
        if not self.local:
            return f"a dry run does not write to {self.shown} to see whether it may"
        nearest = _existing(Path(self.root))
        if not nearest.is_dir():
            raise PublishError("parquet", f"cannot write {self.shown}: {nearest} is not a folder")
        if not os.access(nearest, os.W_OK | os.X_OK):
            raise PublishError("parquet", f"cannot write {self.shown}: Permission denied")
        return None

    def write(self, release: Release, removed: Sequence[str]) -> None:
        files = [(f"{t.name}.parquet", parquet_bytes(t)) for t in release.tables]
        files += [
            (README_FILE, readme(release).encode()),
            (DICTIONARY_FILE, (json.dumps(release.dictionary(), indent=2) + "\n").encode()),
        ]
        # Locally, staging files sit beside their final names (a rename is then atomic);
        # elsewhere in a private local folder, each uploaded in one piece.
        private = None if self.local else tempfile.mkdtemp(prefix="tenure-publish-")
        token = uuid.uuid4().hex[:12]
        staged: list[tuple[str, str]] = []
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            for name, data in files:
                staging = (
                    self._path(f".{name}.{token}{STAGING_SUFFIX}")
                    if private is None
                    else f"{private}/{name}"
                )
                staged.append((stage_file(staging, data), self._path(name)))
            for staging, final in staged[:-1]:
                self._move(staging, final, private is None)
            # Tables no rollup has now go before the dictionary that no longer lists them:
            # a publish stopped in between is done again whole (the dictionary still
            # names the previous release).
            for name in removed:
                path = self._path(f"{name}.parquet")
                if self.fs.exists(path):
                    self.fs.rm(path)
            self._move(*staged[-1], private is None)  # the dictionary last
            if private is None:
                fsync_dir(self.root)
        except OSError as exc:
            raise self._error(exc, "cannot write") from None
        finally:
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)
            for staging, _ in staged:
                with suppress(OSError):  # moved, or left to the next publish
                    os.unlink(staging)

    def _move(self, staging: str, final: str, local: bool) -> None:
        if local:
            os.replace(staging, final)  # atomic: a reader opens the old or the new
        else:
            self.fs.put_file(staging, final)

    def tidy(self) -> None:
        """Staging files a killed publish left behind."""
        if not self.local or not Path(self.root).is_dir():
            return
        for path in Path(self.root).glob(f".*{STAGING_SUFFIX}"):
            with suppress(OSError):
                path.unlink()


def stage_file(path: str, data: bytes) -> str:
    """Write one file of a release whole at its (local) staging ``path``, on disk before
    it is moved; returns the path."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return path


_ARROW_TYPES = {
    "date": "date32",
    "integer": "int64",
    "float": "float64",
    "boolean": "bool_",
    "text": "string",
}


def parquet_bytes(table: PublishedTable) -> bytes:
    """The table as one Parquet file, each column of its published type (counts stay
    nullable integers when read back with pandas)."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    fields = []
    for column in table.columns:
        if column.kind == "timestamp":
            kind = pa.timestamp("us", tz="UTC")
        else:
            kind = getattr(pa, _ARROW_TYPES[column.kind])()
        fields.append(pa.field(column.name, kind))
    arrow = pa.Table.from_pandas(table.frame, schema=pa.schema(fields), preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(arrow, buffer)
    return buffer.getvalue()


def readme(release: Release) -> str:
    """The folder's README for people: what each table holds and how to read it."""
    lines = [
        f"# Published statistics of policy `{release.policy}`",
        "",
        "Released rollups, one Parquet file per table; `data_dictionary.json` describes",
        "every table and column, its disclosure method and parameters, and its release date.",
        f"Content SHA-256: `{release.sha256}`.",
        "",
        "Read with pandas: `pd.read_parquet('<table>.parquet')`; with DuckDB:",
        "`SELECT * FROM '<this folder>/*.parquet'`.",
        "",
    ]
    for table in release.tables:
        entry = table.entry()
        lines += [
            f"## {table.name}",
            "",
            entry["description"] or "(no description)",
            "",
            f"Period: {entry['period']}; rows: {entry['rows']:,}; released: "
            f"{entry['released_at'] or 'not yet'}; disclosure: "
            f"{json.dumps(entry['disclosure'], sort_keys=True)}.",
            "",
            *(f"- `{c.name}` ({c.kind}): {c.description}" for c in table.columns),
            "",
        ]
    return "\n".join(lines)
