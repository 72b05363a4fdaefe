"""Who a person is across stores (issue 16, point 1): the policy's ``subjects:`` section.

The identifiers that name a person, where each dataset holds them (``found_in``), and the
datasets reached only through a foreign key (reflected, or the policy's ``references:``)
to one that holds them. ``tenure validate`` reports every dataset no identifier reaches
and warns of a column used to find a person that no index begins with; ``tenure scan
--suggest`` proposes ``found_in`` entries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    text,
)
from typer.testing import CliRunner

from connectors.protocol import ColumnInfo, ForeignKeyInfo, TableInfo
from flows.cli import app
from retention_rules.deadlines import Jurisdiction
from retention_rules.durations import Duration
from retention_rules.loader import load_policy
from retention_rules.model import Policy
from retention_rules.subjects import SubjectColumn, needed_indexes, subject_columns, unreached
from retention_rules.suggest import suggest_bindings
from tests.support.backends import on_backends
from tests.support.paths import SHIPPED_POLICY

runner = CliRunner()

CATEGORIES = """\
categories:
  contact.email: {description: E-mail, identifier: direct, provided: true}
  customer.number: {description: Customer number, identifier: direct}
  web.visitor_id: {description: Cookie, identifier: direct}
  billing.transaction: {description: Amounts, identifier: quasi}
"""
HEAD = (
    """\
version: 1
name: shop
"""
    + CATEGORIES
    + """\
purposes:
  sales: {description: Sales, legal_basis: contract, min_retention: 1 year, max_retention: 7 years}
  rights:
    {description: Requests, legal_basis: legal_obligation, min_retention: 1 year,
     max_retention: 3 years}
stores:
  shop: {url: "${SHOP_URL:-sqlite:///shop.sqlite}"}
datasets:
"""
)


def _binding(name: str, subject_key: str, columns: str, extra: str = "") -> str:
    return f"""\
  - name: {name}
    store: shop
    table: {name}
    purpose: sales
    primary_key: id
    subject_key: {subject_key}
    columns: {columns}
    clock: {{column: created_at}}
    retention: 2 years
    action: delete
{extra}"""


DATASETS = (
    _binding("customers", "id", "{email: contact.email}")
    + _binding("orders", "customer_id", "{total: billing.transaction}")
    + _binding("order_lines", "order_id", "{price: billing.transaction}")
    + _binding("visits", "visitor_id", "{visitor_id: web.visitor_id}")
    + _binding(
        "notes",
        "customer_ref",
        "{body: billing.transaction}",
        "    references: [{dataset: customers, columns: {customer_ref: id}}]\n",
    )
)
SUBJECTS = """\
subjects:
  person: customer_id
  identifiers:
    customer_id: {category: customer.number, description: The customer number}
    email: {category: contact.email}
    visitor_id: {category: web.visitor_id}
  found_in:
    customers: {id: customer_id, email: email}
    visits: {visitor_id: visitor_id}
requests:
  purpose: rights
