"""Order without foreign keys (issue 13, item 3).

The trial's shop database declared no foreign keys: the run deleted ``orders`` first, so
the ``order_items`` whose clock is their order's date lost it, and only the lines of
orders under legal hold (still there) expired and were deleted; the run said ``ok``.
A policy may now declare a relation the schema does not (``references:``), a binding
whose clock is read from its parent's key is recognised as that parent's child, and
either relation feeds the same machinery as a reflected foreign key: children first,
cycles refused, a parent a kept child refers to kept, and a hold on a parent followed
to its children.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Table,
    create_engine,
    insert,
    text,
)
from typer.testing import CliRunner

from flows import audit
from flows.cli import app
from flows.run.lifecycle import run_policy
from flows.run.types import DatasetOutcome, RunOptions, RunReport
from flows.state.tables import open_state
from retention_rules.clock import PolicyClock
from retention_rules.model import Policy
from retention_rules.planner import (
    declared_references,
    execution_order,
    plan_rules,
    reference_cycles,
    reference_parents,
)
from tests.support.backends import on_backends

runner = CliRunner()
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
OLD = NOW - timedelta(days=2 * 365)  # past the one-year retention
YOUNG = NOW - timedelta(weeks=3)
ORDERS = range(1, 41)  # orders 1-30 are old, 31-40 young
HELD_ORDERS = (3, 4)
LINES_PER_ORDER = 3
#: Old orders with one line added three weeks ago (a late return, say).
LATE_LINES = (5, 6)

HEADER = """\
version: 1
name: shop
timezone: America/Montreal
categories:
  billing.transaction: {description: "Amounts", identifier: quasi}
purposes:
  sales:
    description: Sales records.
    legal_basis: contract
    min_retention: 30 days
    max_retention: 3 years
stores:
  shop:
    url: ${TENURE_SHOP_URL}
datasets:
  - name: orders
    store: shop
    table: orders
    purpose: sales
    primary_key: id
    subject_key: customer_id
    columns: {total: billing.transaction}
    clock: {column: ordered_at}
    retention: 1 year
    action: delete
"""

ITEMS_CLOCKED_BY_ORDER = """\
  - name: order_items
    store: shop
    table: order_items
    purpose: sales
    primary_key: id
    subject_key: order_id
    columns: {price: billing.transaction}
    clock:
      column: ordered_at
      event_table: orders
      join: {local: order_id, event: id}
    retention: 1 year
    action: delete
"""

ITEMS_OWN_CLOCK = """\
  - name: order_items
    store: shop
    table: order_items
    purpose: sales
    primary_key: id
    subject_key: order_id
    columns: {price: billing.transaction}
    clock: {column: created_at}
    retention: 1 year
    action: delete
"""

REFERENCES = """\
    references:
      - {dataset: orders, columns: {order_id: id}}
"""

HOLD = f"""\
holds:
  - name: litigation
    reason: "Court file 500-17-1: keep the disputed orders"
    expires: 2099-12-31
    datasets: [orders]
    where:
      - {{column: id, op: in, value: {list(HELD_ORDERS)}}}
