"""The state database's tables (runs, chunks, the stores a run may write, locks, the audit
log, releases and the privacy loss they spent, the register, the scan cache, the requests
of people and their events), opening it and checking its layout.

SQLite beside the demo store by default, any SQLAlchemy URL in production.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    make_url,
)
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from connectors.urls import hide_secrets, mask_url, read_only_url

metadata = MetaData()
runs = Table(
    "tenure_runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("policy", String(63), nullable=False),
    Column("policy_sha256", String(64), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("evaluated_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(12), nullable=False),
)
chunks = Table(
    "tenure_chunks",
    metadata,
    Column("run_id", String(36), nullable=False),
    Column("dataset", String(63), nullable=False),
    Column("chunk_no", Integer, nullable=False),
    Column("action", String(24), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("committed_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("run_id", "dataset", "chunk_no"),
)
run_stores = Table(
    "tenure_run_stores",  # the stores each run may write: whose journals close it if it dies
    metadata,
    Column("run_id", String(36), nullable=False),
    Column("store", String(63), nullable=False),
    PrimaryKeyConstraint("run_id", "store"),
)
locks = Table(
    "tenure_locks",
    metadata,
    Column("policy", String(63), primary_key=True),
    Column("run_id", String(36), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
)
audit = Table(
    "tenure_audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("entry", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("key_id", String(32), nullable=False),
)
releases = Table(
    "tenure_releases",
    metadata,
    Column("dataset", String(63), nullable=False),
    Column("rollup", String(63), nullable=False),
    Column("period_start", String(10), nullable=False),
    Column("release_no", Integer, nullable=False),
    Column("run_id", String(36), nullable=False),
    Column("released_at", DateTime(timezone=True), nullable=False),
    Column("cells", Text, nullable=False),
    PrimaryKeyConstraint("dataset", "rollup", "period_start", "release_no"),
)
privacy_loss = Table(
    "tenure_privacy_loss",  # each release of a period under differential privacy
    metadata,
    Column("dataset", String(63), nullable=False),
    Column("rollup", String(63), nullable=False),
    Column("period_start", String(10), nullable=False),
    Column("release_no", Integer, nullable=False),
    Column("year", Integer, nullable=False),  # the calendar year of the period: its budget
    Column("epsilon", Float(precision=53), nullable=False),  # double, on MySQL too
    Column("sensitivity", Integer, nullable=False),
    Column("scale", Float(precision=53), nullable=False),
    Column("run_id", String(36), nullable=False),
    Column("released_at", DateTime(timezone=True), nullable=False),
    # The cells' true counts, to tell whether late rows changed a period: as sensitive
    # as the stores (never published, never printed).
    Column("exact", Text, nullable=False),
    PrimaryKeyConstraint("dataset", "rollup", "period_start", "release_no"),
)
register = Table(
    "tenure_register",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("run_id", String(36), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("entry", Text, nullable=False),
)
scan_cache = Table(
    "tenure_scan_cache",
    metadata,
    Column("store_url", String(500), nullable=False),
    Column("db_schema", String(128), nullable=False),
    Column("table_name", String(128), nullable=False),
    Column("schema_hash", String(64), nullable=False),
    Column("row_bucket", Integer, nullable=False),
    Column("sample_size", Integer, nullable=False),
    Column("scanned_at", DateTime(timezone=True), nullable=False),
    Column("findings", Text, nullable=False),
    PrimaryKeyConstraint("store_url", "db_schema", "table_name"),
)


requests = Table(
    "tenure_requests",  # one row per request of a person (flows.rights.register)
    metadata,
    Column("request_id", String(16), primary_key=True),
    Column("policy", String(63), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("received", Date, nullable=False),
    Column("jurisdictions", Text, nullable=False),
    Column("language", String(8), nullable=False),
    Column("identifiers", Text),  # JSON; NULL once purged
    Column("details", Text),  # JSON; NULL once purged
    Column("verified_at", DateTime(timezone=True)),
    Column("verified_method", Text),
    Column("verified_by", Text),
    Column("status", String(16), nullable=False),
    Column("due", Date, nullable=False),
    Column("extended_due", Date),
    Column("decision", Text),
    Column("reasons", Text),
    Column("provision", Text),
    Column("recourse", Text),
    Column("package_sha256", String(64)),
    Column("package_path", Text),  # NULL once purged (the file is deleted)
    Column("counts", Text),  # JSON
    Column("failed_stores", Text),  # JSON
    Column("closed_at", DateTime(timezone=True)),
    Column("purged_at", DateTime(timezone=True)),
)
request_events = Table(
    "tenure_request_events",  # what happened to a request: never identifiers or values
    metadata,
    Column("request_id", String(16), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("event", String(24), nullable=False),
    Column("detail", Text, nullable=False),  # JSON
    PrimaryKeyConstraint("request_id", "seq"),
)
request_numbers = Table(
    "tenure_request_numbers",  # the last request number of each year: never given twice
    metadata,
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("last", Integer, nullable=False),
)


def utc(moment: datetime) -> datetime:
    """An instant read back from the state database: one without zones (SQLite, MySQL)
    gives it back naive, and it was written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class StateError(RuntimeError):
    """The state database cannot be opened; the message shows its URL masked."""


