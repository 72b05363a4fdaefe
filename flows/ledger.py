"""The state database: runs, their committed chunks, the per-policy lock, the audit log.

SQLite beside the demo store by default, any SQLAlchemy URL in production. The stores
keep their own journal of committed chunks; the ledger mirrors it, so that a run killed
between a store's commit and the ledger's write is reconciled by the next run.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    make_url,
    select,
    update,
)
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from connectors.record_connector import user_state_home
from connectors.urls import hide_secrets, mask_url, read_only_url
from flows.stores import sqlite_store_dir
from retention_rules.loader import LoadedPolicy

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


class RunLocked(RuntimeError):
    """Another run of the same policy is in progress."""


class StateError(RuntimeError):
    """The state database cannot be opened; the message shows its URL masked."""


class StateMissing(StateError):
    """A command that only reads found no state database (and created none)."""


@dataclass(frozen=True)
class ChunkRecord:
    run_id: str
    dataset: str
    chunk_no: int
    action: str
    rows: int


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
        metadata.create_all(engine, checkfirst=True)
        _check_layout(engine, mask_url(url))
    except SQLAlchemyError as exc:
        engine.dispose()
        raise _unreachable(exc, url) from None
    except StateError:
        engine.dispose()
        raise
    return engine


def _unreachable(exc: SQLAlchemyError, url: str) -> StateError:
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


#: Where flows find the state database's URL by default: an environment variable.
STATE_VARIABLE = "TENURE_STATE_URL"
_VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_BLOCK_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def state_url_from(reference: str) -> str | None:
    """The state URL a flow parameter refers to, never the URL itself (Prefect stores
    and shows parameters): the name of an environment variable (``TENURE_STATE_URL``;
    unset: None, the default location), or of a Prefect Secret block
    (``tenure-state-url``, which must exist)."""
    if _VARIABLE_NAME.fullmatch(reference):
        return absolute_by_reference(os.environ.get(reference) or None, reference)
    if _BLOCK_NAME.fullmatch(reference):
        from anonymizers.secrets import prefect_secret

        value = prefect_secret(reference)
        if not value:
            raise StateError(f"no Prefect Secret block {reference!r} holding the state URL")
        return absolute_by_reference(value, f"the Prefect Secret block {reference!r}")
    raise StateError(
        "the state database is named by an environment variable (e.g. TENURE_STATE_URL) "
        "or a Prefect Secret block, never by its URL: Prefect would store the URL"
    )


@dataclass(frozen=True)
class StateLocation:
    """Where a policy's state database is, and what said so (``state_location``)."""

    url: str = field(repr=False)
    """May hold a password: shown only through ``shown``."""
    source: str
    """``--state``, ``TENURE_STATE_URL``, ``policy state:`` or ``default``."""

    @property
    def shown(self) -> str:
        return mask_url(self.url)

    def __str__(self) -> str:
        return f"{self.shown} ({self.source})"

    @property
    def sqlite_path(self) -> Path | None:
        """The file, when the state database is a SQLite file."""
        try:
            parsed = make_url(self.url)
        except (ArgumentError, ValueError):
            return None
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return None
        return Path(parsed.database or "")

    def open(self, *, create: bool = False) -> Engine:
        """``open_state`` (creating the default location's folder) or ``existing_state``."""
        path = self.sqlite_path
        if create and path is not None and self.source == "default":
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
        return open_state(self.url) if create else existing_state(self.url)


