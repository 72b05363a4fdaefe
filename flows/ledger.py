"""The state database: runs, their committed chunks, the per-policy lock, the audit log.

SQLite beside the demo store by default, any SQLAlchemy URL in production. The stores
keep their own journal of committed chunks; the ledger mirrors it, so that a run killed
between a store's commit and the ledger's write is reconciled by the next run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
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
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

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


@dataclass(frozen=True)
class ChunkRecord:
    run_id: str
    dataset: str
    chunk_no: int
    action: str
    rows: int


def open_state(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    metadata.create_all(engine, checkfirst=True)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL lets a reader (a report, a test) look at the ledger while a run writes it.
    NORMAL synchronous mode skips a sync per chunk: a ledger entry lost to a power cut is
    recovered from the store's own journal by the next run."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
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
                if not _holder_gone(holder.host, holder.pid):
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
        self, run_id: str, policy: str, sha256: str, now: datetime, dry_run: bool
    ) -> None:
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

    def finish_run(self, run_id: str, status: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(runs)
                .where(runs.c.run_id == run_id)
                .values(status=status, finished_at=datetime.now(UTC))
            )

    def unfinished_runs(self, policy: str) -> list[str]:
        """Runs left 'running' by a process that died; called with the lock held."""
        statement = select(runs.c.run_id).where(
            runs.c.policy == policy, runs.c.status == "running", runs.c.dry_run.is_(False)
        )
        with self.engine.connect() as connection:
            return list(connection.scalars(statement.order_by(runs.c.started_at)))

    def record_chunk(self, record: ChunkRecord, committed_at: datetime | None = None) -> bool:
        """Record a committed chunk once; False when it was already recorded."""
        values = {**record.__dict__, "committed_at": committed_at or datetime.now(UTC)}
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(chunks).values(values))
        except IntegrityError:
            return False
        return True


def _holder_gone(host: str, pid: int) -> bool:
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
