"""The anonymization register: one entry per run that anonymizes, in the state database.

Quebec's regulation on anonymization (2024) asks the organisation to record what
information was anonymized, why it is kept, the techniques used, the re-identification
risk analysis and its date, and when that analysis must be redone. Each entry is checked
against ``flows/schemas/register.schema.json`` before it is written and again when
exported, so a register that does not say all of that cannot be produced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select

from flows.json_schemas import first_error
from flows.state.tables import register


class RegisterError(ValueError):
    """An entry does not match the register's schema (a bug: nothing was written)."""


def check(entry: Mapping[str, Any]) -> None:
    """Raise ``RegisterError`` naming the first place where ``entry`` breaks the schema."""
    error = first_error("register.schema.json", entry)
    if error is not None:
        where, message = error
        raise RegisterError(f"register entry invalid at {where or '(entry)'}: {message}")


def append(state: Engine, entry: Mapping[str, Any]) -> None:
    """Check and append one entry."""
    check(entry)
    with state.begin() as connection:
        last = connection.execute(select(func.coalesce(func.max(register.c.seq), 0))).scalar_one()
        connection.execute(
            insert(register).values(
                seq=int(last) + 1,
                run_id=entry["run_id"],
                recorded_at=datetime.now(UTC),
                entry=json.dumps(entry, sort_keys=True, ensure_ascii=False),
            )
        )


def recorded(state: Engine, run_id: str) -> bool:
    """Whether the register has an entry of ``run_id``."""
    statement = select(register.c.seq).where(register.c.run_id == run_id).limit(1)
    with state.connect() as connection:
        return connection.execute(statement).first() is not None


def entries(state: Engine) -> list[dict[str, Any]]:
    """Every entry, oldest first, each checked against the schema."""
    with state.connect() as connection:
        texts = connection.scalars(select(register.c.entry).order_by(register.c.seq)).all()
    decoded = [json.loads(text) for text in texts]
    for entry in decoded:
        check(entry)
    return decoded


def entry_for_run(
    run: Mapping[str, Any], datasets: Sequence[Mapping[str, Any]], redo_by: date
) -> dict[str, Any]:
    """An entry from a run's fields (run_id, policy, policy_sha256, evaluated_at) and the
    per-binding records built by the engine."""
    analysed = datetime.fromisoformat(str(run["evaluated_at"]))
    return {
        "run_id": run["run_id"],
        "policy": run["policy"],
        "policy_sha256": run["policy_sha256"],
        "recorded_at": datetime.now(UTC).isoformat(),
        "analysis_date": analysed.date().isoformat(),
        "redo_by": redo_by.isoformat(),
        "datasets": list(datasets),
    }
