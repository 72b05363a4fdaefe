"""Every built-in connector passes the conformance suite (``connectors/conformance.py``):
the SQL connector on each backend of the matrix, and the tutorial's example connector."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, create_engine, insert

from connectors.conformance import ConformanceFixture, ConnectorConformance, Record
from connectors.examples.jsonl_log import JsonLinesLog
from connectors.examples.jsonl_log import connector as jsonl_connector
from connectors.protocol import Capabilities, ConnectorOptions
from connectors.registry import open_connector

Make = Callable[[list[Record]], ConformanceFixture]


def sql_store(url: str, records: list[Record], tmp_path: Path) -> ConformanceFixture:
    """The records in an ``events`` table of a SQL database."""
    metadata = MetaData()
    events = Table(
        "events",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("happened_at", DateTime(timezone=True), nullable=False),
        Column("note", String(200), nullable=False),
        Column("team", String(20), nullable=False),
    )
    engine = create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(events),
            [
                {"id": i + 1, "happened_at": r.clock, "note": r.text, "team": r.group}
                for i, r in enumerate(records)
            ],
        )
    engine.dispose()
    return ConformanceFixture(
        open=lambda read_only: open_connector(
            "conformance",
            url,
            ConnectorOptions(read_only=read_only, bookkeeping_dir=tmp_path / "books"),
        ),
        collection="events",
        key=("id",),
        clock="happened_at",
        text="note",
        group="team",
    )


class TestSQL(ConnectorConformance):
    """On each backend of the matrix (``store_url``)."""

    CAPABILITIES = Capabilities(transactions=True, pushdown=True, partitions=False)

    @pytest.fixture
    def make_store(self, store_url: str, tmp_path: Path) -> Make:
        return lambda records: sql_store(store_url, records, tmp_path)


class TestExampleJsonLinesLog(ConnectorConformance):
    """The tutorial's example connector (``connectors/examples/jsonl_log.py``)."""

    CAPABILITIES = JsonLinesLog.capabilities

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Make:
        def make(records: list[Record]) -> ConformanceFixture:
            logs = tmp_path / "logs"
            logs.mkdir()
            with (logs / "events.jsonl").open("w") as out:
                for i, r in enumerate(records):
                    event = {
                        "id": f"e{i:03d}",
                        "at": r.clock.isoformat(),
                        "msg": r.text,
                        "team": r.group,
                    }
                    out.write(json.dumps(event) + "\n")
            url = f"jsonlog:///{logs}"
            return ConformanceFixture(
                open=lambda read_only: jsonl_connector(
                    "log",
                    url,
                    ConnectorOptions(read_only=read_only, bookkeeping_dir=tmp_path / "books"),
                ),
                collection="events",
                key=("id",),
                clock="at",
                text="msg",
                group="team",
            )

        return make
