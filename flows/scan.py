"""The PII scan: classify every column of every store a policy names, then check coverage.

For each table the connector reports the columns and their type families, estimates
the row count and draws a random sample of each column's values inside the store; the
detector (``anonymizers.detection``) turns name, type and sample into entity
confidences. Nothing but entity types, confidences and counts leaves this module: the
sampled values are dropped as soon as a column is classified.

Scans are incremental. A table whose schema and row-count bucket (the count's power of
two) are those of the cached scan, sampled at the same size by the same classifier
(``classifier_fingerprint``), keeps its cached findings; ``full`` re-samples everything.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from anonymizers import detection
from anonymizers.detection import LABEL_THRESHOLD, VALUE_FAMILIES, ColumnSample, classify_table
from anonymizers.detection.entities import DIRECT_IDENTIFIERS, PERSONAL_ENTITIES
from connectors import workers
from connectors.errors import StoreError, StoreUnavailable
from connectors.protocol import Connector, TableInfo
from retention_rules.coverage import ColumnEvidence, Coverage, check_coverage
from retention_rules.loader import LoadedPolicy


@dataclass(frozen=True)
class ColumnScan:
    """One column's findings: every candidate entity with its confidence, and the
    evidence (sample size, values hit per entity)."""

    column: str
    type_name: str
    family: str
    entities: dict[str, float]
    sample_size: int
    hits: dict[str, int]
    free_text: bool

    def labels(self, threshold: float = LABEL_THRESHOLD) -> dict[str, float]:
        """The personal-information entities the column is labelled with."""
        return {
            entity: confidence
            for entity, confidence in self.entities.items()
            if confidence >= threshold and entity in PERSONAL_ENTITIES
        }


@dataclass(frozen=True)
class TableScan:
    store: str
    schema: str | None
    table: str
    rows: int
    schema_hash: str
    row_bucket: int
    sample_size: int
    scanned_at: datetime
    columns: tuple[ColumnScan, ...]
    seconds: float = 0.0
    reused: bool = False

    def evidence(self) -> list[ColumnEvidence]:
        return [
            ColumnEvidence(self.store, self.schema, self.table, column.column, column.labels())
            for column in self.columns
        ]

    def findings_json(self) -> str:
        return json.dumps([column.__dict__ for column in self.columns], sort_keys=True)

    @staticmethod
    def columns_from_json(text: str) -> tuple[ColumnScan, ...]:
        return tuple(ColumnScan(**item) for item in json.loads(text))


@dataclass
class Inventory:
    """Everything one scan found, and the coverage gate's verdict on it."""

    policy: str
    policy_sha256: str
    scanned_at: datetime
    sample_size: int
    tables: list[TableScan]
    coverage: Coverage
    primary_keys: dict[tuple[str, str | None, str], tuple[str, ...]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    """Collections a store could not read (a file that is not valid CSV), one line each:
    left out of the map; the bindings on them fail on their own."""

    @property
    def reused(self) -> int:
        return sum(table.reused for table in self.tables)


@dataclass(frozen=True)
class CachedScan:
    """A table's last findings and the fingerprint they were taken under."""

    schema_hash: str
    row_bucket: int
    sample_size: int
    scanned_at: datetime
    columns: tuple[ColumnScan, ...]


class ScanCache(Protocol):
    """Where the previous scan of each table is kept between runs (``flows.scan_cache``)."""

    def get(self, store_url: str, schema: str | None, table: str) -> CachedScan | None: ...

    def put(self, store_url: str, scan: TableScan) -> None: ...


def schema_hash(info: TableInfo) -> str:
    """A digest of the table's columns (names, types, nullability) and primary key, and
    of the classifier's fingerprint (its version, the packages, models and data it
    reads): a new classifier reads every table again, once."""
    shape = [
        [column.name, column.type_name, column.family, column.nullable]
        for column in info.columns.values()
    ]
    text = json.dumps(
        {
            "columns": shape,
            "primary_key": list(info.primary_key),
            "classifier": detection.classifier_fingerprint(),
        }
    )
    return hashlib.sha256(text.encode()).hexdigest()


def row_bucket(rows: int) -> int:
    """The row count's power of two: a table is re-sampled when it doubles or halves."""
    return max(rows, 0).bit_length()


@dataclass(frozen=True)
class SampledTable:
    """One table's samples, read in the store, waiting to be classified (anywhere)."""

    store: str
    info: TableInfo
    rows: int
    sample_size: int
    samples: tuple[ColumnSample, ...]
    seconds: float


def sample_table(
    connector: Connector, info: TableInfo, rows: int, sample_size: int, store: str
) -> SampledTable:
    """Draw every column's sample inside the store."""
    started = time.perf_counter()
    sampled = [name for name, c in info.columns.items() if c.family in VALUE_FAMILIES]
    values = connector.sample_values(info.name, sampled, sample_size, info.schema)
    # Fewer values than asked for: the sample is every value the column holds.
    samples = []
    for name, column in info.columns.items():
        got = values.get(name, [])
        samples.append(ColumnSample(name, column.family, got, complete=len(got) < sample_size))
    seconds = time.perf_counter() - started
    return SampledTable(store, info, rows, sample_size, tuple(samples), seconds)


def classify_sampled(sampled: SampledTable) -> TableScan:
    """Classify a sampled table: pure, so a cluster's worker may do it."""
    started = time.perf_counter()
    info = sampled.info
    findings = classify_table(list(sampled.samples))
    columns = [
        ColumnScan(
            column=sample.name,
            type_name=info.columns[sample.name].type_name,
            family=sample.family,
            entities=dict(finding.entities),
            sample_size=finding.sample_size,
            hits=dict(finding.hits),
            free_text=finding.free_text,
        )
        for sample, finding in zip(sampled.samples, findings, strict=True)
    ]
    return TableScan(
        store=sampled.store,
        schema=info.schema,
        table=info.name,
        rows=sampled.rows,
        schema_hash=schema_hash(info),
        row_bucket=row_bucket(sampled.rows),
        sample_size=sampled.sample_size,
        scanned_at=datetime.now(UTC),
        columns=tuple(columns),
        seconds=sampled.seconds + time.perf_counter() - started,
    )


#: A column whose sampled values hold more characters than this (a notes column) is
#: classified on a worker of its own when a cluster scans, beside the rest of its table.
LARGE_TEXT_CHARS = 50_000


def table_parts(sampled: SampledTable) -> list[SampledTable]:
    """The table cut for several workers: each large free-text column alone, the other
    columns together. A column is classified by its own values only, so the parts'
    findings are the whole table's."""
    large = [
        sample
        for sample in sampled.samples
        if sum(len(v) for v in sample.values if isinstance(v, str)) > LARGE_TEXT_CHARS
    ]
    alone = {sample.name for sample in large}
    rest = tuple(sample for sample in sampled.samples if sample.name not in alone)
    groups = [(sample,) for sample in large] + ([rest] if rest else [])
    return [replace(sampled, samples=group) for group in groups] or [sampled]


def joined(sampled: SampledTable, parts: list[TableScan]) -> TableScan:
    """The parts' scans as the table's, its columns in the table's order."""
    by_name = {column.column: column for part in parts for column in part.columns}
    classified = sum(part.seconds - sampled.seconds for part in parts)
    return replace(
        parts[0],
        columns=tuple(by_name[sample.name] for sample in sampled.samples),
        seconds=sampled.seconds + classified,
    )


def scan_table(
    connector: Connector, info: TableInfo, rows: int, sample_size: int, store: str
) -> TableScan:
    """Sample and classify every column of one table."""
    return classify_sampled(sample_table(connector, info, rows, sample_size, store))


def scan_policy(
    loaded: LoadedPolicy,
    connectors: Mapping[str, Connector],
    *,
    cache: ScanCache | None = None,
    full: bool = False,
    on_table: Callable[[TableScan], Any] | None = None,
) -> Inventory:
    """Scan every table of every store in ``connectors`` and check the policy's coverage.

    Tables are sampled here, one after another, and classified by the run's workers
    (``connectors.workers.current()``): on a cluster, several at once while the next
    ones are sampled (a large free-text column on a worker of its own, `table_parts`),
    at most two tables per worker (eight at least) waiting, so memory holds a few
    samples, never the store's. The inventory lists the tables in the same order.

    Raises ``StoreUnavailable`` when a store fails mid-scan: the gate cannot pass on half
    a map. A single collection the store cannot read (``StoreError``) is listed in
    ``unreadable`` instead: its bindings fail anyway, and the rest of the map is whole.
    """
    policy = loaded.policy
    sample_size = policy.scan.sample_size
    tables: list[TableScan] = []
    unreadable: list[str] = []
    primary_keys: dict[tuple[str, str | None, str], tuple[str, ...]] = {}
    runners = workers.current()
    count = runners.count
    width = max(2 * count, 8)  # tables waiting for a worker, at most
    waiting: deque[
        tuple[Connector, TableScan | tuple[SampledTable, list[workers.Pending[TableScan]]]]
    ] = deque()

    def settle_first() -> None:
        connector, item = waiting.popleft()
        if isinstance(item, TableScan):
            scan = item
        else:
            sampled, parts = item
            scan = joined(sampled, [part.result() for part in parts])
        if cache is not None and not scan.reused:
            cache.put(connector.display_url, scan)
        tables.append(scan)
        if on_table is not None:
            on_table(scan)

    for store, connector in connectors.items():
        for schema in _schemas(loaded, store):
            for name in connector.table_names(schema):
                try:
                    info = connector.table_info(name, schema)
                    if info is None:  # dropped while we looked
                        continue
                    item = _reused_or_sampled(connector, store, info, sample_size, cache, full)
                except StoreUnavailable:
                    raise
                except StoreError as exc:
                    unreadable.append(str(exc))
                    continue
                primary_keys[(store, schema, name)] = info.primary_key
                if isinstance(item, SampledTable):
                    parts = table_parts(item) if count > 1 else [item]
                    submitted = [runners.submit(classify_sampled, part) for part in parts]
                    waiting.append((connector, (item, submitted)))
                else:
                    waiting.append((connector, item))
                while len(waiting) > width:
                    settle_first()
    while waiting:
        settle_first()
    evidence = [item for table in tables for item in table.evidence()]
    return Inventory(
        policy=policy.name,
        policy_sha256=loaded.sha256,
        scanned_at=datetime.now(UTC),
        sample_size=sample_size,
        tables=tables,
        coverage=check_coverage(policy, evidence, DIRECT_IDENTIFIERS),
        primary_keys=primary_keys,
        unreadable=unreadable,
    )


def _schemas(loaded: LoadedPolicy, store: str) -> list[str | None]:
    """The store's default schema and every schema a dataset or exemption names in it."""
    named = {d.db_schema for d in loaded.policy.datasets if d.store == store}
    named |= {e.db_schema for e in loaded.policy.scan.exempt if e.store == store}
    return [None, *sorted(schema for schema in named if schema is not None)]


def _reused_or_sampled(
    connector: Connector,
    store: str,
    info: TableInfo,
    sample_size: int,
    cache: ScanCache | None,
    full: bool,
) -> TableScan | SampledTable:
    """The cached scan of an unchanged table (``reused``), or the table's fresh samples."""
    rows = connector.estimate_rows(info.name, info.schema)
    cached = None
    if cache is not None and not full:
        cached = cache.get(connector.display_url, info.schema, info.name)
    if cached is not None and (cached.schema_hash, cached.row_bucket, cached.sample_size) == (
        schema_hash(info),
        row_bucket(rows),
        sample_size,
    ):
        return TableScan(
            store=store,
            schema=info.schema,
            table=info.name,
            rows=rows,
            schema_hash=cached.schema_hash,
            row_bucket=cached.row_bucket,
            sample_size=cached.sample_size,
            scanned_at=cached.scanned_at,
            columns=cached.columns,
            reused=True,
        )
    return sample_table(connector, info, rows, sample_size, store)
