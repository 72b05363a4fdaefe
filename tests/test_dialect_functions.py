"""The portable SQL functions of ``connectors.sql.functions``: each one's SQL on SQLite,
PostgreSQL, MySQL and MariaDB (or its refusal where a dialect has no rendering), and its
values on real stores against a Python reference, for any input hypothesis finds.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import mssql, mysql, postgresql, sqlite
from sqlalchemy.dialects.mysql import mariadb
from sqlalchemy.exc import CompileError
from sqlalchemy.sql.compiler import Compiled

from connectors.sql import functions as f
from connectors.sql.functions import FSA_PATTERN, portable
from tests.support.backends import STORE_BACKENDS
from tests.support.mariadb_server import MariaDBServer
from tests.support.pg_server import PostgresServer

EXAMPLES = settings(max_examples=40, deadline=None)
DIALECTS: dict[str, sa.Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.dialect(),
    "mysql": mysql.dialect(),
    "mariadb": mariadb.MariaDBDialect(),
}
STORES = STORE_BACKENDS
TEXT = sa.column("t", sa.String())
STAMP = sa.column("d", sa.DateTime())
DAY = sa.column("d", sa.Date())
ADDRESS = sa.column("a", postgresql.INET())
TABLE = sa.Table("web_clicks", sa.MetaData(), sa.Column("id", sa.Integer), schema="shop")
# No NUL (PostgreSQL cannot hold it in text; SQLite's length stops at it) and no lone
# surrogates (no driver can send them).
CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
TEXTS = st.text(CHARS, max_size=12)


def compiled(expression: sa.ColumnElement[Any], dialect: str) -> Compiled:
    return sa.select(expression).compile(dialect=DIALECTS[dialect])


def sql(expression: sa.ColumnElement[Any], dialect: str) -> str:
    return " ".join(str(compiled(expression, dialect)).split())


# The SQL of each dialect.

SHAPES: list[tuple[str, sa.ColumnElement[Any], dict[str, str | None]]] = [
    (
        "least",
        f.least(sa.literal(3), sa.literal(5)),
        {
            "sqlite": "min(?, ?)",
            "postgresql": "least(%(param_1)s::INTEGER, %(param_2)s::INTEGER)",
            "mysql": "least(%s, %s)",
            "mariadb": "least(%s, %s)",
        },
    ),
    (
        "repeat_char",
        f.repeat_char(sa.literal("*"), sa.literal(4)),
        {
            "sqlite": "replace(hex(zeroblob(?)), ?, ?)",
            "postgresql": "repeat(%(param_1)s::VARCHAR, %(param_2)s::INTEGER)",
            "mysql": "repeat(%s, %s)",
            "mariadb": "repeat(%s, %s)",
        },
    ),
    (
        "masked_text (all)",
        f.masked_text(TEXT, "*", None),
        {
            "sqlite": "replace(hex(zeroblob(length(t))), ?, ?)",
            "postgresql": "repeat(%(param_1)s::VARCHAR, length(t))",
            "mysql": None,
            "mariadb": None,
        },
    ),
    (
        "masked_text (from the end)",
        f.masked_text(TEXT, "#", 4, from_end=True),
        {
            "sqlite": "substr(t, ?, length(t) - min(length(t), ?)) || "
            "replace(hex(zeroblob(min(length(t), ?))), ?, ?)",
            "postgresql": "substr(t, %(substr_1)s::INTEGER, length(t) - least(length(t), "
            "%(param_1)s::INTEGER)) || repeat(%(param_2)s::VARCHAR, least(length(t), "
            "%(param_1)s::INTEGER))",
            "mysql": None,
            "mariadb": None,
        },
    ),
    (
        "masked_text (none)",
        f.masked_text(TEXT, "*", 0),
        {"sqlite": "t", "postgresql": "t", "mysql": None, "mariadb": None},
    ),
    (
        "forward_sortation_area",
        f.forward_sortation_area(TEXT),
        {
            "sqlite": "CASE WHEN (substr(ltrim(t, ?), ?, ?) GLOB ?) "
            "THEN upper(substr(ltrim(t, ?), ?, ?)) ELSE NULL END",
            "postgresql": 'upper(SUBSTRING(t COLLATE "C" FROM %(param_1)s::VARCHAR))',
            "mysql": None,
            "mariadb": None,
        },
    ),
    (
        "network_address",
        f.network_address(ADDRESS, 24, 48),
        {
            "sqlite": None,
            "postgresql": "CAST(host(network(set_masklen(a, CASE WHEN (family(a) = "
            "%(family_1)s::INTEGER) THEN %(param_1)s::INTEGER ELSE %(param_2)s::INTEGER END)))"
            " AS INET)",
            "mysql": None,
            "mariadb": None,
        },
    ),
    (
        "truncated_date (month)",
        f.truncated_date(STAMP, "month"),
        {
            "sqlite": "strftime(?, d)",
            "postgresql": "CAST(date_trunc(%(date_trunc_1)s::VARCHAR, CAST(d AS TIMESTAMP "
            "WITHOUT TIME ZONE)) AS TIMESTAMP WITHOUT TIME ZONE)",
            "mysql": None,
            "mariadb": None,
        },
    ),
    (
        "truncated_date (decade)",
        f.truncated_date(DAY, "decade"),
        {
            "sqlite": "substr(strftime(?, d), ?, ?) || ?",
            "postgresql": "CAST(make_date(CAST(EXTRACT(year FROM d) AS INTEGER) - "
            "CAST(EXTRACT(year FROM d) AS INTEGER) %% %(param_1)s::INTEGER, "
            "%(make_date_1)s::INTEGER, %(make_date_2)s::INTEGER) AS DATE)",
            "mysql": None,
            "mariadb": None,
        },
    ),
    (
        "estimated_rows",
        f.estimated_rows(TABLE),
        {
            "sqlite": None,
            "postgresql": "(SELECT CASE WHEN (pg_catalog.pg_class.reltuples >= "
            "%(reltuples_1)s::INTEGER) THEN pg_catalog.pg_class.reltuples END AS anon_1 FROM "
            "pg_catalog.pg_class WHERE pg_catalog.pg_class.oid = "
            "to_regclass(%(qualified)s::VARCHAR))",
            "mysql": "(SELECT nullif(information_schema.`TABLES`.table_rows, %s) AS nullif_1 "
            "FROM information_schema.`TABLES` WHERE information_schema.`TABLES`.table_schema "
            "= %s AND information_schema.`TABLES`.table_name = %s)",
            "mariadb": "(SELECT nullif(information_schema.`TABLES`.table_rows, %s) AS "
            "nullif_1 FROM information_schema.`TABLES` WHERE "
            "information_schema.`TABLES`.table_schema = %s AND "
            "information_schema.`TABLES`.table_name = %s)",
        },
    ),
    (
        "order_correlation",
        f.order_correlation(TABLE, "id"),
        {
            "sqlite": None,
            "postgresql": "(SELECT max(pg_catalog.pg_stats.correlation) AS max_1 FROM "
            "pg_catalog.pg_stats WHERE pg_catalog.pg_stats.schemaname = %(schema)s AND "
            "pg_catalog.pg_stats.tablename = %(table)s AND pg_catalog.pg_stats.attname = "
            "%(column)s::VARCHAR)",
            "mysql": None,
            "mariadb": None,
        },
    ),
    (
        "try_lock",
        f.try_lock("tenure:run"),
        {
            "sqlite": None,
            "postgresql": "pg_try_advisory_lock(%(pg_try_advisory_lock_1)s::BIGINT)",
            "mysql": "get_lock(%s, %s)",
            "mariadb": "get_lock(%s, %s)",
        },
    ),
    (
        "unlock",
        f.unlock("tenure:run"),
        {
            "sqlite": None,
            "postgresql": "pg_advisory_unlock(%(pg_advisory_unlock_1)s::BIGINT)",
            "mysql": "release_lock(%s)",
            "mariadb": "release_lock(%s)",
        },
    ),
]


@pytest.mark.parametrize(
    ("expression", "dialect", "expected"),
    [
        pytest.param(expression, dialect, expected, id=f"{name}-{dialect}")
        for name, expression, shapes in SHAPES
        for dialect, expected in shapes.items()
    ],
)
def test_each_dialect_renders_its_own_sql_or_refuses(
    expression: sa.ColumnElement[Any], dialect: str, expected: str | None
) -> None:
    label = f"AS {expression.name}_1"
    if expected is None:
        assert portable(expression, dialect) is None
        with pytest.raises(CompileError, match=f"has no rendering for dialect '{dialect}'"):
            compiled(expression, dialect)
    else:
        assert portable(expression, dialect) is expression
        assert sql(expression, dialect) == f"SELECT {expected} {label}"


def test_every_function_is_shown_on_every_dialect() -> None:
    functions = {type(expression) for _, expression, _ in SHAPES}
    defined = {
        value
        for value in vars(f).values()
        if isinstance(value, type)
        and issubclass(value, f.PortableFunction)
        and value.dialects  # the bases have no rendering of their own
    }
    assert functions == defined
    assert all(set(shapes) == set(DIALECTS) for _, _, shapes in SHAPES)


def test_a_dialect_without_a_rendering_is_refused_not_guessed() -> None:
    """Any other dialect (SQL Server here) gets an error, never ``least(...)`` as written."""
    with pytest.raises(CompileError, match=r"least\(\) has no rendering for dialect 'mssql'"):
        sa.select(f.least(sa.literal(1), sa.literal(2))).compile(dialect=mssql.dialect())
    assert portable(f.least(sa.literal(1), sa.literal(2)), "mssql") is None


def test_a_function_whose_rendering_needs_a_column_type_says_so() -> None:
    assert portable(f.network_address(sa.column("a", sa.String()), 24, 48), "postgresql") is None
    cidr = f.network_address(sa.column("a", postgresql.CIDR()), 24, 48)
    assert portable(cidr, "postgresql") is cidr
    # SQLite: only for the text format SQLAlchemy writes by default.
    odd = sqlite.DATETIME(truncate_microseconds=True)
    assert portable(f.truncated_date(sa.column("d", odd), "day"), "sqlite") is None
    assert portable(f.truncated_date(sa.column("d", sa.String()), "day"), "sqlite") is None
    assert portable(f.truncated_date(sa.column("d", odd), "day"), "postgresql") is not None


def test_portable_looks_inside_an_expression() -> None:
    nested = sa.func.upper(sa.func.coalesce(f.forward_sortation_area(TEXT), sa.literal("")))
    assert portable(nested, "sqlite") is nested
    assert portable(nested, "mysql") is None


def test_settings_that_change_the_sql_are_in_the_cache_key() -> None:
    """A level, a count, a side, a table or a lock name changes the statement, so it must
    change the cache key, or a cached statement would run for the wrong one."""
    other = sa.Table("orders", sa.MetaData(), sa.Column("id", sa.Integer), schema="shop")
    pairs = [
        (f.truncated_date(STAMP, "month"), f.truncated_date(STAMP, "year")),
        (f.masked_text(TEXT, "*", 2), f.masked_text(TEXT, "*", None)),
        (f.masked_text(TEXT, "*", 2), f.masked_text(TEXT, "*", 0)),
        (f.masked_text(TEXT, "*", 2), f.masked_text(TEXT, "*", 2, from_end=True)),
        (f.estimated_rows(TABLE), f.estimated_rows(other)),
        (f.order_correlation(TABLE, "id"), f.order_correlation(other, "id")),
        (f.order_correlation(TABLE, "id"), f.order_correlation(TABLE, "created_at")),
        (f.try_lock("a"), f.try_lock("b")),
        (f.try_lock("a"), f.unlock("a")),
    ]
    for first, second in pairs:
        assert first._generate_cache_key() != second._generate_cache_key()
    same = f.masked_text(TEXT, "*", 2)._generate_cache_key()
    assert same == f.masked_text(TEXT, "#", 2)._generate_cache_key()  # a bound value


def test_values_are_bound_never_written_into_the_sql() -> None:
    for dialect in ("sqlite", "postgresql"):
        text = sql(f.masked_text(TEXT, "'", 3, from_end=True), dialect)
        assert "'" not in text
    assert "tenure" not in sql(f.try_lock("tenure:run"), "mysql")


def test_a_long_lock_name_becomes_one_mysql_accepts() -> None:
    long = "tenure:" + "x" * 80
    assert f.try_lock("short").mysql_name() == "short"
    assert len(f.try_lock(long).mysql_name()) == 64
    assert f.try_lock(long).mysql_name() == f.unlock(long).mysql_name()
    assert f.try_lock(long).advisory_key() == f.unlock(long).advisory_key()


# Values on real stores.


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    path = tmp_path_factory.mktemp("functions") / "functions.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def postgresql_engine(pg_server: PostgresServer) -> Iterator[sa.Engine]:
    """One database for the module."""
    engine = sa.create_engine(pg_server.fresh_database("functions"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def mariadb_engine(mariadb_server: MariaDBServer) -> Iterator[sa.Engine]:
    """The ``mariadb`` dialect (``mariadb+pymysql://``); the other tests use ``mysql``."""
    url = mariadb_server.create_database(f"functions_{uuid.uuid4().hex[:12]}")
    engine = sa.create_engine(url.replace("mysql+pymysql://", "mariadb+pymysql://", 1))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module", params=STORES)
def store(request: pytest.FixtureRequest) -> sa.Engine:
    engine: sa.Engine = request.getfixturevalue(f"{request.param}_engine")
    return engine


@pytest.fixture(scope="module", params=STORES[:2])
def sqlite_or_pg(request: pytest.FixtureRequest) -> sa.Engine:
    engine: sa.Engine = request.getfixturevalue(f"{request.param}_engine")
    return engine


_TABLES: dict[tuple[str, str], sa.Table] = {}


def evaluate(
    engine: sa.Engine,
    kind: sa.types.TypeEngine[Any],
    values: list[Any],
    build: Callable[[sa.ColumnElement[Any]], sa.ColumnElement[Any]],
) -> list[Any]:
    """``build`` over a column of type ``kind`` holding ``values``, read back in order."""
    key = (str(engine.url), repr(kind))
    if key not in _TABLES:
        _TABLES[key] = sa.Table(
            f"values_{uuid.uuid4().hex[:12]}",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("v", kind),
        )
        _TABLES[key].create(engine)
    table = _TABLES[key]
    expression = portable(build(table.c.v), engine.dialect.name)
    assert expression is not None, f"no rendering on {engine.dialect.name}"
    with engine.begin() as connection:
        connection.execute(sa.delete(table))
        if values:
            connection.execute(sa.insert(table), [{"id": i, "v": v} for i, v in enumerate(values)])
        read = sa.select(expression).order_by(table.c.id)
        return list(connection.execute(read).scalars())


INTEGERS = st.integers(-(2**31), 2**31 - 1)


@EXAMPLES
@given(values=st.lists(INTEGERS, max_size=8), other=INTEGERS)
def test_least_is_the_smaller(store: sa.Engine, values: list[int], other: int) -> None:
    got = evaluate(store, sa.BigInteger(), values, lambda v: f.least(v, sa.literal(other)))
    assert got == [min(value, other) for value in values]


@EXAMPLES
@given(a=INTEGERS, b=INTEGERS)
def test_least_of_two_values(store: sa.Engine, a: int, b: int) -> None:
    with store.connect() as connection:
        got = connection.execute(sa.select(f.least(sa.literal(a), sa.literal(b)))).scalar()
    assert got == min(a, b)


@EXAMPLES
@given(char=CHARS, times=st.integers(-3, 40))
def test_repeat_char_repeats(store: sa.Engine, char: str, times: int) -> None:
    expression = f.repeat_char(sa.literal(char, sa.String()), sa.literal(times))
    with store.connect() as connection:
        got = connection.execute(sa.select(expression)).scalar()
    assert got == char * times


def mask_reference(text: str, char: str, count: int | None, from_end: bool) -> str:
    if count is None:
        return char * len(text)
    shown = max(len(text) - count, 0)
    return (
        text[:shown] + char * (len(text) - shown)
        if from_end
        else char * min(count, len(text)) + text[count:]
    )


@EXAMPLES
@given(
    texts=st.lists(TEXTS, max_size=8),
    char=CHARS,
    count=st.none() | st.integers(0, 15) | st.just(2**40),
    from_end=st.booleans(),
)
def test_masked_text_masks_as_python_does(
    sqlite_or_pg: sa.Engine, texts: list[str], char: str, count: int | None, from_end: bool
) -> None:
    got = evaluate(
        sqlite_or_pg, sa.Text(), texts, lambda v: f.masked_text(v, char, count, from_end)
    )
    assert got == [mask_reference(t, char, count, from_end) for t in texts]


POSTAL_LIKE = st.builds(
    lambda space, a, d, b, rest: space + a + d + b + rest,
    st.text(st.sampled_from(" \t\n\r\f\v\u00a0\u2003"), max_size=3),
    st.sampled_from("aKzÉ1 ß"),
    st.sampled_from("0951x٣"),
    st.sampled_from("AbqZ9ñ"),
    st.text(CHARS, max_size=4),
)


def fsa_reference(text: str) -> str | None:
    found = re.match(FSA_PATTERN, text)
    return None if found is None else found.group(1).upper()


@EXAMPLES
@given(texts=st.lists(POSTAL_LIKE | TEXTS, max_size=8))
def test_forward_sortation_area_as_python_reads_it(
    sqlite_or_pg: sa.Engine, texts: list[str]
) -> None:
    got = evaluate(sqlite_or_pg, sa.Text(), texts, f.forward_sortation_area)
    assert got == [fsa_reference(t) for t in texts]


ADDRESSES = st.ip_addresses(v=4) | st.ip_addresses(v=6)


@pytest.mark.postgres
@EXAMPLES
@given(addresses=st.lists(ADDRESSES, max_size=8), v4=st.integers(0, 32), v6=st.integers(0, 128))
def test_network_address_keeps_the_prefix(
    postgresql_engine: sa.Engine,
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
    v4: int,
    v6: int,
) -> None:
    values = [str(a) for a in addresses]
    got = evaluate(
        postgresql_engine, postgresql.INET(), values, lambda v: f.network_address(v, v4, v6)
    )
    expected = [
        ipaddress.ip_network(f"{a}/{v4 if a.version == 4 else v6}", strict=False).network_address
        for a in addresses
    ]
    assert [ipaddress.ip_interface(str(g)).ip for g in got] == expected


def truncate_reference(value: date, level: str) -> date:
    if isinstance(value, datetime):
        value = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if level == "month":
        return value.replace(day=1)
    if level in ("year", "decade"):
        year = value.year - value.year % 10 if level == "decade" else value.year
        return value.replace(year=year, month=1, day=1)
    return value


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        (sa.DateTime(), st.datetimes(datetime(10, 1, 1), datetime(9999, 12, 31))),
        (sa.Date(), st.dates(date(10, 1, 1), date(9999, 12, 31))),
    ],
    ids=["timestamp", "date"],
)
@EXAMPLES
@given(data=st.data(), level=st.sampled_from(f.DATE_LEVELS))
def test_truncated_date_starts_its_level(
    sqlite_or_pg: sa.Engine,
    kind: sa.types.TypeEngine[Any],
    values: st.SearchStrategy[date],
    data: st.DataObject,
    level: str,
) -> None:
    chosen = data.draw(st.lists(values, max_size=8))
    got = evaluate(sqlite_or_pg, kind, chosen, lambda v: f.truncated_date(v, level))
    assert got == [truncate_reference(value, level) for value in chosen]


