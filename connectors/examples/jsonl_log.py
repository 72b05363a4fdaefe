"""An example connector, built in the README's tutorial "Add a connector".

An event log kept as JSON-lines files, one file per collection (``<dir>/<name>.jsonl``),
each line one event with an ``id``. The whole connector is this ``RecordStore``: Tenure's
``RecordConnector`` adds expiry predicates, chunks, the journal, rollups and crash
safety. A separate package would register it with an entry point::

    [project.entry-points."tenure.connectors"]
    jsonlog = "connectors.examples.jsonl_log:connector"

and a policy would name a store ``jsonlog:///path/to/logs``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import make_url

from connectors.errors import StoreError, StoreUnavailable
from connectors.protocol import ColumnInfo, Connector, ConnectorOptions, Key, TypeFamily
from connectors.records.store import Capabilities, Collection, Partition


def connector(name: str, url: str, options: ConnectorOptions) -> Connector:
    """The entry point: a ``RecordConnector`` over the log named by ``url``."""
    from connectors.records.connector import RecordConnector

    return RecordConnector(JsonLinesLog(name, url, read_only=options.read_only), options)


class JsonLinesLog:
    """``jsonlog:///dir``: every ``<dir>/<collection>.jsonl`` is a collection keyed by ``id``."""

    capabilities = Capabilities(transactions=False, pushdown=False, partitions=False)

    def __init__(self, name: str, url: str, *, read_only: bool = True) -> None:
        self.name = name
        self.root = Path(make_url(url).database or ".")
        self.read_only = read_only

    @property
    def display_url(self) -> str:
        return f"jsonlog:///{self.root}"

    def ping(self) -> None:
        if not self.root.is_dir():
            raise StoreUnavailable(self.name, self.display_url, "no such directory")

    def collections(self) -> list[str]:
        return sorted(path.stem for path in self.root.glob("*.jsonl"))

    def describe(self, collection: str) -> Collection | None:
        """Fields and their types from the first 1,000 events."""
        path = self._path(collection)
        if not path.exists():
            return None
        sample = self._frame(path, limit=1000)
        fields = {name: _info(name, sample[name]) for name in sample.columns}
        fields.setdefault("id", ColumnInfo("id", "text", "str", nullable=False))
        return Collection(collection, fields, key=("id",))

    def scan(
        self,
        collection: str,
        fields: Sequence[str],
        chunk_size: int,
        partitions: Sequence[Partition] | None = None,
    ) -> Iterator[pd.DataFrame]:
        frame = self._frame(self._path(collection))
        wanted = ["id", *(f for f in fields if f != "id")]
        frame = frame.reindex(columns=wanted).sort_values("id", kind="stable", ignore_index=True)
        for start in range(0, len(frame), chunk_size):
            yield frame.iloc[start : start + chunk_size]

    def delete(self, collection: str, keys: Sequence[Key]) -> int:
        gone = {key[0] for key in keys}
        events = self._events(collection)
        kept = [event for event in events if event.get("id") not in gone]
        self._replace(collection, kept)
        return len(events) - len(kept)

    def update(self, collection: str, keys: Sequence[Key], values: pd.DataFrame) -> int:
        changes = {
            key[0]: {name: _json_value(value) for name, value in row.items()}
            for key, (_, row) in zip(keys, values.iterrows(), strict=True)
        }
        events = self._events(collection)
        for event in events:
            event.update(changes.get(event.get("id"), {}))
        self._replace(collection, events)
        return sum(1 for event in events if event.get("id") in changes)

    def versions(self, collection: str, units: Sequence[Key]) -> dict[Key, str]:
        return {}  # ids never shift: replaying a delete or an update is harmless

    def partitions(self, collection: str) -> list[Partition]:
        return []

    def drop_partitions(self, collection: str, partitions: Sequence[Partition]) -> None:
        if partitions:
            raise StoreError(self.name, self.display_url, "this log has no partitions")

    def close(self) -> None:
        pass

    # files

    def _path(self, collection: str) -> Path:
        return self.root / f"{collection}.jsonl"

    def _events(self, collection: str) -> list[dict[str, Any]]:
        path = self._path(collection)
        events = []
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    try:
                        events.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        reason = f"{path.name}: line {number}: not JSON ({exc.msg})"
                        raise StoreError(self.name, self.display_url, reason) from None
        return events

    def _frame(self, path: Path, limit: int | None = None) -> pd.DataFrame:
        events = self._events(path.stem)
        return pd.DataFrame.from_records(events[:limit] if limit else events)

    def _replace(self, collection: str, events: list[dict[str, Any]]) -> None:
        """Write the new file beside the old one and rename it over: a crash leaves
        either file whole, never a torn one."""
        if self.read_only:
            raise StoreError(self.name, self.display_url, "opened read-only")
        path = self._path(collection)
        temporary = path.with_name(f".{path.name}.tmp")
        with temporary.open("w", encoding="utf-8") as out:
            for event in events:
                out.write(json.dumps(event, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)


def _info(name: str, values: pd.Series) -> ColumnInfo:
    """A field's type family: ISO-8601 texts with an offset are aware timestamps."""
    present = values.dropna()
    family: TypeFamily = "text"
    aware = False
    if pd.api.types.is_integer_dtype(values.dtype):
        family = "integer"
    elif pd.api.types.is_float_dtype(values.dtype):
        family = "numeric"
    elif len(present) and all(isinstance(v, str) for v in present):
        stamps = pd.to_datetime(present, errors="coerce", utc=True, format="ISO8601")
        if stamps.notna().all() and present.str.len().ge(19).all():
            family, aware = "datetime", True
    return ColumnInfo(name, family, str(values.dtype), nullable=True, timezone_aware=aware)


def _json_value(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value
