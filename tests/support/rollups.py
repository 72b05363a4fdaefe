"""A rollup the rollup tests share: page views by month and feature."""

from __future__ import annotations

from connectors.protocol import RollupSink
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
