"""The operator registry, and the vocabulary a policy shares with the connectors.

A registry is a value: the built-in operators are put into the default one by one
explicit list, a project adds its own operator class to it (or removes one), and policy
validation checks every operator name against it. ``Period``, ``ConditionOp`` and
``ClockFormat`` are declared once, in the connector protocol, and one comparison table
says how each condition op compares, for SQL stores and for record stores alike.
"""

from __future__ import annotations

import ast
import operator
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar, get_args

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from anonymizers.operators import Operator, OperatorError, OperatorRegistry, map_non_null
from anonymizers.registry import BUILT_IN_OPERATORS, OPERATORS, create_operator, default_registry
from connectors.protocol import COMPARISONS, Condition, ConditionOp
from connectors.records.predicates import condition_mask
from connectors.sql.expressions import column_info, condition
from connectors.times import TimeContext
from flows.cli import app
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from tests.support.paths import REPO

runner = CliRunner()
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
BUILT_IN_NAMES = [
    "null", "redact", "replace", "mask", "pseudonym", "surrogate", "generalize", "age_band",
    "redact_text",
]  # fmt: skip
#: What ``tenure validate`` says of an operator name the default registry does not hold
#: (pydantic's words for a choice, as when the names were a ``Literal``).
UNKNOWN_OPERATOR = (
    "Input should be 'null', 'redact', 'replace', 'mask', 'pseudonym', 'surrogate', "
    "'generalize', 'age_band' or 'redact_text'"
)


class Initials(Operator):
    """A project's own operator: a name becomes its initials (``Ada Lovelace`` → ``A. L.``)."""

    name: ClassVar[str] = "initials"

    def operate(self, values: pd.Series) -> pd.Series:
        def initials(present: pd.Series) -> pd.Series:
            return present.astype(str).map(lambda text: " ".join(f"{w[0]}." for w in text.split()))

        return map_non_null(values, initials)

    def writes_text(self) -> bool:
        return True


class OtherInitials(Initials):
    """Another class under the same name."""


# --- the registry value ----------------------------------------------------------------


def test_a_registry_adds_gets_lists_creates_and_removes_operators() -> None:
    registry = OperatorRegistry()
    assert list(registry) == []
    registry.add(Initials)
    assert registry["initials"] is Initials
    assert registry.get("initials") is Initials
    assert list(registry) == ["initials"] and "initials" in registry and len(registry) == 1
    made = registry.create("initials", {})
    assert list(made.operate(pd.Series(["Ada Lovelace", None], dtype=object))) == ["A. L.", None]
    registry.add(Initials)  # the same class again changes nothing
    with pytest.raises(ValueError, match="operator name 'initials' is registered twice"):
        registry.add(OtherInitials)
    registry.remove(Initials)
    assert "initials" not in registry and registry.get("initials") is None
    with pytest.raises(OperatorError, match=r"unknown operator 'initials' \(known: none\)"):
        registry.create("initials", {})
    with pytest.raises(KeyError, match="initials"):
        registry.remove("initials")


def test_removing_asks_for_the_registered_class_or_its_name() -> None:
    registry = OperatorRegistry([Initials])
    with pytest.raises(KeyError, match="initials"):
        registry.remove(OtherInitials)  # another class of that name is not this one
    registry.remove("initials")
    assert list(registry) == []


def test_the_default_registry_is_the_built_in_list_in_order() -> None:
    assert [cls.name for cls in BUILT_IN_OPERATORS] == BUILT_IN_NAMES
    assert list(default_registry()) == BUILT_IN_NAMES
    assert list(OPERATORS) == BUILT_IN_NAMES


def test_each_default_registry_is_a_value_of_its_own() -> None:
    mine = default_registry()
    mine.add(Initials)
    mine.remove("surrogate")
    assert "initials" not in OPERATORS and "surrogate" in OPERATORS
    assert "initials" not in default_registry()


def test_create_operator_builds_from_the_default_registry() -> None:
    built = create_operator("mask", {"chars_to_mask": 2})
    assert type(built) is OPERATORS["mask"]
    with pytest.raises(OperatorError, match=r"unknown operator 'initials' \(known: age_band, "):
        create_operator("initials", {})


