"""Prefect flows, reports and the tenure CLI: the wiring between the other rooms.

Tenure never phones home: ``anonymizers.offline`` makes the offline defaults (Prefect's
server analytics off, tldextract's shipped suffix list) before Prefect or Presidio is
imported anywhere in this package (a user's explicit setting still wins).
"""

# First: the offline defaults must be set before anything that reads them is imported.
from anonymizers import offline  # noqa: F401
