"""Operators run inside the database give exactly what pandas gives.

Each SQL form is checked against the pandas path on real SQLite and PostgreSQL: the same
values go in two columns of one table, one is rewritten by the operator's expression in
an UPDATE, the other as the connector's pandas path does it, and both are read back.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from anonymizers.operators import Operator
from anonymizers.registry import create_operator
from connectors.protocol import ColumnRewrite
from connectors.values import plain
from tests.support.backends import BACKENDS, on_backends
from tests.support.people import NOW, anonymize, people, person, spy
from tests.support.pg_server import PostgresServer

DIALECTS = [BACKENDS["sqlite"], BACKENDS["postgresql"]]
EXAMPLES = settings(max_examples=60, deadline=None)
pytestmark = pytest.mark.usefixtures("pseudonym_keys")


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('forms') / 'forms.sqlite'}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def pg_engine(pg_server: PostgresServer) -> Iterator[sa.Engine]:
    """One database for the module (``pg_url`` makes one per test, too many here)."""
    name = f"forms_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_server.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))  # generated hex name
    admin.dispose()
    engine = sa.create_engine(pg_server.url(name))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module", params=DIALECTS)
def engine(request: pytest.FixtureRequest) -> sa.Engine:
    fixture = {"sqlite": "sqlite_engine", "postgresql": "pg_engine"}[request.param]
    engine: sa.Engine = request.getfixturevalue(fixture)
    return engine


def op(name: str, **params: object) -> Operator:
    return create_operator(name, params)


def make_table(engine: sa.Engine, kind: sa.types.TypeEngine[Any]) -> sa.Table:
    """A table with the same column type twice: rewritten in SQL, and in pandas."""
    table = sa.Table(
        f"forms_{uuid.uuid4().hex[:12]}",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("in_sql", kind),
        sa.Column("in_pandas", kind),
    )
    table.create(engine)
    return table


def assert_same_as_pandas(
    engine: sa.Engine, table: sa.Table, operator: Operator, values: list[Any]
) -> None:
    expression = operator.sql_expression(table.c.in_sql, engine.dialect.name)
    assert expression is not None, f"{operator!r} has no SQL form here"
    in_sql = sa.case((table.c.in_sql.is_(None), sa.null()), else_=expression)
    with engine.begin() as connection:
        connection.execute(sa.delete(table))
        if values:
            rows = [{"id": i, "in_sql": v, "in_pandas": v} for i, v in enumerate(values)]
            connection.execute(sa.insert(table), rows)
        connection.execute(sa.update(table).values(in_sql=in_sql))
        rewrite_in_pandas(connection, table, operator)
        # As stored too: SQLite compares dates and timestamps as text.
        stored = (sa.cast(table.c.in_sql, sa.Text), sa.cast(table.c.in_pandas, sa.Text))
        read = sa.select(table.c.in_sql, table.c.in_pandas, *stored).order_by(table.c.id)
        got = connection.execute(read).all()
    assert [(row[0], row[2]) for row in got] == [(row[1], row[3]) for row in got]


def rewrite_in_pandas(connection: sa.Connection, table: sa.Table, operator: Operator) -> None:
    """The connector's pandas path: read, ``operate``, write back row by row."""
    rows = [tuple(r) for r in connection.execute(sa.select(table.c.id, table.c.in_pandas))]
    if not rows:
        return
    frame = pd.DataFrame.from_records(rows, columns=["id", "in_pandas"])
    frame["in_pandas"] = operator.operate(frame["in_pandas"])
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("_id"))
        .values(in_pandas=sa.bindparam("_new"))
    )
    params = [{"_id": key, "_new": plain(new)} for key, new in frame.itertuples(index=False)]
    connection.execute(statement, params)


def check(
    engine: sa.Engine,
    kind: sa.types.TypeEngine[Any],
    operators: st.SearchStrategy[Operator],
    values: st.SearchStrategy[Any],
) -> None:
    """The property, on one table reused across examples."""
    table = make_table(engine, kind)

    @EXAMPLES
    @given(operator=operators, values=st.lists(values, max_size=12))
    def same(operator: Operator, values: list[Any]) -> None:
        assert_same_as_pandas(engine, table, operator, values)

    same()


# Values.

