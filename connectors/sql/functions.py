"""SQL functions Tenure defines once and each dialect renders its own way.

An operator or a helper builds one of these constructs to say *what* it computes (the
smaller of two numbers, a character repeated, the masked text, a postal code's forward
sortation area, a date truncated to its month, an address's network, a table's row
estimate, a lock in the server); a ``@compiles`` rendering per dialect says *how*
(SQLAlchemy's custom SQL constructs, ``sqlalchemy.ext.compiler``). A dialect with no
rendering refuses to compile the construct instead of guessing: `portable` tells
beforehand whether an expression renders on a dialect, and callers then take their other
path (pandas, an exact count, no lock).

Values go in as bound parameters; constructs with settings that change the SQL's shape
(a level, a side, a table) keep them in their cache key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Final, TypeVar

from sqlalchemy import (
    ColumnElement,
    Date,
    DateTime,
    Integer,
    String,
    Table,
    bindparam,
    case,
    cast,
    collate,
    extract,
    func,
    literal,
    null,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import expression, visitors
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal, _TraverseInternalsType
from sqlalchemy.types import Float

from connectors.sql.expressions import MYSQL_DIALECTS

#: A count of characters in SQL must fit a 32-bit integer; no text either database
#: stores is longer, so capping a count to this changes nothing.
LONGEST_TEXT: Final = 2**31 - 1
#: A Canadian postal code's forward sortation area after leading ASCII whitespace, in
#: Python's ``re`` and PostgreSQL alike: ASCII whitespace and digits only, not Python's
#: Unicode ``\s`` and ``\d`` (PostgreSQL's classes depend on its locale and SQLite has
#: no regular expressions), so all three agree.
FSA_SPACE: Final = " \t\n\r\f\v"
FSA_PATTERN: Final = r"^[ \t\n\r\f\v]*([A-Za-z][0-9][A-Za-z])"
_FSA_GLOB: Final = "[A-Za-z][0-9][A-Za-z]"

_T = TypeVar("_T")
_Element = TypeVar("_Element", bound=ColumnElement[Any])
_Rendering = Callable[..., str]


class PortableFunction(FunctionElement[_T]):
    """A function with one rendering per dialect that has it (`renders`)."""

    inherit_cache = True
    #: The dialects with a rendering, filled in by `renders`.
    dialects: ClassVar[frozenset[str]] = frozenset()
    name: ClassVar[str] = "portable_function"

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.name = cls.__name__

    @classmethod
    def has_rendering(cls, dialect: str) -> bool:
        """Whether ``dialect`` renders this function at all."""
        return dialect in cls.dialects

    def renders_on(self, dialect: str) -> bool:
        """Whether ``dialect`` renders this call; a function whose rendering needs more
        of its arguments (a column type) says so by overriding this."""
        return self.has_rendering(dialect)

    def argument(self, index: int) -> ColumnElement[Any]:
        argument: ColumnElement[Any] = self.clauses.clauses[index]
        return argument


@compiles(PortableFunction)
def _no_rendering(element: PortableFunction[Any], compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"{element.name}() has no rendering for dialect {compiler.dialect.name!r}")


def _cache_key_with(*settings: tuple[str, InternalTraversal]) -> _TraverseInternalsType:
    """A function's cache-key traversal with ``settings``: attributes that change its SQL."""
    return [*FunctionElement._traverse_internals, *settings]


def renders(cls: type[PortableFunction[Any]], *dialects: str) -> Callable[[_Rendering], _Rendering]:
    """Decorator: ``cls``'s rendering on each of ``dialects`` (``@compiles`` for each)."""

    def register(rendering: _Rendering) -> _Rendering:
        for dialect in dialects:
            compiles(cls, dialect)(rendering)
        cls.dialects = cls.dialects | frozenset(dialects)
        return rendering

    return register


def portable(clause: _Element, dialect: str) -> _Element | None:
    """``clause`` if every portable function in it renders on ``dialect``, else None."""
    for element in visitors.iterate(clause):
        if isinstance(element, PortableFunction) and not element.renders_on(dialect):
            return None
    return clause


class least(PortableFunction[Any]):
    """The smaller of two non-NULL values (SQLite's two-argument ``min``)."""

    inherit_cache = True

    def __init__(self, first: Any, second: Any) -> None:
        super().__init__(first, second)
        self.type = self.argument(0).type


