"""The ledger: runs, their committed chunks and the per-policy lock.

The stores keep their own journal of committed chunks; the ledger mirrors it, so that a
run killed between a store's commit and the ledger's write is reconciled by the next run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Engine,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from flows.state.tables import chunks, locks, run_stores, runs, utc


class RunLocked(RuntimeError):
    """Another run of the same policy is in progress."""


@dataclass(frozen=True)
class ChunkRecord:
    run_id: str
    dataset: str
    chunk_no: int
    action: str
    rows: int


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
        evaluated = utc(row.evaluated_at)
        return {
            "run_id": run_id,
            "policy": row.policy,
            "policy_sha256": row.policy_sha256,
            "evaluated_at": evaluated.isoformat(),
        }

    def committed(self, run_id: str) -> dict[tuple[str, str], tuple[int, int]]:
        """The run's recorded chunks by dataset and action: their rows and their number."""
        return self.committed_runs(run_id).get(run_id, {})

    def committed_runs(
        self, run_id: str | None = None
    ) -> dict[str, dict[tuple[str, str], tuple[int, int]]]:
        """Every run's recorded chunks (or ``run_id``'s), by run, then by dataset and
        action: their rows and their number, summed in the database."""
        statement = select(
            chunks.c.run_id,
            chunks.c.dataset,
            chunks.c.action,
            func.sum(chunks.c.rows),
            func.count(),
        ).group_by(chunks.c.run_id, chunks.c.dataset, chunks.c.action)
        if run_id is not None:
            statement = statement.where(chunks.c.run_id == run_id)
        with self.engine.connect() as connection:
            found = connection.execute(statement).all()
        by_run: dict[str, dict[tuple[str, str], tuple[int, int]]] = {}
        for run, dataset, action, rows, number in found:
            by_run.setdefault(run, {})[(dataset, action)] = (int(rows), int(number))
        return by_run

    def real_runs(self) -> dict[str, datetime]:
        """Every run that was not a dry run, by id: when it started (UTC)."""
        statement = select(runs.c.run_id, runs.c.started_at).where(runs.c.dry_run.is_(False))
        with self.engine.connect() as connection:
            found = connection.execute(statement).all()
        return {row.run_id: utc(row.started_at) for row in found}

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