"""


@pytest.fixture
def db_url(store_url: str) -> str:
    """An empty store of the matrix; the tests below run on SQLite and PostgreSQL."""
    return store_url


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    engine = _shop(url)
    yield url, engine
    engine.dispose()


def _shop(url: str) -> Engine:
    """The trial's shape, without a single foreign key: 40 orders of three lines each
    (30 old, 10 young); two old orders each with a line added three weeks ago."""
    engine = create_engine(url)
    metadata = MetaData()
    orders = Table(
        "orders",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("customer_id", Integer, nullable=False),
        Column("total", Integer, nullable=False),
        Column("ordered_at", DateTime(timezone=True), nullable=False),
    )
    items = Table(
        "order_items",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("order_id", Integer, nullable=False),  # no ForeignKey: none in the schema
        Column("price", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    metadata.create_all(engine)
    with engine.begin() as c:
        c.execute(
            insert(orders),
            [{"id": o, "customer_id": 100 + o, "total": 30, "ordered_at": _ordered(o)}
             for o in ORDERS],
        )  # fmt: skip
        lines = [
            {"id": 10 * o + n, "order_id": o, "price": 10, "created_at": _ordered(o)}
            for o in ORDERS for n in range(LINES_PER_ORDER)
        ]  # fmt: skip
        lines += [{"id": 10 * o + 9, "order_id": o, "price": 10, "created_at": YOUNG}
                  for o in LATE_LINES]  # fmt: skip
        c.execute(insert(items), lines)
    return engine


def _ordered(order: int) -> datetime:
    return OLD if order <= 30 else YOUNG


def _policy(tmp_path: Path, *parts: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(HEADER + "".join(parts))
    return path


def _run(policy: Path, url: str, tmp_path: Path, **options: Any) -> RunReport:
    return run_policy(
        policy,
        RunOptions(
            now=NOW,
            state_url=f"sqlite:///{tmp_path / 'state.sqlite'}",
            coverage_gate=False,
            **options,
        ),
        environ={"TENURE_SHOP_URL": url},
    )


def _outcome(report: RunReport, dataset: str) -> DatasetOutcome:
    return next(o for o in report.outcomes if o.dataset == dataset)


def _ids(engine: Engine, table: str) -> set[int]:
    with engine.connect() as c:
        return set(c.scalars(text(f"SELECT id FROM {table}")))  # the test's own tables


def _orphans(engine: Engine) -> int:
    with engine.connect() as c:
        return int(
            c.scalar(
                text(
                    "SELECT count(*) FROM order_items i "
                    "WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = i.order_id)"
                )
            )
            or 0
        )


def _lines_of(*orders: int) -> set[int]:
    return {10 * o + n for o in orders for n in range(LINES_PER_ORDER)}


def _plan(policy: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("TENURE_SHOP_URL", url)
    result = runner.invoke(app, ["plan", str(policy), "--json", "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    return {d["dataset"]: d for d in json.loads(result.stdout)["datasets"]}


def test_a_binding_clocked_by_its_parent_runs_first_and_inherits_its_holds(
    shop: tuple[str, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trial: ``order_items`` clocked by ``orders.ordered_at``, bound after
    ``orders``, no foreign key and no declaration. Before: orders went first, and only
    the six lines of the two held orders were deleted (their orders alone were still
    there to give them a clock); every other expired line lost its clock for good."""
    url, engine = shop
    policy = _policy(tmp_path, ITEMS_CLOCKED_BY_ORDER, HOLD)
    planned = _plan(policy, url, monkeypatch)
    report = _run(policy, url, tmp_path)

    assert not report.failed, [(o.dataset, o.error) for o in report.outcomes]
    assert [o.dataset for o in report.outcomes] == ["order_items", "orders"]
    items = _outcome(report, "order_items")
    old_lines = _lines_of(*range(1, 31)) | {10 * o + 9 for o in LATE_LINES}
    held_lines = _lines_of(*HELD_ORDERS)
    assert items.processed == len(old_lines - held_lines) == 86
    via = "litigation via orders"
    assert items.held_by == {via: len(held_lines)}
    assert "Court file 500-17-1" in items.hold_reasons[via]
    assert "order_items.order_id" in items.hold_reasons[via]
    assert _ids(engine, "order_items") == held_lines | _lines_of(*range(31, 41))
    assert _ids(engine, "orders") == {*HELD_ORDERS, *range(31, 41)}
    assert _orphans(engine) == 0

    # The plan counted the same, and the audit log holds what was kept and why.
    assert planned["order_items"]["expired"] == items.processed
    assert planned["order_items"]["holds"] == [
        {"name": via, "reason": items.hold_reasons[via], "rows": len(held_lines)}
    ]
    assert planned["orders"]["expired"] == _outcome(report, "orders").processed == 28
    state = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    entries = {e["dataset"]: e for e in audit.entries(state, report.run_id) if "dataset" in e}
    state.dispose()
    assert entries["order_items"]["deleted"] == 86
    assert entries["order_items"]["holds"][0]["hold"] == via