@renders(least, "postgresql", *MYSQL_DIALECTS)
def _least(element: least, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(func.least(*element.clauses), **kw)


@renders(least, "sqlite")
def _least_sqlite(element: least, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(func.min(*element.clauses), **kw)


class repeat_char(PortableFunction[str]):
    """``char`` (a one-character text) repeated ``times`` times; none for zero or less."""

    type = String()
    inherit_cache = True

    def __init__(self, char: Any, times: Any) -> None:
        super().__init__(char, times)


@renders(repeat_char, "postgresql", *MYSQL_DIALECTS)
def _repeat(element: repeat_char, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(func.repeat(*element.clauses), **kw)


@renders(repeat_char, "sqlite")
def _repeat_sqlite(element: repeat_char, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite has no repeat(), and printf('%.*c', 0, c) still prints one c: instead, n zero
    # bytes in hex are n "00" pairs, each replaced by the character.
    char, times = element.argument(0), element.argument(1)
    spelled = func.replace(func.hex(func.zeroblob(times)), literal("00"), char)
    return compiler.process(spelled, **kw)


class masked_text(PortableFunction[str]):
    """Text with ``count`` characters (all when None) replaced by ``char``, from the start
    or, with ``from_end``, from the end; zero characters leave it as it is.

    Rendered on PostgreSQL and SQLite (``length`` counts characters there); on SQLite,
    exact for text without NUL characters: its ``length`` and ``substr`` stop at the
    first one.
    """

    type = String()
    inherit_cache = True
    _traverse_internals = _cache_key_with(
        ("count", InternalTraversal.dp_plain_obj),
        ("from_end", InternalTraversal.dp_boolean),
    )

    def __init__(
        self, text: ColumnElement[Any], char: str, count: int | None, from_end: bool = False
    ) -> None:
        self.count = None if count is None else min(count, LONGEST_TEXT)
        self.from_end = from_end
        arguments = [text]
        if self.count != 0:
            arguments.append(literal(char, String()))
        if self.count:
            arguments.append(literal(self.count, Integer()))
        super().__init__(*arguments)


@renders(masked_text, "postgresql", "sqlite")
def _masked(element: masked_text, compiler: SQLCompiler, **kw: Any) -> str:
    text = element.argument(0)
    if element.count == 0:
        return compiler.process(text, **kw)
    char, length = element.argument(1), func.length(text)
    if element.count is None:
        return compiler.process(repeat_char(char, length), **kw)
    masked = least(length, element.argument(2))
    mask = repeat_char(char, masked)
    if element.from_end:
        return compiler.process(func.substr(text, 1, length - masked).concat(mask), **kw)
    return compiler.process(mask.concat(func.substr(text, masked + 1)), **kw)


class forward_sortation_area(PortableFunction[str]):
    """A Canadian postal code's first three characters, upper case, after leading ASCII
    whitespace (`FSA_PATTERN`); NULL when they are not letter, digit, letter."""

    type = String()
    inherit_cache = True

    def __init__(self, text: ColumnElement[Any]) -> None:
        super().__init__(text)


@renders(forward_sortation_area, "postgresql")
def _fsa_postgresql(element: forward_sortation_area, compiler: SQLCompiler, **kw: Any) -> str:
    # The "C" collation keeps upper() to ASCII whatever the database's locale.
    text = collate(element.argument(0), "C")
    return compiler.process(func.upper(func.substring(text, literal(FSA_PATTERN))), **kw)


@renders(forward_sortation_area, "sqlite")
def _fsa_sqlite(element: forward_sortation_area, compiler: SQLCompiler, **kw: Any) -> str:
    area = func.substr(func.ltrim(element.argument(0), literal(FSA_SPACE)), 1, 3)
    matches = area.op("GLOB")(literal(_FSA_GLOB))
    return compiler.process(case((matches, func.upper(area)), else_=null()), **kw)


class network_address(PortableFunction[Any]):
    """The network address of an IP address column's value, with ``ipv4_bits`` or
    ``ipv6_bits`` of prefix, as the column's own type. PostgreSQL ``inet`` and ``cidr``
    columns only: a text that is not an address would fail the cast."""

    inherit_cache = True

    def __init__(self, address: ColumnElement[Any], ipv4_bits: int, ipv6_bits: int) -> None:
        super().__init__(address, literal(ipv4_bits, Integer()), literal(ipv6_bits, Integer()))
        self.type = address.type

    def renders_on(self, dialect: str) -> bool:
        kind = self.argument(0).type
        return super().renders_on(dialect) and isinstance(kind, postgresql.INET | postgresql.CIDR)


@renders(network_address, "postgresql")
def _network_postgresql(element: network_address, compiler: SQLCompiler, **kw: Any) -> str:
    address, ipv4_bits, ipv6_bits = (element.argument(i) for i in range(3))
    prefix = case((func.family(address) == 4, ipv4_bits), else_=ipv6_bits)
    network = func.host(func.network(func.set_masklen(address, prefix)))
    return compiler.process(cast(network, address.type), **kw)


#: The levels `truncated_date` truncates to.
DATE_LEVELS: Final = ("day", "month", "year", "decade")


class truncated_date(PortableFunction[Any]):
    """A date or naive timestamp column's value truncated to the first instant of its
    ``level`` (`DATE_LEVELS`), of the column's own type. On SQLite, for columns stored
    in SQLAlchemy's default text format, which the rendering writes."""

    inherit_cache = True
    _traverse_internals = _cache_key_with(
        ("level", InternalTraversal.dp_string),
    )

    def __init__(self, value: ColumnElement[Any], level: str) -> None:
        super().__init__(value)
        self.level = level
        self.type = value.type

    def renders_on(self, dialect: str) -> bool:
        if dialect == "sqlite" and not _sqlite_stores_iso(self.argument(0)):
            return False
        return super().renders_on(dialect)


@renders(truncated_date, "postgresql")
def _truncated_postgresql(element: truncated_date, compiler: SQLCompiler, **kw: Any) -> str:
    value = element.argument(0)
    if element.level == "decade":
        # make_date fails for years 1 to 9, as pandas does: there is no year 0.
        year = cast(extract("year", value), Integer)
        start = func.make_date(year - year % 10, 1, 1)
    else:
        # A date would reach date_trunc as a timestamp with time zone, in the session's zone.
        start = func.date_trunc(element.level, cast(value, DateTime()))
    return compiler.process(cast(start, value.type), **kw)


_SQLITE_FORMATS = {"day": "%Y-%m-%d", "month": "%Y-%m-01", "year": "%Y-01-01"}
_SQLITE_MIDNIGHT = " 00:00:00.000000"


@renders(truncated_date, "sqlite")
def _truncated_sqlite(element: truncated_date, compiler: SQLCompiler, **kw: Any) -> str:
    """Text in SQLAlchemy's storage format, which it reads back and compares as text.

    Exact for values SQLAlchemy stored; the decade of years 1 to 9 gives year 0000 where
    pandas fails (SQLite cannot raise an error from an expression).
    """
    value = element.argument(0)
    time = _SQLITE_MIDNIGHT if isinstance(value.type, DateTime) else ""
    if element.level == "decade":
        century_and_decade = func.substr(func.strftime("%Y", value), 1, 3)
        start = century_and_decade.concat(literal("0-01-01" + time))
    else:
        start = func.strftime(_SQLITE_FORMATS[element.level] + time, value)
    return compiler.process(start, **kw)


def _sqlite_stores_iso(value: ColumnElement[Any]) -> bool:
    """Whether the column's type stores SQLAlchemy's default SQLite text format, which
    `_truncated_sqlite` writes (a type may declare another)."""
    if not isinstance(value.type, Date | DateTime):
        return False
    dialect = sqlite.dialect()
    sample = datetime(2001, 2, 3, 4, 5, 6, 7)
    expected = "2001-02-03" + (" 04:05:06.000007" if isinstance(value.type, DateTime) else "")
    store = value.type.dialect_impl(dialect).bind_processor(dialect)
    return store is not None and store(sample) == expected


_PG_CLASS: Final = expression.table(
    "pg_class", expression.column("oid"), expression.column("reltuples"), schema="pg_catalog"
)
_MYSQL_TABLES: Final = expression.table(
    "TABLES",  # its column names, like MySQL's column names everywhere, ignore case
    expression.column("table_schema"),
    expression.column("table_name"),
    expression.column("table_rows"),
    schema="information_schema",
)


class estimated_rows(PortableFunction[float]):
    """The store's own estimate of a table's rows, NULL when it has none: PostgreSQL's
    planner estimate (``pg_class.reltuples``, negative before the first ``ANALYZE``),
    the storage engine's on MySQL and MariaDB (``information_schema.TABLES``; InnoDB
    updates it some time after the rows are written, so zero counts as none)."""

    type = Float()
    inherit_cache = True
    _traverse_internals = _cache_key_with(
        ("table", InternalTraversal.dp_clauseelement),
    )

    def __init__(self, table: Table) -> None:
        super().__init__()
        self.table = table


@renders(estimated_rows, "postgresql")
def _estimate_postgresql(element: estimated_rows, compiler: SQLCompiler, **kw: Any) -> str:
    qualified = compiler.preparer.format_table(element.table)
    tuples = _PG_CLASS.c.reltuples
    estimate = select(case((tuples >= 0, tuples))).where(
        _PG_CLASS.c.oid == func.to_regclass(bindparam("qualified", qualified))
    )
    return compiler.process(estimate.scalar_subquery(), **kw)


@renders(estimated_rows, *MYSQL_DIALECTS)
def _estimate_mysql(element: estimated_rows, compiler: SQLCompiler, **kw: Any) -> str:
    tables, table = _MYSQL_TABLES.c, element.table
    schema = func.database() if table.schema is None else bindparam("schema", table.schema)
    estimate = select(func.nullif(tables.table_rows, 0)).where(
        tables.table_schema == schema, tables.table_name == table.name
    )
    return compiler.process(estimate.scalar_subquery(), **kw)


_PG_STATS: Final = expression.table(
    "pg_stats",
    expression.column("schemaname"),
    expression.column("tablename"),
    expression.column("attname"),
    expression.column("correlation"),
    schema="pg_catalog",
)


class order_correlation(PortableFunction[float]):
    """How closely a column's values follow the rows' physical order, from -1 to 1
    (PostgreSQL's ``pg_stats.correlation``, NULL before the first ``ANALYZE``). Stores
    that keep rows in primary-key order (InnoDB, SQLite's rowid tables) have no rendering:
    their key is their physical order."""

    type = Float()
    inherit_cache = True
    _traverse_internals = _cache_key_with(
        ("table", InternalTraversal.dp_clauseelement),
        ("column", InternalTraversal.dp_string),
    )

    def __init__(self, table: Table, column: str) -> None:
        super().__init__()
        self.table = table
        self.column = column


@renders(order_correlation, "postgresql")
def _correlation_postgresql(element: order_correlation, compiler: SQLCompiler, **kw: Any) -> str:
    stats, table = _PG_STATS.c, element.table
    schema = func.current_schema() if table.schema is None else bindparam("schema", table.schema)
    found = select(func.max(stats.correlation)).where(
        stats.schemaname == schema,
        stats.tablename == bindparam("table", table.name),
        stats.attname == bindparam("column", element.column),
    )
    return compiler.process(found.scalar_subquery(), **kw)


#: MySQL's longest lock name (``GET_LOCK``).
_LOCK_NAME_LIMIT: Final = 64


class _NamedLock(PortableFunction[Any]):
    """A lock in the database server named ``lock``, held by one connection and released
    by the server if that connection dies: PostgreSQL's advisory lock (keyed by the
    name's SHA-256), MySQL's and MariaDB's named lock (a name longer than theirs by its
    SHA-256)."""

    inherit_cache = True
    _traverse_internals = _cache_key_with(("lock", InternalTraversal.dp_string))

    def __init__(self, lock: str) -> None:
        super().__init__()
        self.lock = lock

    def digest(self) -> bytes:
        return hashlib.sha256(self.lock.encode()).digest()

    def advisory_key(self) -> int:
        """PostgreSQL's key for the lock: a signed 64-bit integer."""
        return int.from_bytes(self.digest()[:8], "big", signed=True)

    def mysql_name(self) -> str:
        if len(self.lock) <= _LOCK_NAME_LIMIT:
            return self.lock
        return f"tenure:{self.digest().hex()[:57]}"


class try_lock(_NamedLock):
    """Take the lock without waiting: true when this connection now holds it."""

    inherit_cache = True


class unlock(_NamedLock):
    """Release the lock this connection holds."""

    inherit_cache = True


@renders(try_lock, "postgresql")
def _try_lock_postgresql(element: try_lock, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(func.pg_try_advisory_lock(element.advisory_key()), **kw)


@renders(unlock, "postgresql")
def _unlock_postgresql(element: unlock, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(func.pg_advisory_unlock(element.advisory_key()), **kw)


@renders(try_lock, *MYSQL_DIALECTS)
def _try_lock_mysql(element: try_lock, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(func.get_lock(element.mysql_name(), 0), **kw)


@renders(unlock, *MYSQL_DIALECTS)
def _unlock_mysql(element: unlock, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(func.release_lock(element.mysql_name()), **kw)
