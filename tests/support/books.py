"""What a store's journal and the state's audit log and register say a run did, to
compare them after a crash."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from flows import audit, register
from flows.state.tables import open_state

#: The audit entry's counters of rows changed, whatever the action.
COUNTERS = tuple(audit.ACTION_COUNTERS.values())


def journal(store: str) -> dict[tuple[str, str], tuple[str, int, int]]:
    """(run, dataset) → (action, rows, chunks), as the store's journal says."""
    engine = create_engine(store)
    with engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT run_id, label, action, SUM(rows), COUNT(*) FROM tenure_journal "
                "GROUP BY run_id, label, action"
            )
        ).all()
    engine.dispose()
    return {(r[0], r[1]): (r[2], int(r[3]), int(r[4])) for r in rows}


def books(state: str) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """(run, dataset) → rows, as the audit log says, and as the register says."""
    engine = open_state(state)
    audited: dict[tuple[str, str], int] = {}
    for entry in audit.entries(engine):
        if "dataset" in entry:
            key = (entry["run_id"], entry["dataset"])
            audited[key] = audited.get(key, 0) + sum(int(entry.get(c) or 0) for c in COUNTERS)
    registered = {
        (entry["run_id"], record["dataset"]): record["records_this_run"]
        for entry in register.entries(engine)
        for record in entry["datasets"]
    }
    engine.dispose()
    return audited, registered