@on_backends("sqlite", "postgresql")
def test_a_declared_reference_runs_children_first_and_keeps_their_parents(
    db_url: str, tmp_path: Path
) -> None:
    """``order_items`` with their own clock and ``references: [{dataset: orders, ...}]``.
    Without the declaration the old orders 5 and 6 were deleted while a three-week-old
    line still refers to each (orphans), and the lines of the held orders went."""
    engine = _shop(db_url)
    try:
        policy = _policy(tmp_path, ITEMS_OWN_CLOCK, REFERENCES, HOLD)
        dry = _run(policy, db_url, tmp_path, dry_run=True)
        report = _run(policy, db_url, tmp_path)

        assert not report.failed, [(o.dataset, o.error) for o in report.outcomes]
        assert [o.dataset for o in report.outcomes] == ["order_items", "orders"]
        held_lines = _lines_of(*HELD_ORDERS)
        late = {10 * o + 9 for o in LATE_LINES}
        assert _ids(engine, "order_items") == held_lines | late | _lines_of(*range(31, 41))
        assert _ids(engine, "orders") == {*HELD_ORDERS, *LATE_LINES, *range(31, 41)}
        assert _orphans(engine) == 0

        orders = _outcome(report, "orders")
        reference = "referenced by order_items.order_id"
        # Orders 3 and 4 are held twice over: by the hold, and by their held lines.
        assert (orders.held, orders.held_by) == (4, {"litigation": 2, reference: 4})
        assert "declared in the policy" in orders.hold_reasons[reference]
        assert orders.processed == 26
        assert _outcome(report, "order_items").held_by == {"litigation via orders": 6}
        for name in ("orders", "order_items"):  # the dry run foresaw the children going
            assert _outcome(dry, name).expired == _outcome(report, name).processed
            assert _outcome(dry, name).held_by == _outcome(report, name).held_by
    finally:
        engine.dispose()


