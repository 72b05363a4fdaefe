"""Find the connector for a store URL through the ``tenure.connectors`` entry points.

The entry point's name is the URL's scheme without its driver (``postgresql`` for
``postgresql+psycopg://``), so a separate package adds a store by declaring one. It names
a ``ConnectorFactory``: called as ``factory(name, url, options)`` with one
``ConnectorOptions``, it returns the ``Connector``.
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points

from sqlalchemy import make_url

from connectors.errors import UnknownStoreScheme
from connectors.protocol import Connector, ConnectorFactory, ConnectorOptions
from connectors.urls import mask_url

ENTRY_POINT_GROUP = "tenure.connectors"


def available_schemes() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def open_connector(
    name: str, url: str, options: ConnectorOptions = ConnectorOptions()
) -> Connector:
    """The connector that the factory registered for ``url``'s scheme makes."""
    parsed = make_url(url)
    scheme = parsed.get_backend_name()
    matches = entry_points(group=ENTRY_POINT_GROUP, name=scheme)
    if not matches:
        raise UnknownStoreScheme(
            name,
            mask_url(parsed),
            f"no connector for scheme {scheme!r} (installed: {', '.join(available_schemes())})",
        )
    entry = next(iter(matches))
    factory: ConnectorFactory = entry.load()
    try:
        inspect.signature(factory).bind(name, url, options)
    except (TypeError, ValueError):
        raise UnknownStoreScheme(
            name,
            mask_url(parsed),
            f"the connector registered for {scheme!r} ({entry.value}) is not a "
            "factory(name, url, options); see docs/connectors.md",
        ) from None
    return factory(name, url, options)
