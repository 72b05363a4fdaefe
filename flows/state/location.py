"""Where the state database lives: one rule for every command, printed in every report.

A URL given (``--state``, ``TENURE_STATE_URL``, a Prefect Secret block) wins; otherwise a
SQLite file under the user's state folder named after the policy. Problems (a relative
path, missing privileges) are found here before anything is written.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    create_engine,
    func,
    inspect,
    make_url,
    select,
)
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from connectors.records.connector import user_state_home
from connectors.urls import mask_url
from flows.state.tables import (
    StateError,
    StateMissing,
    existing_state,
    locks,
    metadata,
    open_state,
    runs,
    scan_cache,
    unreachable,
)
from flows.stores import sqlite_store_dir
from retention_rules.loader import LoadedPolicy

#: Where flows find the state database's URL by default: an environment variable.
STATE_VARIABLE = "TENURE_STATE_URL"
_VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_BLOCK_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def state_url_from(reference: str) -> str | None:
    """The state URL a flow parameter refers to, never the URL itself (Prefect stores
    and shows parameters): the name of an environment variable (``TENURE_STATE_URL``;
    unset: None, the default location), or of a Prefect Secret block
    (``tenure-state-url``, which must exist)."""
    if _VARIABLE_NAME.fullmatch(reference):
        return absolute_by_reference(os.environ.get(reference) or None, reference)
    if _BLOCK_NAME.fullmatch(reference):
        from anonymizers.secrets import prefect_secret

        value = prefect_secret(reference)
        if not value:
            raise StateError(f"no Prefect Secret block {reference!r} holding the state URL")
        return absolute_by_reference(value, f"the Prefect Secret block {reference!r}")
    raise StateError(
        "the state database is named by an environment variable (e.g. TENURE_STATE_URL) "
        "or a Prefect Secret block, never by its URL: Prefect would store the URL"
    )


@dataclass(frozen=True)
class StateLocation:
    """Where a policy's state database is, and what said so (``state_location``)."""

    url: str = field(repr=False)
    """May hold a password: shown only through ``shown``."""
    source: str
    """``--state``, ``TENURE_STATE_URL``, ``policy state:`` or ``default``."""

    @property
    def shown(self) -> str:
        return mask_url(self.url)

    def __str__(self) -> str:
        return f"{self.shown} ({self.source})"

    @property
    def sqlite_path(self) -> Path | None:
        """The file, when the state database is a SQLite file."""
        try:
            parsed = make_url(self.url)
        except (ArgumentError, ValueError):
            return None
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return None
        return Path(parsed.database or "")

    def open(self, *, create: bool = False) -> Engine:
        """``open_state`` (creating the default location's folder) or ``existing_state``."""
        path = self.sqlite_path
        if create and path is not None and self.source == "default":
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
        return open_state(self.url) if create else existing_state(self.url)


def state_location(
    loaded: LoadedPolicy, given: str | None = None, environ: Mapping[str, str] | None = None
) -> StateLocation:
    """The one rule for where a policy's state database is: ``given`` (``--state``, or
    the ``TENURE_STATE_URL`` it defaults to), else the policy's ``state:``, else
    ``default_state_url``. A path (or a ``sqlite:///`` URL) names a SQLite file, relative
    to the working directory when typed on the command line, to the policy file's folder
    for ``state:``, and refused when relative in ``TENURE_STATE_URL``
    (``absolute_by_reference``). Raises ``StateError`` (one line, the URL masked) for a
    value that names no database."""
    environ = os.environ if environ is None else environ
    if given:
        source = STATE_VARIABLE if given == environ.get(STATE_VARIABLE) else "--state"
        if source == STATE_VARIABLE:
            absolute_by_reference(given, STATE_VARIABLE)
        return StateLocation(state_url(given, Path.cwd()), source)
    if loaded.policy.state:
        folder = loaded.path.absolute().parent
        return StateLocation(state_url(loaded.policy.state, folder), "policy state:")
    return StateLocation(default_state_url(loaded), "default")


def state_url(value: str, base: Path) -> str:
    """A state database given as a SQLAlchemy URL or as a path: a path is a SQLite file,
    made absolute against ``base``."""
    value = value.strip()
    if "://" not in value:
        if not value:
            raise StateError("empty: give a SQLAlchemy URL or a path")
        return f"sqlite:///{os.path.abspath(base / Path(value).expanduser())}"
    try:
        parsed = make_url(value)
        parsed.get_dialect()
    except (ArgumentError, ValueError):
        raise StateError(f"not a SQLAlchemy URL, nor a path: {mask_url(value)}") from None
    except ImportError:
        raise StateError(f"no driver for the state database at {mask_url(value)}") from None
    relative = relative_sqlite_file(value)
    if relative is not None:  # sqlite:///state.sqlite: a path like any other
        absolute = os.path.abspath(base / relative)
        return parsed.set(database=absolute).render_as_string(hide_password=False)
    return value