TRICKY_TEXT = [
    "", " ", "\t\n", "%", "_", "'", '"', "\\", "%_'\\\"", "é", "日本語", "🙂x",
    "a" * 300, "\xa0", "ǅ", "ﬁ", "İ", "ß", "e\u0301",
]  # fmt: skip


# Any text both databases store: PostgreSQL refuses NUL, and SQLite's string functions
# stop at one (see ``Mask.sql_expression``).
CHARACTERS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
TEXTS = st.none() | st.sampled_from(TRICKY_TEXT) | st.text(CHARACTERS, max_size=30)


def postal_codes(dialect: str) -> st.SearchStrategy[str | None]:
    """Near misses too: Unicode spaces, digits and letters that Python's \\s, \\d and
    str.upper would take."""
    space = st.text(st.sampled_from(" \t\n\r\f\v\xa0\u2003\x1c\x85\u3000"), max_size=3)
    letter = st.sampled_from("aAhHzZé\u0131\u017f\uff28")  # dotless i, long s, fullwidth H
    digit = st.sampled_from("0159٣²")
    rest = st.text(CHARACTERS, max_size=6)
    code = st.tuples(space, letter, digit, letter, rest).map("".join)
    nul = st.sampled_from(["\x00H2X", "H2X\x00", "H\x002X", " \x00h2x"])
    return TEXTS | code | (nul if dialect == "sqlite" else st.nothing())


# Python has no year 0, so the decade of years 1 to 9 fails in pandas (and PostgreSQL).
dates = st.dates(min_value=date(10, 1, 1))
datetimes = st.datetimes(min_value=datetime(10, 1, 1)) | st.sampled_from(
    [datetime(2019, 12, 31, 23, 59, 59, 999999), datetime(2000, 1, 1), datetime(9999, 12, 31)]
)
date_levels = st.sampled_from(["day", "month", "year", "decade"])
generalize_dates = date_levels.map(lambda level: op("generalize", to=level))


# The properties.


def test_constants(engine: sa.Engine) -> None:
    constants = st.sampled_from([op("null"), op("redact"), op("replace")]) | st.builds(
        lambda new: op("replace", new_value=new), TEXTS.filter(bool)
    )
    check(engine, sa.String(), constants, TEXTS)


def test_null_keeps_the_column_type(engine: sa.Engine) -> None:
    check(engine, sa.Integer(), st.just(op("null")), st.none() | st.integers(-(2**31), 2**31 - 1))


masks = st.builds(
    lambda char, count, from_end: op(
        "mask", masking_char=char, chars_to_mask=count, from_end=from_end
    ),
    st.sampled_from("*%_'\\\"#0é日") | CHARACTERS,
    st.none() | st.integers(0, 12) | st.just(2**40),
    st.booleans(),
)


def test_mask(engine: sa.Engine) -> None:
    check(engine, sa.String(), masks, TEXTS)


def test_mask_on_text_type(engine: sa.Engine) -> None:
    check(engine, sa.Text(), masks, TEXTS)


def test_fsa(engine: sa.Engine) -> None:
    fsa = st.just(op("generalize", to="fsa"))
    check(engine, sa.String(), fsa, postal_codes(engine.dialect.name))


def test_generalize_dates(engine: sa.Engine) -> None:
    check(engine, sa.Date(), generalize_dates, st.none() | dates)


def test_generalize_naive_timestamps(engine: sa.Engine) -> None:
    check(engine, sa.DateTime(), generalize_dates, st.none() | datetimes)


