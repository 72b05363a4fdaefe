"""The backend matrix: the SQL stores a test of backend behaviour runs on.

A test that asks for the ``store_url`` fixture (``tests/conftest.py``) gets a fresh,
empty store on each backend of ``STORE_BACKENDS`` in turn: SQLite, PostgreSQL and
MariaDB. The server cases carry the ``servers`` mark from here, so that
``pytest -m "not servers"`` runs the SQLite case alone. A test whose point is not every
backend names the ones it needs, which may include MariaDB as MySQL sees it::

    @on_backends("postgresql", "mariadb", "mariadb-as-mysql")
    def test_rollups_in_the_database(store_url: str) -> None: ...
"""

from __future__ import annotations

import pytest
from _pytest.mark import ParameterSet

#: Every backend a test may run on, by name (the name is the test id's part).
BACKENDS: dict[str, ParameterSet] = {
    "sqlite": pytest.param("sqlite", id="sqlite"),
    "postgresql": pytest.param(
        "postgresql", marks=(pytest.mark.servers, pytest.mark.postgres), id="postgresql"
    ),
    "mariadb": pytest.param("mariadb", marks=pytest.mark.servers, id="mariadb"),
    # MariaDB without ``DELETE ... RETURNING``, as MySQL is: rows to aggregate are read
    # with a locking SELECT before the DELETE.
    "mariadb-as-mysql": pytest.param(
        "mariadb-as-mysql", marks=pytest.mark.servers, id="mariadb-as-mysql"
    ),
}
#: The backends of ``store_url`` (and of the shared demo stores of ``demo_url``).
STORE_BACKENDS = [BACKENDS[name] for name in ("sqlite", "postgresql", "mariadb")]


def on_backends(*names: str, fixture: str = "store_url") -> pytest.MarkDecorator:
    """Run the decorated test's ``store_url`` (or ``demo_url``, the shared demo stores)
    on these backends instead of the default ones (each keeps its marks)."""
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown:
        raise ValueError(f"unknown backends {unknown}; known: {sorted(BACKENDS)}")
    return pytest.mark.parametrize(fixture, [BACKENDS[name] for name in names], indirect=True)
