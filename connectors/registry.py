"""Find the connector for a store URL through the ``tenure.connectors`` entry points.

The entry point's name is the URL's scheme without its driver (``postgresql`` for
``postgresql+psycopg://``), so a separate package adds a store by declaring one. It names
a ``ConnectorFactory``: called as ``factory(name, url, options)`` with one
``ConnectorOptions``, it returns the ``Connector``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import date
from importlib.metadata import entry_points
from typing import Any

from sqlalchemy import make_url

from connectors.errors import StoreError, UnknownStoreScheme
from connectors.protocol import (
    Capabilities,
    ChunkResult,
    ChunkWork,
    Connector,
    ConnectorFactory,
    ConnectorOptions,
    ExpiryCounts,
    ExpirySelection,
    JournalEntry,
    PublishedCell,
    RollupSink,
    TableInfo,
    WriteTarget,
)
from connectors.urls import mask_url

ENTRY_POINT_GROUP = "tenure.connectors"


def available_schemes() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def open_connector(
    name: str, url: str, options: ConnectorOptions = ConnectorOptions()
) -> Connector:
    """The connector that the factory registered for ``url``'s scheme makes; one that
    does not declare ``selects_subjects`` refuses selections of one person's rows
    (`RefusesSubjectSelections`)."""
    parsed = make_url(url)
    scheme = parsed.get_backend_name()
    matches = entry_points(group=ENTRY_POINT_GROUP, name=scheme)
    if not matches:
        raise UnknownStoreScheme(
            name,
            mask_url(parsed),
            f"no connector for scheme {scheme!r} (installed: {', '.join(available_schemes())})",
        )
    entry = next(iter(matches))
    factory: ConnectorFactory = entry.load()
    try:
        inspect.signature(factory).bind(name, url, options)
    except (TypeError, ValueError):
        raise UnknownStoreScheme(
            name,
            mask_url(parsed),
            f"the connector registered for {scheme!r} ({entry.value}) is not a "
            "factory(name, url, options); see docs/connectors.md",
        ) from None
    connector = factory(name, url, options)
    if getattr(connector, "selects_subjects", False) is True:
        return connector
    # Whatever else it lacks: one that cannot tell one person's rows from everyone's
    # must never be handed such a selection.
    return RefusesSubjectSelections(connector, name)


class RefusesSubjectSelections:
    """A connector that does not declare ``selects_subjects`` (written before
    `ExpirySelection.only` and `every_row` existed): every call reaches it unchanged,
    except a selection of one person's rows, refused with a `StoreError` before the
    connector could take it for a selection of every row."""

    def __init__(self, connector: Connector, name: str | None = None) -> None:
        self.connector = connector
        self.name = str(getattr(connector, "name", name))

    def __getattr__(self, attribute: str) -> Any:
        """What the connector offers beyond the protocol (``bookkeeping_path``)."""
        return getattr(self.connector, attribute)

    def _refuse(self, selection: ExpirySelection) -> None:
        judged = (selection, *selection.removed_first, *selection.events_removed_first)
        if any(s.picks_rows for s in judged):
            reason = (
                f"its connector ({type(self.connector).__name__}) does not select one "
                "person's records (ExpirySelection.only, every_row; it declares no "
                "selects_subjects = True): nothing was read or changed"
            )
            raise StoreError(self.name, self.display_url, reason)

    @property
    def display_url(self) -> str:
        """The connector's own, or its store's name for one that has none (never a URL
        that could hold a password)."""
        shown = getattr(self.connector, "display_url", None)
        return shown if isinstance(shown, str) else self.name

    @property
    def capabilities(self) -> Capabilities:
        return self.connector.capabilities

    def count_expiry(self, selection: ExpirySelection) -> ExpiryCounts:
        self._refuse(selection)
        return self.connector.count_expiry(selection)

    def read_rows(
        self, selection: ExpirySelection, columns: Sequence[str], chunk_size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        self._refuse(selection)
        return self.connector.read_rows(selection, columns, chunk_size)

    def execute_chunk(self, work: ChunkWork) -> ChunkResult:
        self._refuse(work.selection)
        return self.connector.execute_chunk(work)

    def ping(self) -> None:
        self.connector.ping()

    def table_info(self, table: str, schema: str | None = None) -> TableInfo | None:
        return self.connector.table_info(table, schema)

    def table_names(self, schema: str | None = None) -> list[str]:
        return self.connector.table_names(schema)

    def estimate_rows(self, table: str, schema: str | None = None) -> int:
        return self.connector.estimate_rows(table, schema)

    def sample_values(
        self, table: str, columns: Sequence[str], limit: int, schema: str | None = None
    ) -> dict[str, list[Any]]:
        return self.connector.sample_values(table, columns, limit, schema)

    def count_groups(
        self, table: str, columns: Sequence[str], marked: str, schema: str | None = None
    ) -> list[tuple[tuple[Any, ...], int]]:
        return self.connector.count_groups(table, columns, marked, schema)

    def journal(self, run_id: str) -> list[JournalEntry]:
        return self.connector.journal(run_id)

    def journal_runs(self) -> list[str]:
        return self.connector.journal_runs()

    def rollup_cells(self, label: str, rollup: RollupSink) -> list[PublishedCell]:
        return self.connector.rollup_cells(label, rollup)

    def compact_rollup(
        self, label: str, rollup: RollupSink, sealed: Sequence[date], run_id: str
    ) -> int:
        return self.connector.compact_rollup(label, rollup, sealed, run_id)

    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        return self.connector.exclusive(name)

    def write_problems(self, targets: Sequence[WriteTarget]) -> list[str]:
        return self.connector.write_problems(targets)

    def close(self) -> None:
        self.connector.close()