"""
POLICY = HEAD + DATASETS + SUBJECTS


def _write(tmp_path: Path, text_: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text_)
    return path


def _line_of(path: Path, needle: str, after: str | None = None) -> int:
    """The 1-based line of the first line holding ``needle`` (after the one holding
    ``after``)."""
    lines = path.read_text().splitlines()
    start = 0 if after is None else next(i for i, line in enumerate(lines) if after in line)
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


def _build_shop(url: str) -> None:
    """customers <- orders <- order_lines (foreign keys), visits, notes (no foreign key:
    the policy declares it); no index but the primary keys."""
    metadata = MetaData()
    own: dict[str, list[Column[Any]]] = {
        "customers": [Column("email", String(200))],
        "orders": [Column("customer_id", ForeignKey("customers.id")), Column("total", Integer)],
        "order_lines": [Column("order_id", ForeignKey("orders.id")), Column("price", Integer)],
        "visits": [Column("visitor_id", String(36))],
        "notes": [Column("customer_ref", Integer), Column("body", String(200))],
    }
    for name, columns in own.items():
        id_, created = Column("id", Integer, primary_key=True), Column("created_at", DateTime)
        Table(name, metadata, id_, *columns, created)
    engine = create_engine(url)
    metadata.create_all(engine)
    engine.dispose()


def _execute(url: str, statements: list[str]) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    _build_shop(url)
    monkeypatch.setenv("SHOP_URL", url)
    monkeypatch.setenv("TENURE_STATE_URL", f"sqlite:///{tmp_path / 'state.sqlite'}")
    yield url


def _validate(path: Path, *args: str) -> tuple[int, list[str], str]:
    result = runner.invoke(app, ["validate", *args, str(path)])
    assert "Traceback" not in result.output + result.stderr
    return result.exit_code, result.stderr.splitlines(), result.stdout


# --- the model ---------------------------------------------------------------------------


def test_the_subjects_and_requests_sections_are_read(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, POLICY)).policy
    subjects = policy.subjects
    assert subjects is not None
    assert subjects.person == "customer_id"
    assert subjects.identifiers["customer_id"].category == "customer.number"
    assert subjects.identifiers["customer_id"].description == "The customer number"
    assert subjects.found_in["customers"] == {"id": "customer_id", "email": "email"}
    requests = policy.requests
    assert requests.jurisdictions == [Jurisdiction.QUEBEC, Jurisdiction.PIPEDA]
    assert requests.complaint_period.sort_key() == Duration.parse("30 days").sort_key()
    assert (requests.purpose, requests.language) == ("rights", "fr")
    assert policy.categories["contact.email"].provided is True
    assert policy.categories["billing.transaction"].provided is False


def test_a_policy_without_them_still_loads(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, HEAD + DATASETS)).policy
    assert policy.subjects is None
    assert policy.requests.jurisdictions == [Jurisdiction.QUEBEC, Jurisdiction.PIPEDA]
    assert policy.requests.purpose is None


@pytest.mark.parametrize(
    ("change", "needle", "field", "message"),
    [
        (("  identifiers:\n", "  identifiers: {}\n  x:\n"), "identifiers:", "subjects.identifiers",
         "at least 1 item"),
        (("requests:\n", "requests:\n  jurisdictions: []\n"), "jurisdictions:",
         "requests.jurisdictions", "at least 1 item"),
        (("requests:\n", "requests:\n  jurisdictions: [ontario]\n"), "jurisdictions:",
         "requests.jurisdictions[0]", "'quebec', 'pipeda' or 'gdpr'"),
        (("requests:\n", "requests:\n  language: de\n"), "language:", "requests.language",
         "'fr' or 'en'"),
        (("requests:\n", "requests:\n  complaint_period: 0 days\n"), "complaint_period:",
         "requests.complaint_period", "positive"),
        (("requests:\n", "requests:\n  deadline: 30 days\n"), "deadline:", "requests.deadline",
         "unknown key"),
        (("  person: customer_id\n", "  person: Customer\n"), "person:", "subjects.person",
         "should match pattern"),
    ],
    ids=["no-identifier", "no-jurisdiction", "unknown-jurisdiction", "language",
         "complaint-period", "unknown-key", "person-name"],
)  # fmt: skip
def test_bad_values_are_one_line_each(
    tmp_path: Path, change: tuple[str, str], needle: str, field: str, message: str
) -> None:
    text_ = POLICY.replace(*change)
    if change[0] == "  identifiers:\n":  # drop the identifiers' own lines
        text_ = re.sub(r"  x:\n(    \w+: .*\n)+", "", text_)
    path = _write(tmp_path, text_)
    code, errors, _ = _validate(path, "--offline")
    assert code == 2
    where = f"{path}:{_line_of(path, needle, after='subjects:' if 'subjects' in field else None)}"
    assert any(line.startswith(f"{where}: {field}: ") and message in line for line in errors), (
        errors
    )


# --- cross-references, with file:line ----------------------------------------------------


@pytest.mark.parametrize(
    ("change", "needle", "field", "message"),
    [
        (("    visits: {visitor_id: visitor_id}", "    vists: {visitor_id: visitor_id}"),
         "    vists:", "subjects.found_in.vists", "unknown dataset 'vists'"),
        (("    visits: {visitor_id: visitor_id}", "    visits: {visitor_id: cookie}"),
         "    visits:", "subjects.found_in.visits.visitor_id", "unknown identifier 'cookie' "
         "(declared: customer_id, email, visitor_id)"),
        (("{category: web.visitor_id}", "{category: web.cookie}"), "visitor_id: {category",
         "subjects.identifiers.visitor_id.category", "unknown category 'web.cookie'"),
        (("  person: customer_id", "  person: customer"), "person:", "subjects.person",
         "'customer' is not one of the identifiers (declared: customer_id, email, visitor_id)"),
        (("  purpose: rights", "  purpose: right"), "  purpose: right", "requests.purpose",
         "unknown purpose 'right' (declared: rights, sales)"),
        (("    customers: {id: customer_id, email: email}",
          "    customers: {id: customer_id, email: visitor_id}"), "    customers: {id",
         "subjects.found_in.customers.email", "column customers.email is contact.email; "
         "identifier visitor_id is web.visitor_id"),
        (("    visits: {visitor_id: visitor_id}", "    visits: {}"), "    visits:",
         "subjects.found_in.visits", "names no column"),
    ],
    ids=["dataset", "identifier", "category", "person", "purpose", "category-clash",
         "empty-entry"],
)  # fmt: skip
def test_broken_references_are_located(
    tmp_path: Path, change: tuple[str, str], needle: str, field: str, message: str
) -> None:
    path = _write(tmp_path, POLICY.replace(*change))
    code, errors, _ = _validate(path, "--offline")
    assert code == 2, errors
    where = f"{path}:{_line_of(path, needle, after='subjects:')}: {field}: "
    assert any(line.startswith(where) and message in line for line in errors), errors


def test_subjects_problems_come_in_one_pass_with_a_broken_dataset(tmp_path: Path) -> None:
    text_ = POLICY.replace("  person: customer_id", "  person: customer").replace(
        "retention: 2 years", "retention: 2 yaers", 1
    )
    path = _write(tmp_path, text_)
    code, errors, _ = _validate(path, "--offline")
    assert code == 2
    fields = {line.split(": ")[1] for line in errors if line.startswith(str(path))}
    assert {"datasets[0].retention", "subjects.person"} <= fields, errors


# --- subject_columns and unreached ---------------------------------------------------------


def _info(name: str, *keys: ForeignKeyInfo, columns: tuple[str, ...] = ()) -> TableInfo:
    cols = {c: ColumnInfo(c, "integer", "INTEGER", True) for c in ("id", *columns)}
    return TableInfo(name, None, cols, ("id",), foreign_keys=keys)


TO_CUSTOMERS = ForeignKeyInfo(("customer_id",), "customers", ("id",))
TO_ORDERS = ForeignKeyInfo(("order_id",), "orders", ("id",))
DECLARED_NOTES = ForeignKeyInfo(("customer_ref",), "customers", ("id",), declared=True)
SHOP_TABLES = {
    "customers": _info("customers", columns=("email",)),
    "orders": _info("orders", TO_CUSTOMERS, columns=("customer_id",)),
    "order_lines": _info("order_lines", TO_ORDERS, columns=("order_id",)),
    "visits": _info("visits", columns=("visitor_id",)),
    "notes": _info("notes", columns=("customer_ref",)),
}


def test_found_in_columns_and_foreign_keys_one_and_two_levels_away(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, POLICY)).policy
    found = subject_columns(policy, SHOP_TABLES)
    assert found["customers"] == (
        SubjectColumn("id", "customer_id"),
        SubjectColumn("email", "email"),
    )
    assert found["visits"] == (SubjectColumn("visitor_id", "visitor_id"),)
    assert found["orders"] == (
        SubjectColumn("id", "customer_id", (TO_CUSTOMERS,)),
        SubjectColumn("email", "email", (TO_CUSTOMERS,)),
    )
    assert found["order_lines"] == (
        SubjectColumn("id", "customer_id", (TO_ORDERS, TO_CUSTOMERS)),
        SubjectColumn("email", "email", (TO_ORDERS, TO_CUSTOMERS)),
    )
    # The policy's own reference, without any reflected key.
    assert found["notes"] == (
        SubjectColumn("id", "customer_id", (DECLARED_NOTES,)),
        SubjectColumn("email", "email", (DECLARED_NOTES,)),
    )
    assert unreached(policy, SHOP_TABLES) == []


def test_without_reflected_keys_the_datasets_behind_them_are_unreached(tmp_path: Path) -> None:
    path = _write(tmp_path, POLICY)
    loaded = load_policy(path)
    found = subject_columns(loaded.policy)
    assert set(found) == {"customers", "visits", "notes"}
    issues = loaded.locate(unreached(loaded.policy))
    assert [str(i) for i in issues] == [
        f"{path}:{_line_of(path, 'name: ' + name)}: datasets[{i}].name: no identifier in "
        f"subjects: reaches dataset {name}; add it to subjects.found_in, or a foreign key "
        "to a dataset that has one"
        for i, name in ((1, "orders"), (2, "order_lines"))
    ]


def test_a_second_binding_of_a_table_shares_its_columns(tmp_path: Path) -> None:
    twin = _binding("orders", "customer_id", "{total: billing.transaction}").replace(
        "name: orders", "name: order_totals"
    )
    text_ = (HEAD + DATASETS + twin + SUBJECTS).replace(
        "    visits: {visitor_id: visitor_id}",
        "    visits: {visitor_id: visitor_id}\n    orders: {customer_id: customer_id}",
    )
    policy = load_policy(_write(tmp_path, text_)).policy
    found = subject_columns(policy)
    only = (SubjectColumn("customer_id", "customer_id"),)
    assert found["order_totals"] == found["orders"] == only


def test_no_subjects_section_reaches_nothing_and_reports_nothing(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, HEAD + DATASETS)).policy
    assert subject_columns(policy, SHOP_TABLES) == {}
    assert unreached(policy, SHOP_TABLES) == []


@st.composite
def _graphs(draw: st.DrawFn) -> tuple[list[str], dict[str, list[str]], set[str]]:
    """Tables t0..tn, each with foreign keys to some others, and the ones with an entry."""
    names = [f"t{i}" for i in range(draw(st.integers(1, 7)))]
    keys = {n: draw(st.lists(st.sampled_from(names), max_size=3, unique=True)) for n in names}
    found = set(draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True)))
    return names, keys, found


def _graph_policy(names: list[str], found: set[str]) -> Policy:
    datasets = "".join(_binding(n, "id", "{email: contact.email}") for n in names)
    entries = "".join(f"    {n}: {{email: email}}\n" for n in sorted(found)) or "    {}\n"
    text_ = (
        HEAD.replace("datasets:\n", "")
        + "datasets:\n"
        + datasets
        + "subjects:\n  person: email\n  identifiers:\n    email: {category: contact.email}\n"
        + "  found_in:\n"
        + entries
    )
    return Policy.model_validate(YAML(typ="safe").load(text_))


@settings(max_examples=60, deadline=None)
@given(_graphs())
def test_every_dataset_is_reached_by_a_shortest_chain_or_reported(
    graph: tuple[list[str], dict[str, list[str]], set[str]],
) -> None:
    names, keys, with_entry = graph
    policy = _graph_policy(names, with_entry)
    tables = {
        n: _info(n, *(ForeignKeyInfo((f"to_{p}",), p, ("id",)) for p in keys[n])) for n in names
    }
    found = subject_columns(policy, tables)
    # Breadth-first distances to a table with an entry, written out independently.
    distance = dict.fromkeys(with_entry, 0)
    frontier, level = set(with_entry), 0
    while frontier:
        level += 1
        frontier = {n for n in names if n not in distance and set(keys[n]) & frontier}
        distance.update(dict.fromkeys(frontier, level))

    def nearest_entries(node: str, avoid: str) -> tuple[int, set[str]] | None:
        """Hops from ``node`` to the entry tables nearest it (not back through ``avoid``)."""
        hops, ring, seen = 0, {node}, {node, avoid}
        while ring:
            if ring & with_entry:
                return hops, ring & with_entry
            ring = {p for n in ring for p in keys[n]} - seen
            seen |= ring
            hops += 1
        return None

    def ambiguous(name: str) -> bool:
        """Two of its own keys lead, as directly as any, to one table with an entry."""
        if name in with_entry:
            return False
        ways = {p: nearest_entries(p, name) for p in keys[name]}
        reached = {p: w for p, w in ways.items() if w is not None}
        if not reached:
            return False
        fewest = min(h for h, _ in reached.values())
        ends = [e for h, e in reached.values() if h == fewest]
        return any(a & b for i, a in enumerate(ends) for b in ends[i + 1 :])

    assert set(found) == {n for n in distance if not ambiguous(n)}
    for name, columns in found.items():
        assert columns, name
        for column in columns:
            assert len(column.through) == distance[name]
            table = name
            for key in column.through:  # a chain of real keys, from the dataset's table
                assert key in tables[table].foreign_keys
                table = key.referred_table
            assert table in with_entry and column == SubjectColumn("email", "email", column.through)
    located = {issue.loc for issue in unreached(policy, tables)}
    assert located == {("datasets", i, "name") for i, n in enumerate(names) if n not in found}


# --- tenure validate ------------------------------------------------------------------------


def test_validate_without_subjects_says_requests_cannot_be_answered(
    tmp_path: Path, shop: str
) -> None:
    path = _write(tmp_path, HEAD + DATASETS)
    for args in (("--offline",), ()):
        code, errors, out = _validate(path, *args)
        assert code == 0, errors
        notes = [line for line in errors if "subjects:" in line]
        assert notes == [
            f"note: {path}: no subjects: section: requests from people (access, "
            "correction, erasure, withdrawal) cannot be answered until it says which "
            "identifiers name a person and where each dataset holds them"
        ], errors
        assert "valid" in out


def test_validate_reports_every_dataset_no_identifier_reaches(tmp_path: Path, shop: str) -> None:
    text_ = POLICY.replace("    visits: {visitor_id: visitor_id}\n", "").replace(
        "    references: [{dataset: customers, columns: {customer_ref: id}}]\n", ""
    )
    path = _write(tmp_path, text_)
    code, errors, _ = _validate(path)
    assert code == 2, errors
    problems = [line for line in errors if "no identifier" in line]
    # orders and order_lines are reached through the store's foreign keys.
    assert problems == [
        f"{path}:{_line_of(path, 'name: ' + name)}: datasets[{i}].name: no identifier in "
        f"subjects: reaches dataset {name}; add it to subjects.found_in, or a foreign key "
        "to a dataset that has one"
        for i, name in ((3, "visits"), (4, "notes"))
    ], errors
    assert errors[-1] == "2 problem(s) found."


def test_offline_a_dataset_reached_only_through_the_stores_keys_is_a_warning(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, POLICY)
    code, errors, _ = _validate(path, "--offline")
    assert code == 0, errors
    warned = [line for line in errors if "no identifier" in line]
    assert warned == [
        f"warning: {path}:{_line_of(path, 'name: ' + name)}: datasets[{i}].name: no "
        f"identifier in subjects: reaches dataset {name} through subjects.found_in or the "
        "policy's references (the store's foreign keys are not read with --offline)"
        for i, name in ((1, "orders"), (2, "order_lines"))
    ], errors


def test_the_shop_policy_is_valid_with_its_indexes(tmp_path: Path, shop: str) -> None:
    _execute(shop, [f"CREATE INDEX ix_{t}_{c} ON {t} ({c})" for t, c in INDEXED])
    code, errors, out = _validate(_write(tmp_path, POLICY))
    assert (code, errors) == (0, []), errors
    assert "schema checked in 1 store(s)" in out


def test_a_found_in_column_the_table_lacks_is_a_live_problem(tmp_path: Path, shop: str) -> None:
    path = _write(tmp_path, POLICY.replace("{visitor_id: visitor_id}", "{cookie: visitor_id}"))
    assert _validate(path, "--offline")[0] == 0  # not a column the policy knows: not checked
    code, errors, _ = _validate(path)
    assert code == 2
    where = f"{path}:{_line_of(path, '    visits:', after='subjects:')}"
    assert (
        f"{where}: subjects.found_in.visits.cookie: column 'cookie' does not exist in table "
        "'visits'" in errors
    ), errors


#: The columns the shop's policy finds a person by, besides primary keys.
INDEXED = [
    ("customers", "email"),
    ("orders", "customer_id"),
    ("order_lines", "order_id"),
    ("visits", "visitor_id"),
    ("notes", "customer_ref"),
]
_INDEX_WARNING = re.compile(
    r"^warning: (?P<where>\S+): (?P<field>\S+): no index of (?P<table>\w+) begins with "
    r"(?P<column>\w+), (?P<why>[^:]+): finding one person's rows reads the whole table; "
    r"add one: (?P<sql>CREATE INDEX .*)$"
)


@on_backends("sqlite", "postgresql")
def test_a_column_that_finds_a_person_without_an_index_is_warned_of(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _build_shop(store_url)
    monkeypatch.setenv("SHOP_URL", store_url)
    monkeypatch.setenv("TENURE_STATE_URL", f"sqlite:///{tmp_path / 'state.sqlite'}")
    path = _write(tmp_path, POLICY)
    code, errors, _ = _validate(path)
    assert code == 0, errors
    warnings = [m for m in map(_INDEX_WARNING.match, errors) if m is not None]
    assert len(warnings) == len(errors), errors
    assert sorted((m["table"], m["column"]) for m in warnings) == sorted(INDEXED)
    fields = {m["table"]: (m["where"], m["field"]) for m in warnings}
    assert fields["customers"] == (
        f"{path}:{_line_of(path, '    customers: {id', after='subjects:')}",
        "subjects.found_in.customers.email",
    )
    assert fields["order_lines"] == (
        f"{path}:{_line_of(path, 'table: order_lines')}",
        "datasets[2].table",
    )
    assert {m["table"]: m["why"] for m in warnings}["orders"] == (
        "the foreign key orders.customer_id -> customers.id leading to the person"
    )
    _execute(store_url, [m["sql"] for m in warnings])  # the statements it suggests quiet it
    code, errors, _ = _validate(path)
    assert (code, errors) == (0, [])


def test_the_shipped_policy_reaches_all_fifteen_datasets(
    demo_sqlite_url: str,
    demo_files: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the demo's three stores (the mail and log stores the fixture's copies: a fresh
    clone has no tenure-demo/ folder for their default URLs)."""
    loaded = load_policy(SHIPPED_POLICY)
    policy = loaded.policy
    assert policy.subjects is not None and len(policy.datasets) == 15
    assert set(policy.subjects.found_in) == {d.name for d in policy.datasets}
    assert unreached(policy) == []
    assert policy.requests.purpose == "manage_choices_and_rights"
    assert policy.requests.jurisdictions == [Jurisdiction.QUEBEC, Jurisdiction.PIPEDA]
    found = subject_columns(policy)
    assert {c.identifier for c in found["web_clicks"]} == {"customer_id", "visitor_id"}
    for name in ("marketing_contacts", "marketing_consent_records"):
        assert {(c.column, c.identifier) for c in found[name]} == {
            ("customer_id", "customer_id"), ("address", "email"),
        }  # fmt: skip
    assert {(c.column, c.identifier) for c in found["business_email"]} == {
        ("correspondent", "email")
    }
    # On the demo store (a copy): valid, and quiet once the indexes it names exist.
    store = tmp_path / "crm.sqlite"
    store.write_bytes(Path(demo_sqlite_url.removeprefix("sqlite:///")).read_bytes())
    monkeypatch.setenv("TENURE_CRM_URL", f"sqlite:///{store}")
    monkeypatch.setenv("TENURE_STATE_URL", f"sqlite:///{tmp_path / 'state.sqlite'}")
    result = runner.invoke(app, ["validate", str(SHIPPED_POLICY)])
    assert result.exit_code == 0, result.stderr
    statements = [
        m["sql"] for m in map(_INDEX_WARNING.match, result.stderr.splitlines()) if m is not None
    ]
    _execute(f"sqlite:///{store}", statements)
    again = runner.invoke(app, ["validate", str(SHIPPED_POLICY)])
    assert again.exit_code == 0, again.stderr
    assert not [line for line in again.stderr.splitlines() if "no index" in line]


