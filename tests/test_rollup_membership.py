"""Nobody can be found in a rollup table: the membership attack, before and after sealing.

Someone who can read a store's ``tenure_agg_*`` tables, and holds a list of candidate
identifiers (every value of the demo store), tests each candidate against every stored
sketch. Before sketches were keyed, a small cell's HyperLogLog named its people exactly;
now the sketches hold keyed hashes, so without the purpose's key the test finds nobody,
and once a period is released its sketches are gone altogether.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import datasketches as ds
import numpy as np
import pandas as pd
import pytest

from connectors import sketches
from connectors.sql.bookkeeping import STAGE
from connectors.values import canonical_text
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from tests.support.demo import DEMO_AS_OF, TABLES, build_demo, rows
from tests.support.paths import FIXTURES

pytestmark = pytest.mark.usefixtures("pseudonym_keys")
POLICY = FIXTURES / "run_policy.yaml"
SKETCH_PREFIXES = ("hll_", "subjects_hll")


def _run(store: Path, state: Path, now: object) -> None:
    report = run_policy(
        POLICY,
        RunOptions(now=now, state_url=f"sqlite:///{state}", coverage_gate=False, chunk_size=50),  # type: ignore[arg-type]
        environ={"TENURE_CRM_URL": f"sqlite:///{store}"},
    )
    assert not report.failed, [o.error for o in report.outcomes]


def _identifiers(store: Path) -> list[str]:
    """Every value of every demo table, as text: the attacker's candidate list."""
    found: set[str] = set()
    for table in TABLES:
        for row in rows(store, f"SELECT * FROM {table}"):
            found.update(str(v) for v in row if v is not None)
    values = pd.Series(sorted(found), dtype=object)
    return list(canonical_text(values))


def _stored_sketches(store: Path) -> Iterator[tuple[str, dict[str, object], bytes]]:
    """(table, row, sketch bytes) of every sketch in every rollup table of the store."""
    connection = sqlite3.connect(store)
    connection.row_factory = sqlite3.Row
    try:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'tenure_agg_%'"
            )
        ]
        assert tables, "the run wrote no rollup table"
        for table in tables:
            for row in connection.execute(f"SELECT * FROM {table}"):
                record = dict(row)
                for column, value in record.items():
                    if column.startswith(SKETCH_PREFIXES) and value is not None:
                        yield table, record, bytes(value)
    finally:
        connection.close()


def _datasketches_members(blob: bytes, candidates: list[str]) -> int:
    """The attack on an unkeyed DataSketches HLL: a candidate is in the cell when adding
    it leaves the (exact, for a small cell) estimate unchanged."""
    try:
        cell = ds.hll_sketch.deserialize(blob)
    except Exception:  # not a DataSketches sketch: this attack has nothing to read
        return 0
    before = cell.get_estimate()
    found = 0
    for candidate in candidates:
        union = ds.hll_union(12)
        union.update(cell)
        probe = ds.hll_sketch(12)
        probe.update(candidate)
        union.update(probe)
        found += round(union.get_result().get_estimate()) == round(before)
    return found


def _sparse_hashes(blob: bytes) -> set[int] | None:
    if not blob.startswith(sketches.SPARSE):
        return None
    return {int(h) for h in np.frombuffer(blob[1:], dtype="<u8")}


def _keyed_members(
    blob: bytes, record: dict[str, object], candidates: list[str], key: sketches.PeopleKey
) -> int:
    """The attack on Tenure's own format with ``key``: candidates whose hash for this
    cell is among the sketch's hashes (a dense sketch cannot name anybody)."""
    stored = _sparse_hashes(blob)
    if stored is None:
        return 0
    dims = sorted(c for c in record if c.startswith("dim_"))
    cell = (pd.Timestamp(str(record["period_start"])).date(), *(record[d] for d in dims))
    ids = np.repeat(sketches.cell_ids([cell]), len(candidates))
    hashes = sketches.keyed_hashes(pd.Series(candidates, dtype=object), ids, key)
    return sum(int(h) in stored for h in hashes)


def _unkeyed_members(blob: bytes, candidates: list[str]) -> int:
    stored = _sparse_hashes(blob)
    if stored is None:
        return 0
    plain = pd.util.hash_array(np.array(candidates, dtype=object), categorize=False)
    return sum(int(h) in stored for h in plain)


def test_no_identifier_of_the_demo_is_found_in_any_stored_cell(tmp_path: Path) -> None:
    store, state = tmp_path / "crm.sqlite", tmp_path / "state.sqlite"
    build_demo(f"sqlite:///{store}")
    candidates = _identifiers(store)
    assert len(candidates) > 1000
    _run(store, state, DEMO_AS_OF)  # yearly cells: past years sealed, this one open
    assert _staged(store) == 0, "the release folds every staged chunk into its rollup"

    right = sketches.PeopleKey.from_secret(os.environ["TENURE_PSEUDONYM_KEY"].encode())
    guessed = sketches.PeopleKey.from_secret(b"a guess at the pseudonym key 0123")
    stored = list(_stored_sketches(store))
    assert stored, "the open period keeps its sketches until it is released"
    for table, record, blob in stored:
        where = f"{table} {record['period_start']}"
        assert _datasketches_members(blob, candidates) == 0, where
        assert _unkeyed_members(blob, candidates) == 0, where
        assert _keyed_members(blob, record, candidates, guessed) == 0, where
        # The control: with the purpose's key, the same attack finds every member, so
        # the assertions above could fail.
        assert _keyed_members(blob, record, candidates, right) == round(
            float(sketches.estimate([blob])[0])
        ), where

    # Two years on, every period is closed and released: no sketch is left to attack.
    _run(store, state, DEMO_AS_OF + timedelta(days=730))
    assert list(_stored_sketches(store)) == [] and _staged(store) == 0


def _staged(store: Path) -> int:
    """The chunks' payloads still staged (they hold keyed sketches too)."""
    with sqlite3.connect(store) as connection:
        return int(connection.execute(f"SELECT count(*) FROM {STAGE}").fetchone()[0])
