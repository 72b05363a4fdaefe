"""The cut-off the SQL connector tests count rows around, on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

MONTREAL = ZoneInfo("America/Montreal")
# 02:00 in Montreal on a winter day: 07:00 UTC.
CUTOFF = datetime(2020, 11, 24, 2, 0, tzinfo=MONTREAL)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
