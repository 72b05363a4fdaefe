"""A rollup the rollup tests share: page views by month and feature."""

from __future__ import annotations

from connectors.protocol import ChunkWork, Connector, ExpirySelection, RollupSink
from connectors.sketches import PeopleKey


def views_by_feature(secret: bytes, min_cell_size: int) -> RollupSink:
    """Views by month and feature: rows, the sum and median of ``ms``, distinct
    ``visitor`` values and people (``visitor``), hashed with a key made of ``secret``."""
    return RollupSink(
        "views",
        "month",
        ("feature",),
        sums=("ms",),
        distinct=("visitor",),
        quantiles=("ms",),
        min_cell_size=min_cell_size,
        subject="visitor",
        people_key=PeopleKey.from_secret(secret),
    )


def aggregate_chunks(
    connector: Connector,
    label: str,
    selection: ExpirySelection,
    sinks: tuple[RollupSink, ...],
    limit: int,
    run_id: str = "run-1",
) -> int:
    """Aggregate-then-delete chunks of ``limit`` rows into ``sinks`` until nothing
    selected is left: the number of chunks."""
    after, chunks = None, 0
    while True:
        work = ChunkWork(
            run_id,
            label,
            chunks + 1,
            selection,
            after,
            limit,
            "aggregate_then_delete",
            "UTC",
            (),
            sinks,
        )
        result = connector.execute_chunk(work)
        if result.last is None:
            return chunks
        chunks, after = chunks + 1, result.last