@pytest.mark.parametrize("rows", [0, 7])
def test_estimated_rows_is_the_store_estimate_or_none(store: sa.Engine, rows: int) -> None:
    """NULL before the store has an estimate (or none at all: SQLite has no rendering);
    after the store's ANALYZE, the exact count of a small table."""
    table = sa.Table(
        f"estimated_{uuid.uuid4().hex[:12]}", sa.MetaData(), sa.Column("id", sa.Integer)
    )
    table.create(store)
    estimate = f.estimated_rows(table)
    if store.dialect.name == "sqlite":
        assert portable(estimate, "sqlite") is None
        return
    with store.begin() as connection:
        if store.dialect.name == "postgresql":
            assert connection.execute(sa.select(estimate)).scalar() is None  # never analysed
        if rows:
            connection.execute(sa.insert(table), [{"id": i} for i in range(rows)])
    analyze = "ANALYZE" if store.dialect.name == "postgresql" else "ANALYZE TABLE"
    with store.connect() as connection:
        connection.execute(sa.text(f"{analyze} {table.name}"))  # a generated hex name
        got = connection.execute(sa.select(estimate)).scalar()
    # InnoDB's zero is no estimate (it updates it some time after a write).
    expected = rows if store.dialect.name == "postgresql" else rows or None
    assert (None if got is None else int(float(got))) == expected


@pytest.mark.parametrize("name", ["tenure:run", "tenure:" + "x" * 80])
def test_a_lock_is_held_by_one_connection_at_a_time(store: sa.Engine, name: str) -> None:
    take, release = f.try_lock(name), f.unlock(name)
    if store.dialect.name == "sqlite":
        assert portable(take, "sqlite") is None and portable(release, "sqlite") is None
        return
    with store.connect() as first, store.connect() as second:
        assert first.execute(sa.select(take)).scalar()
        assert not second.execute(sa.select(take)).scalar()
        assert first.execute(sa.select(release)).scalar()
        assert second.execute(sa.select(take)).scalar()
        assert second.execute(sa.select(release)).scalar()