def relative_sqlite_file(value: str) -> str | None:
    """The relative path by which a state database value (a path or a SQLAlchemy URL)
    names a SQLite file; None for an absolute one, an in-memory one or a server."""
    value = value.strip()
    if "://" not in value:
        return value if value and not os.path.isabs(os.path.expanduser(value)) else None
    try:
        parsed = make_url(value)
    except (ArgumentError, ValueError):
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:") or os.path.isabs(database):
        return None
    return database


def absolute_by_reference(value: str | None, where: str) -> str | None:
    """A state database value set once for every process that reads it (an environment
    variable, a Prefect Secret block), refused in one line when it names a SQLite file
    by a relative path. Relative to what? Each process has its own working directory,
    and a Prefect worker starts each flow run in a new temporary one: each run would
    get a new state database (audit log, lock, ledger). A path typed on the command line
    is made absolute against the working directory instead, as the user who typed it
    means; a relative ``state:`` is the policy file's folder."""
    if value is not None and relative_sqlite_file(value) is not None:
        raise StateError(
            f"{where} names the state database by a relative path: give an absolute path "
            "or a URL (a relative one names another file in each folder a run starts "
            "from, and a Prefect worker starts each flow run in a new one)"
        )
    return value


def default_state_url(loaded: LoadedPolicy) -> str:
    """Where the state database is unless told: beside the policy's first SQLite store
    (the demo's); else in the per-user folder (``$XDG_STATE_HOME/tenure``), named by the
    policy and a digest of its file's absolute path. Never the working directory: runs
    of one policy from two folders, or by a Prefect worker, share one lock and one
    audit log."""
    beside = sqlite_store_dir(loaded.policy)
    if beside is not None:
        return f"sqlite:///{os.path.abspath(beside / 'tenure-state.sqlite')}"
    digest = hashlib.sha256(str(loaded.path.resolve()).encode()).hexdigest()[:16]
    return f"sqlite:///{user_state_home() / f'{loaded.policy.name}-{digest}.sqlite'}"


def state_problem(location: StateLocation) -> str | None:
    """Why a run could not keep its books in the state database, found without creating
    or changing anything; None when it can. A SQLite file (or the folder it would be
    created in) must be writable; a server must answer (a database without Tenure's
    tables is fine: the first run creates them), and PostgreSQL must grant what the run
    needs (``_postgresql_problem``)."""
    shown = location.shown
    path = location.sqlite_path
    if path is not None and not path.exists():
        folder = path.parent
        if not folder.is_dir() and location.source != "default":
            return f"no folder {folder} for the state database {shown}"
        while not folder.is_dir() and folder != folder.parent:
            folder = folder.parent  # the default location's folder is created
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"cannot create the state database {shown}: {folder} is read-only"
        return None
    if path is not None:
        if not os.access(path, os.R_OK | os.W_OK):
            return f"the state database {shown} is read-only"
        if not os.access(path.parent, os.W_OK | os.X_OK):
            return (
                f"the folder of the state database {shown} is read-only "
                "(SQLite writes its journal there)"
            )
    try:
        existing_state(location.url).dispose()
    except StateMissing:
        pass  # the first run creates Tenure's tables, if it may
    except StateError as exc:
        return str(exc)
    if path is not None:
        return None
    return _postgresql_problem(location.url)


#: What a run does to each of Tenure's tables besides reading and adding rows.
_CHANGED = {runs.name: "UPDATE", locks.name: "DELETE", scan_cache.name: "DELETE"}


def _postgresql_problem(url: str) -> str | None:
    """What a PostgreSQL state database would refuse a run, from its catalog (nothing
    is sent that writes): CREATE on the schema while a Tenure table is missing, SELECT
    and INSERT on each present one, and the UPDATE or DELETE the ledger, the lock and
    the scan cache make. Other servers are not asked (their first write tells)."""
    engine = create_engine(url)
    try:
        if engine.dialect.name != "postgresql":
            return None
        shown = mask_url(url)
        with engine.connect() as connection:

            def allowed(check: Any) -> bool:
                return bool(connection.execute(select(check)).scalar())

            inspector = inspect(connection)
            present = [t.name for t in metadata.sorted_tables if inspector.has_table(t.name)]
            missing = len(present) < len(metadata.sorted_tables)
            if missing and not allowed(func.has_schema_privilege(func.current_schema(), "CREATE")):
                return (
                    f"the state database {shown}: no CREATE privilege on its schema, for "
                    "Tenure's tables (grant it, or create them once as a role that has it)"
                )
            refused = [
                f"{privilege} on {table}"
                for table in present
                for privilege in ("SELECT", "INSERT", *_CHANGED.get(table, "").split())
                if not allowed(func.has_table_privilege(table, privilege))
            ]
        if refused:
            return f"the state database {shown}: no {', '.join(refused)}"
        return None
    except SQLAlchemyError as exc:
        return str(unreachable(exc, url))
    finally:
        engine.dispose()
