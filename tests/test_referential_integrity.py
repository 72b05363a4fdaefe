"""Referential integrity in SQL stores (issue 12): what the database deletes or unlinks
with a parent row, keys that do not name one row, composite keys and foreign-key cycles.

Every test runs the real nightly engine against real SQLite (with ``PRAGMA
foreign_keys=ON`` in Tenure's connections) and PostgreSQL stores.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    insert,
    select,
    text,
)
from typer.testing import CliRunner

from connectors.protocol import (
    ChunkWork,
    ColumnRewrite,
    Condition,
    ConnectorOptions,
    ExpirySelection,
    RowFilter,
)
from connectors.sql.connector import SQLConnector
from flows import audit
from flows.cli import app
from flows.demo.schema import invoices, payments
from flows.run.lifecycle import run_policy
from flows.run.types import DatasetOutcome, RunOptions, RunReport
from flows.state.tables import open_state
from tests.support.backends import on_backends
from tests.support.demo import DEMO_AS_OF, build_demo, demo_files_environ
from tests.support.paths import SHIPPED_POLICY

NOW = DEMO_AS_OF
OLD = NOW - timedelta(days=2 * 365)  # past every binding's one-year retention
YOUNG = NOW - timedelta(weeks=3)
HELD_CUSTOMER = 42
runner = CliRunner()

HEADER = """\
version: 1
name: ri_tests
timezone: America/Montreal
categories:
  billing.transaction: {description: "Amounts", identifier: quasi}
  identity.name: {description: "Name", identifier: direct}
purposes:
  records:
    description: Records.
    legal_basis: contract
    min_retention: 30 days
    max_retention: 3 years
stores:
  db:
    url: ${TENURE_DB_URL}
datasets:
"""


def _binding(
    name: str, key: str = "id", action: str = "delete", subject: str = "customer_id"
) -> str:
    return f"""\
  - name: {name}
    store: db
    table: {name}
    purpose: records
    primary_key: {key}
    subject_key: {subject}
    columns: {{amount: billing.transaction}}
    clock: {{column: created_at}}
    retention: 1 year
    action: {action}
"""


HOLD = f"""\
holds:
  - name: dispute
    reason: "Court file 500-17-42: keep customer {HELD_CUSTOMER}'s records"
    expires: 2099-12-31
    datasets: [children]
    subject_keys: [{HELD_CUSTOMER}]
"""


def _policy(tmp_path: Path, *bindings: str, holds: str = "") -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(HEADER + "".join(bindings) + holds)
    return path


def _columns() -> list[Column[Any]]:
    return [
        Column("customer_id", Integer, nullable=False),
        Column("amount", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    ]


@pytest.fixture
def db_url(store_url: str) -> str:
    """An empty store of the matrix; the tests below run on SQLite and PostgreSQL."""
    return store_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def _run(policy: Path, url: str, tmp_path: Path, **options: Any) -> RunReport:
    return run_policy(
        policy,
        RunOptions(
            now=NOW,
            state_url=f"sqlite:///{tmp_path / 'state.sqlite'}",
            coverage_gate=False,
            **options,
        ),
        environ={"TENURE_DB_URL": url},
    )


def _outcome(report: RunReport, dataset: str) -> DatasetOutcome:
    return next(o for o in report.outcomes if o.dataset == dataset)


def _ids(engine: Engine, table: str) -> set[int]:
    with engine.connect() as c:
        return set(c.scalars(text(f"SELECT id FROM {table}")))  # test's own table names


def _row(i: int, customer: int, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"id": i, "customer_id": customer, "amount": 10 * i, "created_at": at, **extra}


def _parents_and_children(engine: Engine, on_delete: str) -> None:
    """Expired parents 1 to 4 and a young parent 5. Parent 1's child is three weeks old;
    parent 2's child is old but held; parent 3's child expired with it; parent 4 has none."""
    metadata = MetaData()
    Table("parents", metadata, Column("id", Integer, primary_key=True), *_columns())
    Table(
        "children",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("parent_id", ForeignKey("parents.id", ondelete=on_delete), nullable=True),
        *_columns(),
    )
    metadata.create_all(engine)
    with engine.begin() as c:
        c.execute(
            insert(metadata.tables["parents"]),
            [_row(1, 1, OLD), _row(2, HELD_CUSTOMER, OLD), _row(3, 3, OLD), _row(4, 4, OLD),
             _row(5, 5, YOUNG)],
        )  # fmt: skip
        c.execute(
            insert(metadata.tables["children"]),
            [_row(11, 1, YOUNG, parent_id=1), _row(12, HELD_CUSTOMER, OLD, parent_id=2),
             _row(13, 3, OLD, parent_id=3)],
        )  # fmt: skip


def _foreign_key_check(engine: Engine) -> list[Any]:
    """SQLite's own check that every foreign key finds its row (PostgreSQL enforces it)."""
    if engine.dialect.name != "sqlite":
        return []
    with engine.connect() as c:
        return list(c.exec_driver_sql("PRAGMA foreign_key_check").all())


