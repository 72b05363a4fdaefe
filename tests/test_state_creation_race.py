"""Two runs that start together on a new state database both get it.

``create_all`` looks for each table, then creates the missing ones: a run that creates
a table in between made the other fail with "table tenure_runs already exists" (seen in
``test_two_concurrent_runs_from_two_folders_delete_only_the_expired_rows``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect

from flows.state.tables import open_state, runs


def test_a_table_created_by_another_run_meanwhile_is_taken_as_it_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    other = create_engine(url)
    created: list[str] = []

    def meanwhile(target: Any, connection: Any, **kw: Any) -> None:
        if not created:  # the other run creates the table after this one looked
            created.append(target.name)
            with other.begin() as theirs:
                target.create(theirs)

    event.listen(runs, "before_create", meanwhile)
    try:
        engine = open_state(url)
    finally:
        event.remove(runs, "before_create", meanwhile)
        other.dispose()
    assert created == ["tenure_runs"]
    assert "tenure_runs" in inspect(engine).get_table_names()
    engine.dispose()
