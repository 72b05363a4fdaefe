"""The scan cache in the state database: each table's last findings and fingerprint.

Keyed by the store's display URL (``connectors.urls.mask_url``: no password, no secret
query parameter) so that two policies naming the same database share the work, and two
databases behind the same store name do not.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Row, delete, insert, select

from flows.scan import CachedScan, TableScan
from flows.state.tables import scan_cache


class StateScanCache:
    def __init__(self, engine: Engine, *, read_only: bool = False) -> None:
        self.engine = engine
        self.read_only = read_only

    def get(self, store_url: str, schema: str | None, table: str) -> CachedScan | None:
        statement = select(scan_cache).where(
            scan_cache.c.store_url == store_url,
            scan_cache.c.db_schema == (schema or ""),
            scan_cache.c.table_name == table,
        )
        with self.engine.connect() as connection:
            row = connection.execute(statement).first()
        return None if row is None else _cached(row)

    def tables(self, store_url: str) -> dict[tuple[str | None, str], CachedScan]:
        """Every table of the store the cache holds, by schema (None: the default) and
        name: what the last scan of each found."""
        statement = select(scan_cache).where(scan_cache.c.store_url == store_url)
        with self.engine.connect() as connection:
            rows = connection.execute(statement).all()
        return {(row.db_schema or None, row.table_name): _cached(row) for row in rows}

    def put(self, store_url: str, scan: TableScan) -> None:
        if self.read_only:
            return
        key = (
            scan_cache.c.store_url == store_url,
            scan_cache.c.db_schema == (scan.schema or ""),
            scan_cache.c.table_name == scan.table,
        )
        with self.engine.begin() as connection:
            connection.execute(delete(scan_cache).where(*key))
            connection.execute(
                insert(scan_cache).values(
                    store_url=store_url,
                    db_schema=scan.schema or "",
                    table_name=scan.table,
                    schema_hash=scan.schema_hash,
                    row_bucket=scan.row_bucket,
                    sample_size=scan.sample_size,
                    scanned_at=scan.scanned_at,
                    findings=scan.findings_json(),
                )
            )


def _cached(row: Row[Any]) -> CachedScan:
    return CachedScan(
        schema_hash=row.schema_hash,
        row_bucket=row.row_bucket,
        sample_size=row.sample_size,
        scanned_at=row.scanned_at,
        columns=TableScan.columns_from_json(row.findings),
    )
