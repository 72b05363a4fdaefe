"""Prefect flows, reports and the tenure CLI: the wiring between the other rooms.

Tenure never phones home: Prefect's server telemetry is switched off before Prefect
is imported anywhere in this package (a user's explicit setting still wins).
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
