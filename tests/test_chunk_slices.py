"""Which walk a chunk takes: slices of an integer key or a timestamp clock, else pages
in key order. Every table gets one, whatever its key and clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from connectors.protocol import ChunkWork, ConnectorOptions, ExpirySelection
from connectors.sql.connector import SQLConnector

CUTOFF = datetime(2024, 1, 1, tzinfo=UTC)


def _delete_all_expired(url: str, selection: ExpirySelection) -> tuple[int, int]:
    connector = SQLConnector("shop", url, ConnectorOptions(read_only=False))
    after, rows, chunks = None, 0, 0
    try:
        while True:
            work = ChunkWork("run-1", "codes", chunks + 1, selection, after, 3, "delete")
            result = connector.execute_chunk(work)
            if result.last is None:
                return rows, chunks
            rows, chunks, after = rows + result.rows, chunks + 1, result.last
    finally:
        connector.close()


def test_a_text_key_and_an_epoch_clock_go_page_by_page(tmp_path: Path) -> None:
    """Neither column can be sliced: the walk pages through the keys."""
    url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    codes = sa.Table(
        "codes",
        sa.MetaData(),
        sa.Column("code", sa.String(10), primary_key=True),
        sa.Column("issued", sa.Integer, nullable=False),
    )
    engine = sa.create_engine(url)
    codes.create(engine)
    old, new = int(CUTOFF.timestamp()) - 86_400, int(CUTOFF.timestamp()) + 86_400
    with engine.begin() as connection:
        connection.execute(
            sa.insert(codes),
            [{"code": f"c{i:02d}", "issued": old if i % 3 else new} for i in range(10)],
        )
    selection = ExpirySelection(
        "codes", "issued", CUTOFF, primary_key=("code",), clock_format="epoch_seconds"
    )
    assert _delete_all_expired(url, selection) == (6, 2)
    with engine.connect() as connection:
        left = connection.execute(sa.select(codes.c.code).order_by(codes.c.code)).scalars().all()
    engine.dispose()
    assert left == ["c00", "c03", "c06", "c09"]