def test_needed_indexes_of_the_shipped_policy() -> None:
    """What the demo schema needs for one person's rows to be read by index."""
    policy = load_policy(SHIPPED_POLICY).policy
    needed = {(n.table, n.column) for n in needed_indexes(policy)}
    assert ("customers", "email") in needed and ("web_clicks", "visitor_id") in needed
    assert ("inbox", "correspondent") in needed  # listed; only SQL stores are warned of


# --- tenure scan --suggest -------------------------------------------------------------------


def test_suggest_proposes_found_in_from_foreign_keys_and_categories(tmp_path: Path) -> None:
    text_ = POLICY.replace("    visits: {visitor_id: visitor_id}\n", "")
    policy = load_policy(_write(tmp_path, text_)).policy
    stub = suggest_bindings(policy, [], {}, (), tables=SHOP_TABLES)
    assert "subjects:\n  found_in:\n" in stub
    assert (
        "    orders: {customer_id: customer_id}   # foreign key orders.customer_id -> "
        "customers.id" in stub
    )
    assert (
        "    notes: {customer_ref: customer_id}   # the policy's reference notes.customer_ref "
        "-> customers.id" in stub
    )
    assert "    visits: {visitor_id: visitor_id}   # visitor_id is web.visitor_id" in stub
    assert "customers:" not in stub.split("subjects:")[1]  # nothing new to say
    assert "order_lines" not in stub  # its key leads to orders.id, which names nobody


