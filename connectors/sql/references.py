"""What a database deletes or unlinks along with a row: the foreign keys that refer to it.

A row another row still refers to is never deleted by Tenure. ``ON DELETE CASCADE``
would delete the referring rows with it (a three-week-old child, a child under a legal
hold), ``SET NULL`` would cut their link (a child whose clock is its parent's date would
never expire), and ``NO ACTION`` would fail the chunk or, on SQLite without enforcement,
leave the referring rows pointing at nothing. So a selection that deletes leaves out
every row a foreign key of any table of the store still points at, and counts it like a
hold, named ``referenced by <table>.<columns>``, with the database's rule in its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    Table,
    and_,
    column,
    exists,
    func,
    not_,
    select,
    tuple_,
)
from sqlalchemy.engine import Inspector
from sqlalchemy.engine.interfaces import ReflectedForeignKeyConstraint

from connectors.protocol import ForeignKeyInfo
from connectors.sql.expressions import on_connect

#: How a child table is named: by itself in a store, with its store and schema in a policy.
Child = TypeVar("Child")


def reference_name(child: str, key: ForeignKeyInfo) -> str:
    """How rows kept by this reference are counted: ``referenced by payments.invoice_id``."""
    return f"referenced by {child}.{','.join(key.columns)}"


def reference_reason(child: str, key: ForeignKeyInfo) -> str:
    """Why a row this reference points at is kept, in the report and the audit log."""
    columns = ", ".join(f"{child}.{c}" for c in key.columns)
    rule = (key.on_delete or "NO ACTION").upper()
    if key.declared:  # the store would do nothing: the child would point at nothing
        return (
            f"a {child} row that is not being deleted still refers to it ({columns}, a "
            f"relation declared in the policy): deleting it would leave those {child} rows "
            "pointing at nothing"
        )
    if rule == "CASCADE":
        effect = f"deleting it would delete those {child} rows too"
    elif rule in ("SET NULL", "SET DEFAULT"):
        effect = f"deleting it would {rule.lower()} {columns} and cut their link"
    else:
        effect = f"deleting it would leave those {child} rows pointing at nothing"
    return (
        f"a {child} row that is not being deleted still refers to it ({columns}, "
        f"ON DELETE {rule}): {effect}"
    )


def store_foreign_keys(
    inspector: Inspector, connection: Connection, schema: str | None
) -> dict[str, tuple[ForeignKeyInfo, ...]]:
    """Every table's foreign keys in ``schema``, read in one pass, with their ON DELETE
    rule."""
    found: dict[str, tuple[ForeignKeyInfo, ...]] = {}
    for (_, table), keys in inspector.get_multi_foreign_keys(schema=schema).items():
        found[table] = tuple(
            _foreign_key(key) for key in keys if key.get("referred_schema") in (None, schema)
        )
    if connection.dialect.name == "sqlite":
        found = {name: _sqlite_rules(connection, name, keys) for name, keys in found.items()}
    return found


#: Catalogue schemas: they hold no rows of the store's.
_SYSTEM_SCHEMAS = frozenset({"information_schema", "mysql", "performance_schema", "sys"})


def other_schema_children(
    inspector: Inspector, schema: str | None
) -> list[tuple[str, str, ForeignKeyInfo]]:
    """``(schema, child table, key)`` for every foreign key of a table in *another*
    schema of the store that points into ``schema``: a cascade defined there deletes rows
    here as surely as one beside the table."""
    default = inspector.default_schema_name
    home = schema or default
    found = []
    for other in inspector.get_schema_names():
        if other == home or other in _SYSTEM_SCHEMAS or other.startswith("pg_"):
            continue
        for (_, child), keys in sorted(inspector.get_multi_foreign_keys(schema=other).items()):
            found += [
                (other, child, _foreign_key(key))
                for key in keys
                # PostgreSQL leaves out a referred schema that is on the search path.
                if (key.get("referred_schema") or default) == home
            ]
    return found


def _foreign_key(key: ReflectedForeignKeyConstraint) -> ForeignKeyInfo:
    return ForeignKeyInfo(
        columns=tuple(key["constrained_columns"]),
        referred_table=key["referred_table"],
        referred_columns=tuple(key["referred_columns"]),
        on_delete=_rule(key.get("options", {}).get("ondelete")),
    )


def _rule(text: str | None) -> str | None:
    return None if text is None else " ".join(text.upper().split())


def _sqlite_rules(
    connection: Connection, table: str, keys: tuple[ForeignKeyInfo, ...]
) -> tuple[ForeignKeyInfo, ...]:
    """SQLAlchemy reads SQLite's ON DELETE rule only from table constraints; a rule
    written on the column (``REFERENCES p(id) ON DELETE CASCADE``) is read here from
    ``pragma_foreign_key_list``, which knows both."""
    pragma = func.pragma_foreign_key_list(table).table_valued(
        column("id"), column("from"), column("on_delete")
    )
    rules: dict[int, dict[str, Any]] = {}
    for key_id, local, rule in connection.execute(select(pragma)):
        entry = rules.setdefault(int(key_id), {"columns": set(), "rule": rule})
        entry["columns"].add(local)
    by_columns = {frozenset(e["columns"]): _rule(e["rule"]) for e in rules.values()}
    return tuple(
        ForeignKeyInfo(
            k.columns,
            k.referred_table,
            k.referred_columns,
            by_columns.get(frozenset(k.columns), k.on_delete),
        )
        for k in keys
    )


def enforce_foreign_keys(engine: Engine) -> None:
    """SQLite checks foreign keys (and runs their ON DELETE rules) only on connections
    that ask: Tenure's do, so a delete that would orphan a row fails instead."""
    if engine.dialect.name == "sqlite":
        on_connect(engine, "PRAGMA foreign_keys = ON")