def test_importing_the_operators_registers_nothing() -> None:
    """No registration by import side effect: importing the package loads no operator
    module, and a class that subclasses ``Operator`` is in no registry until added."""
    code = (
        "import sys, anonymizers, anonymizers.operators\n"
        "print(*sorted(m for m in sys.modules if m.startswith('anonymizers.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded = set(result.stdout.split())
    operator_modules = {cls.__module__ for cls in BUILT_IN_OPERATORS} | {"anonymizers.registry"}
    assert "anonymizers.operators" in loaded
    assert loaded.isdisjoint(operator_modules), loaded & operator_modules
    assert Initials.name not in OPERATORS


# --- policy validation against the registry --------------------------------------------

POLICY = """\
version: 1
name: registry
timezone: UTC
categories:
  identity.name: {{description: "Name", identifier: direct}}
purposes:
  support: {{description: S., legal_basis: contract, min_retention: 1 day, max_retention: 2 years}}
stores:
  db: {{url: "sqlite:///{store}"}}
datasets:
  - name: customers
    store: db
    table: customers
    purpose: support
    primary_key: id
    subject_key: id
    columns: {{name: identity.name}}
    clock: {{column: signed_up}}
    retention: 1 year
    action:
      type: anonymize
      columns:
        name: {operator}
"""
OPERATOR_LINE = 23


@pytest.fixture
def policy(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A store of two customers, one expired, and a policy anonymizing their names."""
    store = tmp_path / "crm.sqlite"
    with sqlite3.connect(store) as connection:
        connection.execute(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, signed_up DATETIME)"
        )
        connection.executemany(
            "INSERT INTO customers VALUES (?, ?, ?)",
            [(1, "Ada Lovelace", "2020-01-01 00:00:00.000000"), (2, "Alan Turing", "2025-12-01")],
        )
    connection.close()
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(store=store, operator="initials"))
    assert path.read_text().splitlines()[OPERATOR_LINE - 1].strip() == "name: initials"
    yield store, path


@pytest.fixture
def registry() -> Iterator[None]:
    """The default registry as it was, after the test changed it."""
    before = list(OPERATORS.values())
    try:
        yield
    finally:
        for name in list(OPERATORS):
            OPERATORS.remove(name)
        for cls in before:
            OPERATORS.add(cls)


@pytest.fixture
def initials(registry: None) -> None:
    """The project's operator, added to the default registry for one test."""
    OPERATORS.add(Initials)


def _names(store: Path) -> list[str | None]:
    with sqlite3.connect(store) as connection:
        rows = connection.execute("SELECT name FROM customers ORDER BY id").fetchall()
    connection.close()
    return [row[0] for row in rows]


def test_an_operator_added_at_run_time_is_validated_and_run(
    policy: tuple[Path, Path], initials: None, tmp_path: Path
) -> None:
    store, path = policy
    checked = runner.invoke(app, ["validate", str(path)])
    assert checked.exit_code == 0, checked.output
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    report = run_policy(path, RunOptions(now=NOW, state_url=state, coverage_gate=False))
    (outcome,) = report.outcomes
    assert outcome.status == "ok", outcome.error
    assert outcome.processed == 1
    assert _names(store) == ["A. L.", "Alan Turing"]


def test_an_operator_removed_at_run_time_is_refused_with_its_line(
    policy: tuple[Path, Path], initials: None
) -> None:
    store, path = policy
    assert runner.invoke(app, ["validate", "--offline", str(path)]).exit_code == 0
    OPERATORS.remove(Initials)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[0] == (
        f"{path}:{OPERATOR_LINE}: datasets[0].action.columns.name: {UNKNOWN_OPERATOR}"
    )
    assert _names(store) == ["Ada Lovelace", "Alan Turing"]


def test_a_removed_built_in_is_refused_and_left_out_of_the_choices(
    policy: tuple[Path, Path], registry: None
) -> None:
    _, path = policy
    path.write_text(
        path.read_text().replace("name: initials", "name: {operator: surrogate, kind: name}")
    )
    assert runner.invoke(app, ["validate", "--offline", str(path)]).exit_code == 0
    OPERATORS.remove("surrogate")
    result = runner.invoke(app, ["validate", "--offline", str(path)])
    assert result.exit_code == 2, result.output
    without = UNKNOWN_OPERATOR.replace("'surrogate', ", "")
    assert result.output.splitlines() == [
        f"{path}:{OPERATOR_LINE}: datasets[0].action.columns.name.operator: {without}",
        "1 problem(s) found.",
    ]


@pytest.mark.parametrize("written", ["hash", "{operator: hash}", "{operator: 7}", "Mask"])
def test_an_unknown_operator_is_one_line_naming_the_choices(
    policy: tuple[Path, Path], written: str
) -> None:
    _, path = policy
    path.write_text(path.read_text().replace("name: initials", f"name: {written}"))
    result = runner.invoke(app, ["validate", "--offline", str(path)])
    assert result.exit_code == 2, result.output
    field = "name" if written in ("hash", "Mask") else "name.operator"
    assert result.output.splitlines() == [
        f"{path}:{OPERATOR_LINE}: datasets[0].action.columns.{field}: {UNKNOWN_OPERATOR}",
        "1 problem(s) found.",
    ]


# --- one vocabulary: Period, ConditionOp, ClockFormat, the comparison table ------------


def _declarations(name: str) -> list[str]:
    """The modules of the four rooms that assign ``name`` at their top level."""
    found = []
    for room in ("connectors", "anonymizers", "retention_rules", "flows"):
        for path in sorted((REPO / room).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else []
                if isinstance(node, ast.AnnAssign):
                    targets = [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    found.append(str(path.relative_to(REPO)))
    return found


@pytest.mark.parametrize("name", ["Period", "ConditionOp", "ClockFormat"])
def test_the_vocabulary_is_declared_once_in_the_protocol(name: str) -> None:
    assert _declarations(name) == ["connectors/protocol.py"]


def test_the_comparison_table_has_every_condition_op() -> None:
    assert list(COMPARISONS) == list(get_args(ConditionOp))


def test_one_comparison_table_serves_sql_and_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing the table's ``lt`` changes what both compilers select."""
    table = _table("t", sa.Integer(), sa.MetaData())
    values = [1, 5, None, 9]
    cond = Condition("v", "lt", 5)
    assert _both(table, values, cond) == ({1}, {1})
    monkeypatch.setitem(COMPARISONS, "lt", replace(COMPARISONS["lt"], compare=operator.gt))
    assert _both(table, values, cond) == ({4}, {4})


# --- SQL (SQLite) and pandas agree, for every op and any values --------------------------

TIMES = TimeContext("America/Montreal", "America/Montreal")
FAMILIES: dict[str, tuple[sa.types.TypeEngine[Any], st.SearchStrategy[Any]]] = {
    "integer": (sa.Integer(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    "numeric": (sa.Float(), st.floats(allow_nan=False, allow_infinity=False)),
    "text": (sa.Text(), st.text(max_size=5)),
    "boolean": (sa.Boolean(), st.booleans()),
    "date": (sa.Date(), st.dates()),
    # pandas holds timestamps in nanoseconds: years 1678 to 2261.
    "datetime": (sa.DateTime(), st.datetimes(datetime(1678, 1, 1), datetime(2261, 12, 31))),
}
ENGINE = sa.create_engine("sqlite://")
METADATA = sa.MetaData()


def _table(name: str, kind: sa.types.TypeEngine[Any], metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        name, metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", kind)
    )


TABLES = {family: _table(family, kind, METADATA) for family, (kind, _) in FAMILIES.items()}
METADATA.create_all(ENGINE)


def _both(table: sa.Table, values: list[Any], cond: Condition) -> tuple[set[int], set[int]]:
    """The ids ``cond`` selects among ``values`` (ids from 1), in SQLite and in pandas."""
    ids = list(range(1, len(values) + 1))
    with ENGINE.begin() as connection:
        if table.name not in sa.inspect(connection).get_table_names():
            table.create(connection)
        connection.execute(table.delete())
        if values:
            connection.execute(
                table.insert(), [{"id": i, "v": v} for i, v in zip(ids, values, strict=True)]
            )
        where = condition(table, cond, TIMES)
        in_sql = set(connection.execute(sa.select(table.c.id).where(where)).scalars())
    frame = pd.DataFrame({"id": ids, "v": pd.Series(values, dtype=object)})
    mask = condition_mask(frame, cond, column_info(table, "v"), TIMES)
    return in_sql, {i for i, chosen in zip(ids, mask, strict=True) if chosen}


@st.composite
def _cases(draw: st.DrawFn, family: str, op: ConditionOp) -> tuple[list[Any], Condition]:
    values_of = FAMILIES[family][1]
    values = draw(st.lists(st.none() | values_of, max_size=8), label="values")
    # Values from the column too, so that equal values meet often.
    present = [v for v in values if v is not None]
    picks = st.sampled_from(present) | values_of if present else values_of
    if family == "boolean" and op in ("lt", "le", "gt", "ge"):
        picks = st.sampled_from([0, 1])  # SQLAlchemy refuses to order by True or False
    takes = COMPARISONS[op].takes
    value: Any
    if takes == "nothing":
        value = None
    elif takes == "values":
        value = tuple(draw(st.lists(picks, min_size=1, max_size=4), label="list"))
    else:
        value = draw(picks, label="value")
    return values, Condition("v", op, value)


@pytest.mark.parametrize("op", get_args(ConditionOp))
@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_sqlite_and_pandas_select_the_same_rows(
    family: str, op: ConditionOp, data: st.DataObject
) -> None:
    """A NULL value matches only ``is_null`` (``not_in`` and ``ne`` never select it);
    everything else compares as the value means, in both."""
    values, cond = data.draw(_cases(family, op))
    in_sql, in_pandas = _both(TABLES[family], values, cond)
    assert in_sql == in_pandas
    nulls = {i for i, v in enumerate(values, 1) if v is None}
    assert (in_sql & nulls) == (nulls if op == "is_null" else set())


def test_dates_and_timestamps_compare_as_what_they_mean() -> None:
    """A date-only value of a timestamp column is its midnight, in both."""
    stamp = TABLES["datetime"]
    cond = Condition("v", "ge", date(2020, 1, 2))
    values = [datetime(2020, 1, 1, 23, 59), datetime(2020, 1, 2), None]
    assert _both(stamp, values, cond) == ({2}, {2})