def state_location(
    loaded: LoadedPolicy, given: str | None = None, environ: Mapping[str, str] | None = None
) -> StateLocation:
    """The one rule for where a policy's state database is: ``given`` (``--state``, or
    the ``TENURE_STATE_URL`` it defaults to), else the policy's ``state:``, else
    ``default_state_url``. A path (or a ``sqlite:///`` URL) names a SQLite file, relative
    to the working directory when typed on the command line, to the policy file's folder
    for ``state:``, and refused when relative in ``TENURE_STATE_URL``
    (``absolute_by_reference``). Raises ``StateError`` (one line, the URL masked) for a
    value that names no database."""
    environ = os.environ if environ is None else environ
    if given:
        source = STATE_VARIABLE if given == environ.get(STATE_VARIABLE) else "--state"
        if source == STATE_VARIABLE:
            absolute_by_reference(given, STATE_VARIABLE)
        return StateLocation(state_url(given, Path.cwd()), source)
    if loaded.policy.state:
        folder = loaded.path.absolute().parent
        return StateLocation(state_url(loaded.policy.state, folder), "policy state:")
    return StateLocation(default_state_url(loaded), "default")


def state_url(value: str, base: Path) -> str:
    """A state database given as a SQLAlchemy URL or as a path: a path is a SQLite file,
    made absolute against ``base``."""
    value = value.strip()
    if "://" not in value:
        if not value:
            raise StateError("empty: give a SQLAlchemy URL or a path")
        return f"sqlite:///{os.path.abspath(base / Path(value).expanduser())}"
    try:
        parsed = make_url(value)
        parsed.get_dialect()
    except (ArgumentError, ValueError):
        raise StateError(f"not a SQLAlchemy URL, nor a path: {mask_url(value)}") from None
    except ImportError:
        raise StateError(f"no driver for the state database at {mask_url(value)}") from None
    relative = relative_sqlite_file(value)
    if relative is not None:  # sqlite:///state.sqlite: a path like any other
        absolute = os.path.abspath(base / relative)
        return parsed.set(database=absolute).render_as_string(hide_password=False)
    return value


def relative_sqlite_file(value: str) -> str | None:
    """The relative path by which a state database value (a path or a SQLAlchemy URL)
    names a SQLite file; None for an absolute one, an in-memory one or a server."""
    value = value.strip()
    if "://" not in value:
        return value if value and not os.path.isabs(os.path.expanduser(value)) else None
    try:
        parsed = make_url(value)
    except (ArgumentError, ValueError):
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:") or os.path.isabs(database):
        return None
    return database


def absolute_by_reference(value: str | None, where: str) -> str | None:
    """A state database value set once for every process that reads it (an environment
    variable, a Prefect Secret block), refused in one line when it names a SQLite file
    by a relative path. Relative to what? Each process has its own working directory,
    and a Prefect worker starts each flow run in a new temporary one: each run would
    get a new state database (audit log, lock, ledger). A path typed on the command line
    is made absolute against the working directory instead, as the user who typed it
    means; a relative ``state:`` is the policy file's folder."""
    if value is not None and relative_sqlite_file(value) is not None:
        raise StateError(
            f"{where} names the state database by a relative path: give an absolute path "
            "or a URL (a relative one names another file in each folder a run starts "
            "from, and a Prefect worker starts each flow run in a new one)"
        )
    return value


def default_state_url(loaded: LoadedPolicy) -> str:
    """Where the state database is unless told: beside the policy's first SQLite store
    (the demo's); else in the per-user folder (``$XDG_STATE_HOME/tenure``), named by the
    policy and a digest of its file's absolute path. Never the working directory: runs
    of one policy from two folders, or by a Prefect worker, share one lock and one
    audit log."""
    beside = sqlite_store_dir(loaded.policy)
    if beside is not None:
        return f"sqlite:///{os.path.abspath(beside / 'tenure-state.sqlite')}"
    digest = hashlib.sha256(str(loaded.path.resolve()).encode()).hexdigest()[:16]
    return f"sqlite:///{user_state_home() / f'{loaded.policy.name}-{digest}.sqlite'}"