def test_suggest_leaves_a_decided_entry_alone_and_asks_for_the_section(tmp_path: Path) -> None:
    text_ = POLICY.replace(
        "{email: contact.email}", "{email: contact.email, backup_email: contact.email}", 1
    )
    policy = load_policy(_write(tmp_path, text_)).policy
    stub = suggest_bindings(policy, [], {}, (), tables=SHOP_TABLES)
    assert "backup_email" not in stub  # customers' entry says where the person is
    bare = load_policy(_write(tmp_path, HEAD + DATASETS, "bare.yaml")).policy
    assert suggest_bindings(bare, [], {}, (), tables=SHOP_TABLES).splitlines()[-1] == (
        "# No subjects: section: declare the identifiers that name a person, and --suggest "
        "proposes where each dataset holds them."
    )


def test_scan_suggest_prints_the_proposals(tmp_path: Path, shop: str) -> None:
    path = _write(tmp_path, POLICY.replace("    visits: {visitor_id: visitor_id}\n", ""))
    result = runner.invoke(app, ["scan", str(path), "--suggest", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "    orders: {customer_id: customer_id}   # foreign key" in result.stdout
    assert "    visits: {visitor_id: visitor_id}" in result.stdout


def test_a_table_with_two_keys_to_people_is_ambiguous_not_both(tmp_path: Path) -> None:
    """An order with a buyer and a gift recipient, both customers: ORing the two keys
    would erase the recipient's rows with the buyer's, so the dataset is reported, at
    its line, until subjects.found_in names the column."""
    gift = ForeignKeyInfo(("gift_for_id",), "customers", ("id",))
    tables = dict(SHOP_TABLES)
    tables["orders"] = _info("orders", TO_CUSTOMERS, gift, columns=("customer_id", "gift_for_id"))
    path = _write(tmp_path, POLICY)
    loaded = load_policy(path)
    found = subject_columns(loaded.policy, tables)
    assert "orders" not in found
    issues = [str(i) for i in loaded.locate(unreached(loaded.policy, tables))]
    assert any(
        "dataset orders reaches people through several keys (customer_id, gift_for_id)" in i
        and "subjects.found_in" in i
        for i in issues
    ), issues