def with_declared(
    keys: Mapping[Child, Sequence[ForeignKeyInfo]], declared: Iterable[tuple[Child, ForeignKeyInfo]]
) -> dict[Child, tuple[ForeignKeyInfo, ...]]:
    """The store's foreign keys and the references the policy declares, as one mapping
    of child table to keys: a declared reference the store also has (the same columns
    to the same table's same columns) is the store's, and a repeated one counts once."""
    merged = {child: tuple(child_keys) for child, child_keys in keys.items()}
    for child, key in declared:
        same = (key.columns, key.referred_table, key.referred_columns)
        known = merged.get(child, ())
        if all((k.columns, k.referred_table, k.referred_columns) != same for k in known):
            merged[child] = (*known, key)
    return merged


def referring_to(
    table: str, keys: Mapping[str, Sequence[ForeignKeyInfo]]
) -> list[tuple[str, ForeignKeyInfo]]:
    """Each (child table, foreign key) of the store that points at ``table``, in name
    order, the table's own self-references included."""
    return [
        (child, key)
        for child, child_keys in sorted(keys.items())
        for key in child_keys
        if key.referred_table == table
    ]


def still_referred(
    parent: FromClause,
    child: Table,
    key: ForeignKeyInfo,
    departs: Callable[[Table], ColumnElement[bool]] | None,
    *,
    few: bool = False,
) -> ColumnElement[bool]:
    """True for a ``parent`` row some ``child`` row refers to by ``key``, leaving out the
    child rows ``departs`` selects (those a run deletes first). A NULL in a referring
    column refers to nothing.

    The referring keys are one uncorrelated subquery (``key IN (SELECT ...)``), which the
    database computes once and hashes, rather than a search of the child table for each
    parent row: foreign-key columns often have no index. For ``few`` parent rows (one
    person's), the child table is searched for each (``EXISTS``), so that an index on
    the referring columns is used instead of reading the whole child table."""
    referrer: FromClause = child if departs is not None else child.alias()
    referring = [referrer.c[c] for c in key.columns]
    referred = [parent.c[r] for r in key.referred_columns]
    if few:
        link = [c == r for c, r in zip(referring, referred, strict=True)]
        leaving = [] if departs is None else [not_(departs(child))]
        return exists().where(*link, *leaving).correlate(parent)
    rows = select(*referring).where(*(c.is_not(None) for c in referring))
    if departs is not None:
        rows = rows.where(not_(departs(child)))
    target = referred[0] if len(referred) == 1 else tuple_(*referred)
    return and_(*(c.is_not(None) for c in referred), target.in_(rows.correlate(None)))
