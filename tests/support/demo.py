"""The demo store the tests build, and how they read a SQLite copy of it back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine

from flows.demo.schema import metadata

#: The demo data is generated up to this instant so that every expectation is fixed.
DEMO_AS_OF = datetime(2026, 11, 24, tzinfo=UTC)
#: The demo's tables, parents first.
TABLES = [table.name for table in metadata.sorted_tables]


def build_demo(url: str, customers: int = 60) -> dict[str, int]:
    """A demo store of ``customers`` customers at ``url`` (any backend); rows per table."""
    from flows.demo.generate import DemoSpec, build_demo_store  # Faker: only when building

    engine = create_engine(url)
    try:
        return build_demo_store(engine, DemoSpec(customers=customers, as_of=DEMO_AS_OF))
    finally:
        engine.dispose()


def demo_files_environ(root: Path) -> dict[str, str]:
    """Point the shipped policy's ``mail`` and ``weblogs`` stores at demo files under
    ``root`` (their defaults are relative to the working directory), and its published
    statistics at ``root/published`` (by default beside the repository's demo)."""
    return {
        "TENURE_MAIL_URL": f"maildir:///{root / 'mail'}?internal_domains=360.agency",
        "TENURE_WEBLOGS_URL": f"files:///{root / 'weblogs'}",
        "TENURE_PUBLISH_URL": str(root / "published"),
    }


def rows(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """What ``sql`` reads from the SQLite file at ``path``."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def table_contents(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every demo table in a SQLite demo store, in key order."""
    return {name: rows(path, f"SELECT * FROM {name} ORDER BY id") for name in TABLES}


def instants(path: Path, sql: str) -> Iterator[datetime]:
    """SQLite keeps naive UTC text; read it back as aware UTC instants."""
    for (text,) in rows(path, sql):
        if text is not None:
            yield datetime.fromisoformat(str(text)).replace(tzinfo=UTC)