@pytest.mark.postgres
def test_generalize_timestamps_with_precision(pg_engine: sa.Engine) -> None:
    stamps = st.none() | datetimes.map(lambda d: d.replace(microsecond=d.microsecond // 1000))
    check(pg_engine, postgresql.TIMESTAMP(precision=3), generalize_dates, stamps)


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
IP_PREFIX = st.just(op("generalize", to="ip_prefix"))
ips = st.none() | ipv4 | ipv6 | st.sampled_from(["::ffff:1.2.3.4", "::", "255.255.255.255"])


@pytest.mark.postgres
def test_ip_prefix_on_inet(pg_engine: sa.Engine) -> None:
    with_length = st.tuples(ipv4, st.integers(0, 32)).map(lambda p: f"{p[0]}/{p[1]}")
    check(pg_engine, postgresql.INET(), IP_PREFIX, ips | with_length)


@pytest.mark.postgres
def test_ip_prefix_on_cidr(pg_engine: sa.Engine) -> None:
    networks = st.one_of(
        st.ip_addresses(v=4).map(lambda a: f"{a}/32"),
        st.tuples(ipv4, st.integers(0, 32)).map(lambda p: _network(*p)),
        st.tuples(ipv6, st.integers(0, 128)).map(lambda p: _network(*p)),
    )
    check(pg_engine, postgresql.CIDR(), IP_PREFIX, networks)


def _network(address: str, length: int) -> str:
    return str(ipaddress.ip_network(f"{address}/{length}", strict=False))


# Where there is no SQL form, the column goes through pandas.

DAY_FIRST = sqlite.DATE(storage_format="%(day)02d/%(month)02d/%(year)04d")


@pytest.mark.parametrize(
    ("operator", "kind", "dialect"),
    [
        (op("mask"), sa.CHAR(5), "postgresql"),
        (op("mask"), sa.Enum("a", "b", name="ab"), "postgresql"),
        (op("mask"), sa.Integer(), "sqlite"),
        (op("mask"), sa.String(), "mysql"),
        (op("mask", masking_char="\x00"), sa.String(), "sqlite"),
        (op("generalize", to="fsa"), sa.NCHAR(7), "sqlite"),
        (op("generalize", to="fsa"), sa.String(), "mssql"),
        (op("generalize", to="ip_prefix"), sa.String(), "postgresql"),
        (op("generalize", to="ip_prefix"), postgresql.INET(), "sqlite"),
        (op("generalize", to="year"), sa.DateTime(timezone=True), "postgresql"),
        (op("generalize", to="year"), sa.String(), "sqlite"),
        (op("generalize", to="year"), sa.Date(), "mysql"),
        (op("generalize", to="year"), sqlite.DATETIME(truncate_microseconds=True), "sqlite"),
        (op("generalize", to="day"), DAY_FIRST, "sqlite"),
        (op("pseudonym"), sa.String(), "postgresql"),
        (op("surrogate", kind="name"), sa.String(), "sqlite"),
    ],
    ids=repr,
)
def test_no_sql_form(operator: Operator, kind: sa.types.TypeEngine[Any], dialect: str) -> None:
    assert operator.sql_expression(sa.column("c", kind), dialect) is None


def test_expressions_bind_every_value() -> None:
    """A masking character or new value never becomes SQL text."""
    column = sa.column("c", sa.String())
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        for operator in (op("mask", masking_char="'"), op("replace", new_value="x'); --")):
            expression = operator.sql_expression(column, dialect.name)
            assert expression is not None
            assert "'" not in str(expression.compile(dialect=dialect))


# Through the connector: SQL forms run in the database, the rest in pandas.


@on_backends("sqlite", "postgresql")
def test_connector_rewrites_sql_forms_in_the_database(store_url: str) -> None:
    engine = sa.create_engine(store_url)
    people.create(engine)
    before = [person(i) for i in range(1, 12)]
    with engine.begin() as connection:
        connection.execute(sa.insert(people), before)
    operators = {
        "phone": op("mask", chars_to_mask=4, from_end=True, masking_char="#"),
        "postcode": op("generalize", to="fsa"),
        "born": op("generalize", to="decade"),
        "email": op("pseudonym"),
    }
    calls: list[str] = []
    rewrites = tuple(
        ColumnRewrite(name, sql=o.sql_expression, transform=spy(name, o.operate, calls))
        for name, o in operators.items()
    )
    anonymize(store_url, rewrites)

    assert set(calls) == {"email"}  # the others never reached pandas
    with engine.connect() as connection:
        after = connection.execute(sa.select(people).order_by(people.c.id)).mappings().all()
    engine.dispose()
    expired = [row for row in before if row["seen_at"] < NOW - timedelta(days=365)]
    for name, operator in operators.items():
        original = pd.Series([row[name] for row in expired], dtype=object)
        expected = [plain(v) for v in operator.operate(original)]
        assert [row[name] for row in after if row["id"] % 4] == expected, name
        kept = [row[name] for row in before if not row["id"] % 4]
        assert [row[name] for row in after if not row["id"] % 4] == kept, name
