"""The append-only audit log: what was destroyed, anonymized or aggregated, and when.

Each entry carries the hash of the one before it, so editing, removing or reordering
an entry breaks the chain and `verify` names where. The head hash can be copied to an
external record to detect removal of the newest entries too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from flows.ledger import audit

GENESIS = "0" * 64


def canonical(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def chain_hash(prev_hash: str, text: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{text}".encode()).hexdigest()


def append(engine: Engine, entries: Sequence[Mapping[str, Any]]) -> None:
    """Append entries in one transaction, continuing the chain."""
    with engine.begin() as connection:
        last = connection.execute(
            select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
        ).first()
        seq, prev = (last.seq, last.hash) if last else (0, GENESIS)
        for entry in entries:
            text = canonical(entry)
            seq, digest = seq + 1, chain_hash(prev, text)
            connection.execute(
                insert(audit).values(
                    seq=seq, recorded_at=datetime.now(UTC), entry=text, prev_hash=prev, hash=digest
                )
            )
            prev = digest


@dataclass(frozen=True)
class Verification:
    entries: int
    head: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(engine: Engine) -> Verification:
    """Recompute the chain from the first entry; report every break."""
    problems: list[str] = []
    prev, expected_seq, count = GENESIS, 1, 0
    with engine.connect() as connection:
        rows = connection.execute(select(audit).order_by(audit.c.seq))
        for row in rows:
            count += 1
            if row.seq != expected_seq:
                problems.append(
                    f"entry {row.seq}: expected entry {expected_seq} (removed or reordered)"
                )
            if row.prev_hash != prev:
                problems.append(f"entry {row.seq}: does not follow the entry before it")
            if chain_hash(row.prev_hash, row.entry) != row.hash:
                problems.append(f"entry {row.seq}: content does not match its hash (edited)")
            prev, expected_seq = row.hash, row.seq + 1
    return Verification(count, prev, problems)


def entries(engine: Engine, run_id: str | None = None) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        texts = connection.scalars(select(audit.c.entry).order_by(audit.c.seq))
        decoded = [json.loads(text) for text in texts]
    return [e for e in decoded if run_id is None or e.get("run_id") == run_id]