@pytest.mark.parametrize("on_delete", ["CASCADE", "SET NULL"])
@on_backends("sqlite", "postgresql")
def test_a_parent_a_kept_child_refers_to_is_kept_and_reported(
    on_delete: str, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    _parents_and_children(engine, on_delete)
    policy = _policy(tmp_path, _binding("parents"), _binding("children"), holds=HOLD)
    report = _run(policy, db_url, tmp_path)

    assert not report.failed, [(o.dataset, o.error) for o in report.outcomes]
    assert _ids(engine, "children") == {11, 12}
    assert _ids(engine, "parents") == {1, 2, 5}
    with engine.connect() as c:
        links: dict[int, int] = dict(c.execute(text("SELECT id, parent_id FROM children")).all())
    assert links == {11: 1, 12: 2}  # SET NULL did not unlink them either
    assert _foreign_key_check(engine) == []

    parents = _outcome(report, "parents")
    reference = "referenced by children.parent_id"
    assert (parents.processed, parents.held, parents.held_by) == (2, 2, {reference: 2})
    assert on_delete in parents.hold_reasons[reference]
    children = _outcome(report, "children")
    assert (children.processed, children.held_by) == (1, {"dispute": 1})

    state = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    entries = {e["dataset"]: e for e in audit.entries(state, report.run_id) if "dataset" in e}
    state.dispose()
    assert entries["parents"]["deleted"] == 2
    assert entries["parents"]["holds"] == [
        {"hold": reference, "reason": parents.hold_reasons[reference], "rows": 2}
    ]


@on_backends("sqlite", "postgresql")
def test_the_dry_run_counts_children_the_run_deletes_first(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """Parent 3's only child goes before it in the same run, so the dry run counts parent
    3 as expired; parents 1 and 2 stay referenced."""
    _parents_and_children(engine, "CASCADE")
    policy = _policy(tmp_path, _binding("parents"), _binding("children"), holds=HOLD)
    dry = _run(policy, db_url, tmp_path, dry_run=True)
    real = _run(policy, db_url, tmp_path)
    for name in ("parents", "children"):
        assert _outcome(dry, name).expired == _outcome(real, name).processed
        assert _outcome(dry, name).held_by == _outcome(real, name).held_by
    assert _outcome(dry, "parents").expired == 2


@on_backends("sqlite", "postgresql")
def test_a_parent_whose_child_binding_failed_is_kept(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Children first is a plan; if the children's binding fails, their rows are still
    there and still keep their parents."""
    _parents_and_children(engine, "CASCADE")
    broken = _binding("children").replace("columns: {amount:", "columns: {no_such:")
    policy = _policy(tmp_path, _binding("parents"), broken, holds=HOLD)
    report = _run(policy, db_url, tmp_path)
    assert _outcome(report, "children").error
    assert _ids(engine, "children") == {11, 12, 13}
    assert _ids(engine, "parents") == {1, 2, 3, 5}
    assert _outcome(report, "parents").held_by == {"referenced by children.parent_id": 3}


@on_backends("sqlite", "postgresql")
def test_a_primary_key_that_is_not_unique_is_refused(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _parents_and_children(engine, "CASCADE")
    policy = _policy(tmp_path, _binding("parents"), _binding("children", key="customer_id"))
    monkeypatch.setenv("TENURE_DB_URL", db_url)
    result = runner.invoke(app, ["validate", str(policy)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if "primary_key" in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{policy}:") and "datasets[1].primary_key" in lines[0]
    assert "not unique" in lines[0] and "'id'" in lines[0]

    report = _run(policy, db_url, tmp_path)
    assert "primary_key" in (_outcome(report, "children").error or "")
    assert _ids(engine, "children") == {11, 12, 13}
    assert _outcome(report, "parents").error is None  # the other binding still ran


@on_backends("sqlite", "postgresql")
def test_a_rewrite_never_touches_a_row_outside_the_chunk_even_if_keys_collide(
    engine: Engine, db_url: str
) -> None:
    """A key that names two rows (no constraint says otherwise): only the expired one is
    rewritten, whether the database or pandas computes the new value."""
    metadata = MetaData()
    notes = Table(
        "notes",
        metadata,
        Column("id", Integer, nullable=False),
        Column("note", String(40), nullable=False),
        Column("author", String(40), nullable=False),
        *_columns(),
    )
    metadata.create_all(engine)
    with engine.begin() as c:
        c.execute(
            insert(notes),
            [_row(1, 1, OLD, note="old", author="Ann"), _row(1, 2, YOUNG, note="new", author="Bo"),
             _row(2, HELD_CUSTOMER, OLD, note="held", author="Cy"),
             _row(2, 3, OLD, note="old too", author="Di")],
        )  # fmt: skip
    connector = SQLConnector("db", db_url, ConnectorOptions(read_only=False))
    selection = ExpirySelection(
        "notes",
        "created_at",
        NOW - timedelta(days=365),
        exclusions=(RowFilter("dispute", (Condition("customer_id", "in", (HELD_CUSTOMER,)),)),),
        primary_key=("id",),
        skip_marked="notes",
    )
    work = ChunkWork(
        run_id="r1",
        label="notes",
        chunk_no=1,
        selection=selection,
        after=None,
        limit=100,
        action="anonymize",
        rewrites=(
            ColumnRewrite("note", sql=lambda column, dialect: func.upper(column)),
            ColumnRewrite("author", transform=lambda values: values.str.lower()),
        ),
    )
    try:
        result = connector.execute_chunk(work)
    finally:
        connector.close()
    assert result.rows == 2
    with engine.connect() as c:
        rows = set(c.execute(text("SELECT customer_id, note, author FROM notes")).all())
    assert rows == {
        (1, "OLD", "ann"),
        (2, "new", "Bo"),
        (HELD_CUSTOMER, "held", "Cy"),
        (3, "OLD TOO", "di"),
    }


@on_backends("sqlite", "postgresql")
def test_anonymize_with_a_composite_primary_key(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    metadata = MetaData()
    lines = Table(
        "lines",
        metadata,
        Column("order_id", Integer, primary_key=True),
        Column("line_no", Integer, primary_key=True),
        Column("buyer", String(40), nullable=False),
        *_columns(),
    )
    metadata.create_all(engine)
    rows = [
        {"order_id": o, "line_no": n, "customer_id": o, "amount": n, "buyer": f"Buyer {o}-{n}",
         "created_at": OLD if o < 3 else YOUNG}
        for o in (1, 2, 3) for n in (1, 2)
    ]  # fmt: skip
    with engine.begin() as c:
        c.execute(insert(lines), rows)
    binding = _binding(
        "lines",
        key="[order_id, line_no]",
        action="{type: anonymize, columns: {buyer: redact}}",
    ).replace(
        "{amount: billing.transaction}", "{amount: billing.transaction, buyer: identity.name}"
    )
    policy = _policy(tmp_path, binding)
    report = _run(policy, db_url, tmp_path, chunk_size=3)
    outcome = _outcome(report, "lines")
    assert outcome.error is None, outcome.error
    assert outcome.processed == 4 and outcome.chunks == 2
    with engine.connect() as c:
        buyers: dict[int, str] = dict(
            c.execute(text("SELECT order_id * 10 + line_no, buyer FROM lines")).all()
        )
    assert [k for k, v in buyers.items() if v.startswith("Buyer")] == [31, 32]
    again = _run(policy, db_url, tmp_path)
    assert _outcome(again, "lines").expired == 0 and _outcome(again, "lines").processed == 0
    assert outcome.risk is not None


def _cycle(engine: Engine) -> None:
    metadata = MetaData()
    Table(
        "xs",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("y_id", Integer, nullable=True),
        *_columns(),
        ForeignKeyConstraint(["y_id"], ["ys.id"], use_alter=True, name="xs_y"),
    )
    Table(
        "ys",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("x_id", ForeignKey("xs.id"), nullable=True),
        *_columns(),
    )
    Table("zs", metadata, Column("id", Integer, primary_key=True), *_columns())
    metadata.create_all(engine)
    with engine.begin() as c:
        for name in ("xs", "ys", "zs"):
            c.execute(insert(metadata.tables[name]), [_row(1, 1, OLD), _row(2, 2, YOUNG)])


@on_backends("sqlite", "postgresql")
def test_a_foreign_key_cycle_is_one_line_and_stops_only_its_bindings(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cycle(engine)
    policy = _policy(tmp_path, _binding("zs"), _binding("xs"), _binding("ys"))
    monkeypatch.setenv("TENURE_DB_URL", db_url)
    result = runner.invoke(app, ["validate", str(policy)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if "cycle" in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{policy}:") and "xs" in lines[0] and "ys" in lines[0]
    assert "Traceback" not in result.output

    report = _run(policy, db_url, tmp_path)
    assert report.failed
    for name in ("xs", "ys"):
        assert "cycle" in (_outcome(report, name).error or "")
        assert _ids(engine, name) == {1, 2}
    assert _outcome(report, "zs").error is None
    assert _outcome(report, "zs").processed == 1 and _ids(engine, "zs") == {2}


@on_backends("sqlite", "postgresql")
def test_validate_names_each_cascade_into_a_bound_table(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warning, not a failure: the run keeps every row another row refers to."""
    _parents_and_children(engine, "CASCADE")
    policy = _policy(tmp_path, _binding("parents"), _binding("children"), holds=HOLD)
    monkeypatch.setenv("TENURE_DB_URL", db_url)
    result = runner.invoke(app, ["validate", str(policy)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert f"{policy}:" in warnings[0] and "ON DELETE CASCADE" in warnings[0]
    assert "children.parent_id" in warnings[0] and "datasets[0]" in warnings[0]


# the shipped demo (finding 6): no payment loses its invoice, nothing is left without a clock


def _lost_events(engine: Engine) -> dict[str, int]:
    """For each shipped binding whose clock is another table's event: its rows that have
    no event row (so they can never expire)."""
    from retention_rules.loader import load_policy

    policy = load_policy(SHIPPED_POLICY, environ={"TENURE_CRM_URL": "sqlite://"}).policy
    lost = {}
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as c:
        for dataset in policy.datasets:
            clock = dataset.clock
            if dataset.store != "crm" or clock.event_table is None or clock.join is None:
                continue
            table, event = metadata.tables[dataset.table], metadata.tables[clock.event_table]
            linked = event.c[clock.join.event] == table.c[clock.join.local]
            query = (
                select(func.count()).select_from(table).where(~select(event).where(linked).exists())
            )
            lost[dataset.name] = int(c.scalar(query) or 0)
    return lost


@pytest.mark.usefixtures("pseudonym_keys")
def test_the_shipped_demo_keeps_every_reference_and_every_clock(
    tmp_path: Path, demo_files_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    build_demo(crm)
    shutil.copytree(demo_files_template, tmp_path, dirs_exist_ok=True)
    engine = create_engine(crm)
    with engine.begin() as c:  # the case: issued in December 2019, paid in January
        invoice = int(c.scalar(select(func.max(invoices.c.id))) or 0) + 1
        c.execute(insert(invoices).values(
            id=invoice, customer_id=3, number="INV-2019-DEC", billing_name="Anne Tremblay",
            billing_address="1 rue Principale, Laval", amount=120, currency="CAD",
            issued_at=datetime(2019, 12, 20, 15, tzinfo=UTC),
        ))  # fmt: skip
        c.execute(insert(payments).values(
            id=int(c.scalar(select(func.max(payments.c.id))) or 0) + 1, invoice_id=invoice,
            customer_id=3, card_brand="visa", card_last4="4242", card_holder="Anne Tremblay",
            amount=120, paid_at=datetime(2020, 1, 10, 15, tzinfo=UTC),
        ))  # fmt: skip
    lost_before = _lost_events(engine)
    report = run_policy(
        SHIPPED_POLICY,
        RunOptions(
            now=NOW, state_url=f"sqlite:///{tmp_path / 'state.sqlite'}", coverage_gate=False
        ),
        environ={"TENURE_CRM_URL": crm, **demo_files_environ(tmp_path)},
    )
    assert not report.failed, [(o.dataset, o.error) for o in report.outcomes if o.error]
    try:
        assert _foreign_key_check(engine) == []
        assert _lost_events(engine) == lost_before
        assert lost_before["payments"] == 0
        with engine.connect() as c:  # kept: its payment still refers to it
            kept = select(func.count()).where(invoices.c.number == "INV-2019-DEC")
            assert c.scalar(kept) == 1
    finally:
        engine.dispose()
    outcome = _outcome(report, "invoices")
    assert outcome.processed > 0
    assert outcome.held_by.get("referenced by payments.invoice_id", 0) > 0


def test_a_cascade_from_another_schema_keeps_its_parent(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL: a table of another schema (``billing.children``) refers to the bound
    ``public.parents`` with ON DELETE CASCADE; the parent its young child refers to is
    kept, the other expired parent goes, and the child is still there."""
    engine = create_engine(pg_url)
    with engine.begin() as c:
        c.execute(text("CREATE SCHEMA billing"))
        c.execute(
            text(
                "CREATE TABLE parents (id integer PRIMARY KEY, customer_id integer NOT NULL, "
                "amount integer NOT NULL, created_at timestamptz NOT NULL)"
            )
        )
        c.execute(
            text(
                "CREATE TABLE billing.children (id integer PRIMARY KEY, parent_id integer "
                "REFERENCES public.parents (id) ON DELETE CASCADE, created_at timestamptz)"
            )
        )
        c.execute(
            text("INSERT INTO parents VALUES (1, 7, 10, :old), (2, 8, 20, :old)"), {"old": OLD}
        )
        c.execute(text("INSERT INTO billing.children VALUES (1, 1, :young)"), {"young": YOUNG})
    policy = _policy(tmp_path, _binding("parents"))
    report = _run(policy, pg_url, tmp_path)
    parents = _outcome(report, "parents")
    assert parents.error is None
    assert (parents.processed, parents.held) == (1, 1)
    assert parents.held_by == {"referenced by billing.children.parent_id": 1}
    assert "ON DELETE CASCADE" in parents.hold_reasons["referenced by billing.children.parent_id"]
    with engine.connect() as c:
        assert c.execute(text("SELECT id FROM parents")).scalars().all() == [1]
        assert c.execute(text("SELECT count(*) FROM billing.children")).scalar_one() == 1
    engine.dispose()
