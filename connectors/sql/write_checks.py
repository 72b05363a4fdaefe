"""Whether a run could write to a SQL store, found without changing anything.

A dry run must find what stops the real run before its first write, and must itself
write nothing. So each database is asked in the way that changes nothing there:

- SQLite has no privileges of its own: the file must be writable by this process, its
  folder too (SQLite writes its journal beside the file), and the URL must not open it
  read-only (``mode=ro``, ``immutable=1``).
- PostgreSQL answers from its catalog: ``has_table_privilege`` (``DELETE``, ``INSERT``
  on Tenure's tables), ``has_column_privilege`` (``UPDATE`` of each rewritten column,
  ``SELECT`` of each column the run reads: a ``WHERE`` clause needs it),
  ``CREATE`` on the schema while Tenure's tables are not there yet, and whether the
  session is read-only (a standby, ``default_transaction_read_only``). No statement that
  could fire a trigger is sent: PostgreSQL fires statement triggers on zero rows.
- Any other database (MySQL, MariaDB) runs each change, and a read of the columns the
  run reads, as a statement that matches no row (``WHERE 1 = 0``) in a transaction that
  is then rolled back, so the server applies
  its own privileges and read-only modes; their triggers are per row, so none fires.
  Whether Tenure's own tables could be created is not checked there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Table,
    delete,
    false,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from connectors.protocol import WriteTarget
from connectors.sql.bookkeeping import JOURNAL, MARKS

TableOf = Callable[[str, str | None], Table | None]


def write_problems(
    engine: Engine,
    url: URL,
    targets: Sequence[WriteTarget],
    table_of: TableOf,
    reason: Callable[[SQLAlchemyError], str],
) -> list[str]:
    """One reason per change the store would refuse (see the module docstring)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_problems(url)
    try:
        with engine.connect() as connection:
            if backend == "postgresql":
                return _postgresql_problems(connection, targets, table_of)
            return _rolled_back_problems(connection, targets, table_of, reason)
    except SQLAlchemyError as exc:
        return [f"cannot check write access: {reason(exc)}"]


def _sqlite_problems(url: URL) -> list[str]:
    database = url.database
    if database in (None, "", ":memory:"):
        return []
    query = {k: v for k, v in url.query.items() if isinstance(v, str)}
    if query.get("mode") == "ro" or query.get("immutable") == "1":
        return ["its URL opens it read-only (mode=ro or immutable=1)"]
    path = Path((database or "").removeprefix("file:"))
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return [f"the SQLite file {path} is read-only"]
    folder = path.parent
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return [f"its folder {folder} is read-only (SQLite writes its journal there)"]
    return []


def _postgresql_problems(
    connection: Connection, targets: Sequence[WriteTarget], table_of: TableOf
) -> list[str]:
    if connection.execute(select(func.pg_is_in_recovery())).scalar():
        return ["the server is a read-only standby"]
    read_only = connection.exec_driver_sql("SHOW transaction_read_only").scalar()
    if read_only == "on":
        return ["its sessions are read-only (default_transaction_read_only)"]
    quote = connection.dialect.identifier_preparer.quote

    def qualified(schema: str | None, table: str) -> str:
        return f"{quote(schema)}.{quote(table)}" if schema else quote(table)

    def allowed(check: ColumnElement[Any]) -> bool:
        return bool(connection.execute(select(check)).scalar())

    problems = []
    for target in targets:
        table = table_of(target.table, target.schema)
        if table is None:
            continue  # the schema check reports a missing table
        name = qualified(target.schema, target.table)
        for column in (c for c in target.reads if c in table.c):
            if not allowed(func.has_column_privilege(name, column, "SELECT")):
                problems.append(f"no SELECT privilege on {target.table}.{column}")
        if target.deletes:
            if not allowed(func.has_table_privilege(name, "DELETE")):
                problems.append(f"no DELETE privilege on {target.table}")
            continue
        for column in (c for c in target.columns if c in table.c):
            if not allowed(func.has_column_privilege(name, column, "UPDATE")):
                problems.append(f"no UPDATE privilege on {target.table}.{column}")
    inspector = inspect(connection)
    missing = False
    for books in (JOURNAL, MARKS):
        if not inspector.has_table(books):
            missing = True
        elif not allowed(func.has_table_privilege(qualified(None, books), "INSERT")):
            problems.append(f"no INSERT privilege on {books} (Tenure's bookkeeping)")
    if missing and not allowed(func.has_schema_privilege(func.current_schema(), "CREATE")):
        problems.append("no CREATE privilege on its schema, for Tenure's bookkeeping tables")
    return problems


def _rolled_back_problems(
    connection: Connection,
    targets: Sequence[WriteTarget],
    table_of: TableOf,
    reason: Callable[[SQLAlchemyError], str],
) -> list[str]:
    problems = []
    for target in targets:
        table = table_of(target.table, target.schema)
        if table is None:
            continue  # the schema check reports a missing table
        reads = [table.c[c] for c in target.reads if c in table.c]
        statements: list[tuple[Executable, str]] = []
        if reads:
            statements.append((select(*reads).where(false()), f"read {target.table}"))
        if target.deletes:
            statements.append((delete(table).where(false()), f"delete from {target.table}"))
        else:
            columns = [c for c in target.columns if c in table.c]
            if columns:
                change = update(table).where(false()).values({c: table.c[c] for c in columns})
                statements.append((change, f"update {target.table}"))
        for statement, verb in statements:
            transaction = connection.begin()
            try:
                connection.execute(statement)
            except SQLAlchemyError as exc:
                problems.append(f"cannot {verb}: {reason(exc)}")
            finally:
                transaction.rollback()
    return problems