class StateMissing(StateError):
    """A command that only reads found no state database (and created none)."""


def open_state(url: str) -> Engine:
    """The state database, created (tables included) when missing: for runs and scans,
    which write it. Commands that only read use ``existing_state``. A URL that does not
    parse, a driver that is missing or a database that cannot be reached raises
    ``StateError``, its URL masked."""
    try:
        engine = create_engine(url)
    except (ArgumentError, ValueError, ImportError):
        raise StateError(f"not a SQLAlchemy URL or no driver for it: {mask_url(url)}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        _create_tables(engine)
        _check_layout(engine, mask_url(url))
    except SQLAlchemyError as exc:
        engine.dispose()
        raise unreachable(exc, url) from None
    except StateError:
        engine.dispose()
        raise
    return engine


#: How often the tables' creation is tried again when another process created one of
#: them between the check and the CREATE (two runs starting on a new state database).
_CREATE_ATTEMPTS = 5


def _create_tables(engine: Engine) -> None:
    """Create the missing tables. ``checkfirst`` looks, then creates: a process that
    created a table in between makes this CREATE fail with "already exists", and the
    next look finds the table."""
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            metadata.create_all(engine, checkfirst=True)
            return
        except SQLAlchemyError as exc:
            text = str(getattr(exc, "orig", None) or exc).lower()
            raced = "already exists" in text or "duplicate" in text
            if not raced or attempt == _CREATE_ATTEMPTS - 1:
                raise


def unreachable(exc: SQLAlchemyError, url: str) -> StateError:
    """The driver's first line, with the URL's secrets hidden."""
    reason = hide_secrets(str(getattr(exc, "orig", None) or exc).strip(), url)
    return StateError(f"state database at {mask_url(url)}: {reason.splitlines()[0]}")


def _check_layout(engine: Engine, shown: str) -> None:
    """Refuse a state database whose tables lack columns this version writes (one made
    by an earlier Tenure): a run must not delete what it then cannot audit."""
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in present]
        if missing:
            raise StateError(
                f"state database at {shown} was made by an earlier Tenure ({table.name} has "
                f"no {', '.join(missing)}): keep it as the record of past runs and start a "
                "new one with --state or TENURE_STATE_URL"
            )


def existing_state(url: str) -> Engine:
    """The state database opened for reading, never created: a SQLite file read-only,
    any other database only after checking it holds Tenure's tables. Raises
    ``StateMissing`` ("no state database at …") or ``StateError``."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StateError(f"not a SQLAlchemy URL: {mask_url(url)}") from None
    shown = mask_url(parsed)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if parsed.database in (None, "", ":memory:") or not path.is_file():
            raise StateMissing(f"no state database at {shown}")
        parsed = read_only_url(parsed)
    try:
        engine = create_engine(parsed)
    except ImportError:
        raise StateError(f"no driver for the state database at {shown}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_reader_pragmas)
    try:
        present = inspect(engine).has_table(audit.name)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise unreachable(exc, url) from None
    if not present:
        engine.dispose()
        raise StateMissing(f"no state database at {shown} (no Tenure tables in it)")
    try:
        _check_layout(engine, shown)
    except StateError:
        engine.dispose()
        raise
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL lets a reader (a report, a test) look at the ledger while a run writes it.
    NORMAL synchronous mode skips a sync per chunk: a ledger entry lost to a power cut is
    recovered from the store's own journal by the next run."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    _sqlite_reader_pragmas(connection, _record)


def _sqlite_reader_pragmas(connection: Any, _record: Any) -> None:
    """Wait for a writer rather than fail (a reader cannot change the journal mode)."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