def test_a_hold_follows_a_declared_reference_to_grandchildren(
    shop: tuple[str, Engine], tmp_path: Path
) -> None:
    """A hold on orders keeps their lines, and the lines' notes (a chain of two declared
    references), from every binding of those tables."""
    url, engine = shop
    notes_table = Table(
        "line_notes",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("line_id", Integer, nullable=False),
        Column("price", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    notes_table.create(engine)
    with engine.begin() as c:
        c.execute(
            insert(notes_table),
            [{"id": line, "line_id": line, "price": 1, "created_at": OLD}
             for line in (10, 11, 30, 31, 40)],
        )  # fmt: skip
    notes = (
        ITEMS_OWN_CLOCK.replace("order_items", "line_notes").replace("order_id", "line_id")
        + "    references: [{dataset: order_items, columns: {line_id: id}}]\n"
    )
    policy = _policy(tmp_path, ITEMS_OWN_CLOCK, REFERENCES, notes, HOLD)
    report = _run(policy, url, tmp_path)
    assert not report.failed, [(o.dataset, o.error) for o in report.outcomes]
    assert [o.dataset for o in report.outcomes] == ["line_notes", "order_items", "orders"]
    assert _ids(engine, "line_notes") == {30, 31, 40}  # notes on lines of orders 3 and 4
    assert _outcome(report, "line_notes").held_by == {"litigation via order_items via orders": 3}


def test_validate_names_each_bad_reference(
    shop: tuple[str, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = shop
    bad = """\
    references:
      - {dataset: order, columns: {order_id: id}}
      - {dataset: orders, columns: {order_no: id}}
      - {dataset: orders, columns: {order_id: number}}
"""
    policy = _policy(tmp_path, ITEMS_OWN_CLOCK, bad)
    monkeypatch.setenv("TENURE_SHOP_URL", url)
    offline = runner.invoke(app, ["validate", str(policy), "--offline"])
    assert offline.exit_code == 2, offline.output
    lines = [line for line in offline.stderr.splitlines() if "references" in line]
    assert len(lines) == 1, offline.stderr
    assert lines[0].startswith(f"{policy}:37: datasets[1].references[0].dataset: ")
    assert "unknown dataset 'order'" in lines[0]

    fixed = policy.read_text().replace("dataset: order,", "dataset: orders,")
    policy.write_text(fixed)
    live = runner.invoke(app, ["validate", str(policy)])
    assert live.exit_code == 2, live.output
    lines = [line for line in live.stderr.splitlines() if "references" in line]
    assert lines == [
        f"{policy}:38: datasets[1].references[1].columns.order_no: column 'order_no' does "
        "not exist in table 'order_items'",
        f"{policy}:39: datasets[1].references[2].columns.order_id: column 'number' does "
        "not exist in table 'orders'",
    ], live.stderr
    assert _ids(shop[1], "orders") == set(ORDERS)  # nothing touched


def test_a_cycle_of_declared_references_stops_its_bindings(
    shop: tuple[str, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, engine = shop
    orders_refer_back = HEADER.replace(
        "    action: delete\n",
        "    action: delete\n    references: [{dataset: order_items, columns: {id: order_id}}]\n",
        1,
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(orders_refer_back + ITEMS_OWN_CLOCK + REFERENCES)
    monkeypatch.setenv("TENURE_SHOP_URL", url)
    result = runner.invoke(app, ["validate", str(policy)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if "cycle" in line]
    assert len(lines) == 1 and "orders -> order_items -> orders" in lines[0], result.stderr
    report = _run(policy, url, tmp_path)
    assert all("cycle" in (o.error or "") for o in report.outcomes)
    assert _ids(engine, "orders") == set(ORDERS)


def test_a_reference_across_stores_only_orders_and_validate_says_so(
    shop: tuple[str, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lines live in another database: the run still takes them first, but no store
    sees both tables, so a kept line cannot keep its order nor a hold reach the lines;
    validate warns, in one line at the reference."""
    url, engine = shop
    other = f"sqlite:///{tmp_path / 'lines.sqlite'}"
    _shop(other).dispose()
    two_stores = HEADER.replace(
        "datasets:\n", "  lines:\n    url: ${TENURE_LINES_URL}\ndatasets:\n", 1
    )
    items = ITEMS_OWN_CLOCK.replace("store: shop", "store: lines")
    policy = tmp_path / "policy.yaml"
    policy.write_text(two_stores + items + REFERENCES)
    monkeypatch.setenv("TENURE_SHOP_URL", url)
    monkeypatch.setenv("TENURE_LINES_URL", other)
    result = runner.invoke(app, ["validate", str(policy)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert f"{policy}:39: datasets[1].references[0]: " in warnings[0]
    assert "another store" in warnings[0] and "order only" in warnings[0]
    report = run_policy(
        policy,
        RunOptions(
            now=NOW, state_url=f"sqlite:///{tmp_path / 'state.sqlite'}", coverage_gate=False
        ),
        environ={"TENURE_SHOP_URL": url, "TENURE_LINES_URL": other},
    )
    assert [o.dataset for o in report.outcomes] == ["order_items", "orders"]
    # Order only: the old orders 5 and 6 went although their late lines, in the other
    # store, still refer to them (the warning said so).
    assert _ids(engine, "orders") == set(range(31, 41))


def test_a_store_without_sql_follows_holds_and_refuses_to_orphan(tmp_path: Path) -> None:
    """CSV folders: the hold on orders reaches the lines of held orders (judged in
    pandas); the orders binding, which the store cannot keep referenced, fails in one
    line and deletes nothing."""
    root = tmp_path / "files"
    for folder, header, rows in (
        ("orders", "id,customer_id,total,ordered_at",
         [f"{o},{100 + o},30,{_ordered(o):%Y-%m-%dT%H:%M:%SZ}" for o in ORDERS]),
        ("order_items", "id,order_id,price,created_at",
         [f"{10 * o + n},{o},10,{_ordered(o):%Y-%m-%dT%H:%M:%SZ}"
          for o in ORDERS for n in range(LINES_PER_ORDER)]),
    ):  # fmt: skip
        (root / folder).mkdir(parents=True)
        (root / folder / "part.csv").write_text("\n".join([header, *rows]) + "\n")
    files_policy = (
        (HEADER + ITEMS_OWN_CLOCK + REFERENCES + HOLD)
        .replace("primary_key: id", "primary_key: [source_file, row_number]")
        .replace("${TENURE_SHOP_URL}", f"files:///{root}")
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(files_policy)
    report = _run(policy, "unused", tmp_path)

    items = _outcome(report, "order_items")
    assert items.error is None, items.error
    assert items.held_by == {"litigation via orders": 6}
    assert items.processed == 30 * LINES_PER_ORDER - 6
    orders = _outcome(report, "orders")
    assert orders.error is not None and "cannot keep the records" in orders.error
    assert "order_items.order_id refers to orders" in orders.error
    assert len((root / "orders" / "part.csv").read_text().splitlines()) == 1 + len(ORDERS)


def _graph_policy(edges: set[tuple[int, int]], clocked: set[tuple[int, int]]) -> Policy:
    """Tables t0..t5, each bound once; `edges` are declared references (child, parent),
    `clocked` a child's clock read from its parent's key."""
    tables = sorted({t for edge in edges | clocked for t in edge} | {0})

    def binding(t: int) -> dict[str, Any]:
        parent = next((p for c, p in sorted(clocked) if c == t), None)
        clock: dict[str, Any] = {"column": "created_at"}
        if parent is not None:
            clock = {"column": "created_at", "event_table": f"t{parent}",
                     "join": {"local": f"t{parent}_id", "event": "id"}}  # fmt: skip
        return {
            "name": f"t{t}", "store": "db", "table": f"t{t}", "purpose": "p",
            "primary_key": "id", "subject_key": "id", "columns": {"v": "a.b"},
            "clock": clock, "retention": "1 year", "action": "delete",
            "references": [
                {"dataset": f"t{p}", "columns": {f"t{p}_id": "id"}}
                for c, p in sorted(edges) if c == t
            ],
        }  # fmt: skip

    return Policy.model_validate(
        {
            "version": 1,
            "name": "graph",
            "categories": {"a.b": {"description": "x", "identifier": "none"}},
            "purposes": {
                "p": {
                    "description": "x",
                    "legal_basis": "contract",
                    "min_retention": "1 day",
                    "max_retention": "2 years",
                }
            },
            "stores": {"db": "sqlite://"},
            "datasets": [binding(t) for t in tables],
        }
    )


_pairs = st.sets(
    st.tuples(st.integers(0, 5), st.integers(0, 5)).filter(lambda e: e[0] != e[1]), max_size=8
)


@given(edges=_pairs, clocked=_pairs)
def test_every_child_runs_before_its_parents_unless_they_form_a_cycle(
    edges: set[tuple[int, int]], clocked: set[tuple[int, int]]
) -> None:
    """For any graph of declared references and clocks read from a parent: a child's
    binding runs before its parent's, except between tables of one cycle (which
    validation refuses)."""
    clocked = {(c, p) for c, p in clocked if all(c != c2 or p == p2 for c2, p2 in clocked)}
    policy = _graph_policy(edges, clocked)
    parents = reference_parents(policy, declared_references(policy))
    plans = plan_rules(policy, PolicyClock.at("UTC", NOW))
    order = [p.dataset.table for p in execution_order(plans, parents)]
    cycles = reference_cycles(order, parents)
    together = {(a, b) for cycle in cycles for a in cycle for b in cycle}
    for child, parent in edges | clocked:
        pair = (f"t{child}", f"t{parent}")
        if pair not in together:
            assert order.index(pair[0]) < order.index(pair[1]), (pair, order)


def test_a_broken_hold_stops_the_children_it_would_reach(
    shop: tuple[str, Engine], tmp_path: Path
) -> None:
    """A hold the run cannot apply (a value its column cannot hold) stops the bindings it
    protects, and those of the rows referring to them: without it, the lines of the
    orders it preserves would go."""
    url, engine = shop
    lines = _ids(engine, "order_items")
    broken = HOLD.replace("value: [3, 4]", "value: [3, 'four']")
    report = _run(_policy(tmp_path, ITEMS_CLOCKED_BY_ORDER, broken), url, tmp_path)
    for name in ("orders", "order_items"):
        error = _outcome(report, name).error or ""
        assert "holds[0].where[0].value[1]" in error, (name, error)
    assert _ids(engine, "order_items") == lines
