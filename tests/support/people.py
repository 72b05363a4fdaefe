"""A table of people whose expired rows are anonymized through the SQL connector, chunk
by chunk, as the engine does it: SQL forms run in the database, the rest in pandas."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from connectors.protocol import ChunkWork, ColumnRewrite, ConnectorOptions, ExpirySelection
from connectors.sql.connector import SQLConnector

people = sa.Table(
    "people",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("phone", sa.String(20)),
    sa.Column("postcode", sa.String(10)),
    sa.Column("born", sa.Date),
    sa.Column("email", sa.String(200)),
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def person(i: int) -> dict[str, Any]:
    """Person ``i``: expired (seen 400 days before ``NOW``) unless ``i`` is a multiple of 4."""
    return {
        "id": i,
        "seen_at": NOW - timedelta(days=400 if i % 4 else 10),  # every 4th is kept
        "phone": None if i == 5 else f"514-555-{i:04d}",
        "postcode": ["h2x 1y4", " K1A0B1", "not one", None][i % 4],
        "born": date(1950 + i, 1 + i % 12, 1 + i),
        "email": f"person{i}@example.com",
    }


def spy(name: str, transform: Callable[[Any], Any], calls: list[str]) -> Callable[[Any], Any]:
    """``transform``, noting ``name`` in ``calls`` each time pandas runs it."""

    def spied(values: Any) -> Any:
        calls.append(name)
        return transform(values)

    return spied


def anonymize(url: str, rewrites: tuple[ColumnRewrite, ...]) -> None:
    """Every expired row, three per chunk, as the engine does it."""
    connector = SQLConnector("test", url, ConnectorOptions(read_only=False))
    selection = ExpirySelection(
        "people", "seen_at", NOW - timedelta(days=365), primary_key=("id",), skip_marked="forms"
    )
    after, chunk_no = None, 1
    try:
        while True:
            work = ChunkWork(
                "run", "forms", chunk_no, selection, after, 3, "anonymize", rewrites=rewrites
            )
            result = connector.execute_chunk(work)
            if result.last is None:
                return
            after, chunk_no = result.last, chunk_no + 1
    finally:
        connector.close()