def state_problem(location: StateLocation) -> str | None:
    """Why a run could not keep its books in the state database, found without creating
    or changing anything; None when it can. A SQLite file (or the folder it would be
    created in) must be writable; a server must answer (a database without Tenure's
    tables is fine: the first run creates them), and PostgreSQL must grant what the run
    needs (``_postgresql_problem``)."""
    shown = location.shown
    path = location.sqlite_path
    if path is not None and not path.exists():
        folder = path.parent
        if not folder.is_dir() and location.source != "default":
            return f"no folder {folder} for the state database {shown}"
        while not folder.is_dir() and folder != folder.parent:
            folder = folder.parent  # the default location's folder is created
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"cannot create the state database {shown}: {folder} is read-only"
        return None
    if path is not None:
        if not os.access(path, os.R_OK | os.W_OK):
            return f"the state database {shown} is read-only"
        if not os.access(path.parent, os.W_OK | os.X_OK):
            return (
                f"the folder of the state database {shown} is read-only "
                "(SQLite writes its journal there)"
            )
    try:
        existing_state(location.url).dispose()
    except StateMissing:
        pass  # the first run creates Tenure's tables, if it may
    except StateError as exc:
        return str(exc)
    if path is not None:
        return None
    return _postgresql_problem(location.url)


#: What a run does to each of Tenure's tables besides reading and adding rows.
_CHANGED = {runs.name: "UPDATE", locks.name: "DELETE", scan_cache.name: "DELETE"}


