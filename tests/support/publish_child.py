"""Released tables made up for the publish tests, and a child process that publishes
them and dies (SIGKILL) or sleeps part-way.

Usage: python -m tests.support.publish_child DESTINATION VERSION ACTION AFTER

``DESTINATION`` is ``sql:URL`` (prefix ``pub_``; on PostgreSQL schema ``stats``) or
``parquet:FOLDER``; ``VERSION`` picks the release (`tables`); ``ACTION`` is ``kill``
(SIGKILL itself once ``AFTER`` tables or files are written), ``sleep`` (pause a second
after each) or ``none``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from flows.releases import ReleasedTable

SCHEMA = "stats"
PREFIX = "pub_"


def tables(version: int) -> list[ReleasedTable]:
    """Three rollups; each version has other figures and one more period."""
    made = []
    for number, rollup in enumerate(("clicks_by_page", "active_by_feature", "tickets_by_channel")):
        periods = [date(2025, month, 1) for month in range(1, 3 + version)]
        rows: list[dict[str, Any]] = [
            {
                "period": period,
                "feature": feature,
                "people": 10 * version + i + number,
                "people_margin95": 4,
                "mean_ms": 1.5 * version + i,
            }
            for i, (period, feature) in enumerate(
                (p, f) for p in periods for f in ("forms", "reports")
            )
        ]
        frame = pd.DataFrame(rows).astype({"people": "Int64", "people_margin95": "Int64"})
        made.append(
            ReleasedTable(
                dataset="web_clicks",
                rollup=rollup,
                period="month",
                frame=frame,
                description=f"{rollup} per month",
                columns={
                    "period": "first day of the month",
                    "feature": "feature used",
                    "people": "people, with noise",
                    "people_margin95": "95% bound of the noise",
                    "mean_ms": "mean response time",
                },
                disclosure={"method": "differential_privacy", "epsilon": 1.0, "per": "month"},
                released_at=datetime(2025, 3 + version, 1, tzinfo=UTC),
            )
        )
    return made


def publish_model(destination: str) -> Any:
    from retention_rules.model import Publish

    kind, _, where = destination.partition(":")
    if kind == "sql":
        schema = SCHEMA if where.startswith("postgresql") else None
        return Publish(sql=where, db_schema=schema, prefix=PREFIX)
    return Publish(parquet=where)


def _after(count: int, action: str) -> None:
    """Make the publish stop (or pause) once ``count`` tables or files are written."""
    import flows.publish as publish

    written = {"n": 0}

    def step() -> None:
        written["n"] += 1
        if action == "sleep":
            time.sleep(1.0)
        elif written["n"] == count:
            os.kill(os.getpid(), signal.SIGKILL)

    replace_table, stage_file = publish._replace_table, publish.stage_file

    def replace_then(*args: Any) -> None:
        replace_table(*args)
        step()

    def stage_then(*args: Any) -> str:
        path = stage_file(*args)
        step()
        return path

    publish._replace_table = replace_then  # type: ignore[assignment]
    publish.stage_file = stage_then  # type: ignore[assignment]


def main(destination: str, version: int, action: str, after: int) -> None:
    from flows.publish import publish_tables

    if action != "none":
        _after(after, action)
    publish_tables(tables(version), publish_model(destination), "demo", Path.cwd())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