def _postgresql_problem(url: str) -> str | None:
    """What a PostgreSQL state database would refuse a run, from its catalog (nothing
    is sent that writes): CREATE on the schema while a Tenure table is missing, SELECT
    and INSERT on each present one, and the UPDATE or DELETE the ledger, the lock and
    the scan cache make. Other servers are not asked (their first write tells)."""
    engine = create_engine(url)
    try:
        if engine.dialect.name != "postgresql":
            return None
        shown = mask_url(url)
        with engine.connect() as connection:

            def allowed(check: Any) -> bool:
                return bool(connection.execute(select(check)).scalar())

            inspector = inspect(connection)
            present = [t.name for t in metadata.sorted_tables if inspector.has_table(t.name)]
            missing = len(present) < len(metadata.sorted_tables)
            if missing and not allowed(func.has_schema_privilege(func.current_schema(), "CREATE")):
                return (
                    f"the state database {shown}: no CREATE privilege on its schema, for "
                    "Tenure's tables (grant it, or create them once as a role that has it)"
                )
            refused = [
                f"{privilege} on {table}"
                for table in present
                for privilege in ("SELECT", "INSERT", *_CHANGED.get(table, "").split())
                if not allowed(func.has_table_privilege(table, privilege))
            ]
        if refused:
            return f"the state database {shown}: no {', '.join(refused)}"
        return None
    except SQLAlchemyError as exc:
        return str(_unreachable(exc, url))
    finally:
        engine.dispose()


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
        raise _unreachable(exc, url) from None
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


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def locked(self, policy: str, run_id: str) -> Iterator[None]:
        """Hold the policy's lock; take over a lock whose holder process is gone."""
        self._acquire(policy, run_id)
        try:
            yield
        finally:
            with self.engine.begin() as connection:
                connection.execute(
                    delete(locks).where(locks.c.policy == policy, locks.c.run_id == run_id)
                )

    def _acquire(self, policy: str, run_id: str) -> None:
        row = {
            "policy": policy,
            "run_id": run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": datetime.now(UTC),
        }
        with self.engine.begin() as connection:
            holder = connection.execute(select(locks).where(locks.c.policy == policy)).first()
            if holder is not None:
                if not holder_gone(holder.host, holder.pid):
                    raise RunLocked(
                        f"policy {policy!r} is being run by run {holder.run_id} "
                        f"(pid {holder.pid} on {holder.host}, since {holder.acquired_at})"
                    )
                connection.execute(delete(locks).where(locks.c.policy == policy))
            try:
                connection.execute(insert(locks).values(row))
            except IntegrityError:
                raise RunLocked(f"policy {policy!r} was locked by another run just now") from None

    def start_run(
        self,
        run_id: str,
        policy: str,
        sha256: str,
        now: datetime,
        dry_run: bool,
        stores: Collection[str] = (),
    ) -> None:
        """Record a run as running, with the ``stores`` it may write: if it dies, those
        are the journals the next run must read to close it (``stores_of``)."""
        with self.engine.begin() as connection:
            connection.execute(
                insert(runs).values(
                    run_id=run_id,
                    policy=policy,
                    policy_sha256=sha256,
                    dry_run=dry_run,
                    evaluated_at=now,
                    started_at=datetime.now(UTC),
                    status="running",
                )
            )
            for store in sorted(set(stores)):
                connection.execute(insert(run_stores).values(run_id=run_id, store=store))

    def stores_of(self, run_id: str) -> set[str] | None:
        """The stores a run may have written, as it recorded when it started; None when it
        recorded none (a run adopted from a journal, or started by an earlier Tenure)."""
        statement = select(run_stores.c.store).where(run_stores.c.run_id == run_id)
        with self.engine.connect() as connection:
            found = set(connection.scalars(statement))
        return found or None

    def finish_run(self, run_id: str, status: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(runs)
                .where(runs.c.run_id == run_id)
                .values(status=status, finished_at=datetime.now(UTC))
            )

    def adopt_run(self, run_id: str, policy: str, first_seen: datetime) -> None:
        """Record a run the ledger never knew (its state database was lost) as
        interrupted, from what a store's journal says it committed."""
        with self.engine.begin() as connection:
            connection.execute(
                insert(runs).values(
                    run_id=run_id,
                    policy=policy,
                    policy_sha256="",
                    dry_run=False,
                    evaluated_at=first_seen,
                    started_at=first_seen,
                    status="running",
                )
            )

    def known_runs(self) -> set[str]:
        """Every run id the ledger holds, whatever its policy or status."""
        with self.engine.connect() as connection:
            return set(connection.scalars(select(runs.c.run_id)))

    def unfinished_runs(self, policy: str) -> list[str]:
        """Runs left 'running' by a process that died; called with the lock held."""
        statement = select(runs.c.run_id).where(
            runs.c.policy == policy, runs.c.status == "running", runs.c.dry_run.is_(False)
        )
        with self.engine.connect() as connection:
            return list(connection.scalars(statement.order_by(runs.c.started_at)))

    def run_fields(self, run_id: str) -> dict[str, Any]:
        """What every record of a run starts with: its id, policy, the policy file's
        SHA-256 (empty for a run adopted from a store's journal: unknown) and when it was
        evaluated."""
        statement = select(runs.c.policy, runs.c.policy_sha256, runs.c.evaluated_at)
        with self.engine.connect() as connection:
            row = connection.execute(statement.where(runs.c.run_id == run_id)).one()
        evaluated = row.evaluated_at  # a database without zones gives it back naive: UTC
        evaluated = evaluated if evaluated.tzinfo else evaluated.replace(tzinfo=UTC)
        return {
            "run_id": run_id,
            "policy": row.policy,
            "policy_sha256": row.policy_sha256,
            "evaluated_at": evaluated.isoformat(),
        }

    def committed(self, run_id: str) -> dict[tuple[str, str], tuple[int, int]]:
        """The run's recorded chunks by dataset and action: their rows and their number."""
        statement = (
            select(chunks.c.dataset, chunks.c.action, func.sum(chunks.c.rows), func.count())
            .where(chunks.c.run_id == run_id)
            .group_by(chunks.c.dataset, chunks.c.action)
        )
        with self.engine.connect() as connection:
            found = connection.execute(statement).all()
        return {(row[0], row[1]): (int(row[2]), int(row[3])) for row in found}

    def record_chunk(self, record: ChunkRecord, committed_at: datetime | None = None) -> bool:
        """Record a committed chunk once; False when it was already recorded."""
        values = {**record.__dict__, "committed_at": committed_at or datetime.now(UTC)}
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(chunks).values(values))
        except IntegrityError:
            return False
        return True


def holder_gone(host: str, pid: int) -> bool:
    """A lock held by a process of this machine that no longer exists is stale."""
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
