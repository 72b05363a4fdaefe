"""The policy's notion of "now", explicit and injectable so tests can freeze it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from connectors.times import wall_instant
from retention_rules.durations import Duration
from retention_rules.model import Policy


@dataclass(frozen=True)
class PolicyClock:
    """An instant and the policy's time zone, in which calendar arithmetic is done:
    "6 years before 02:00 on 24 November in Montreal" is 02:00 on 24 November, six
    years earlier, in Montreal, whatever the UTC offsets of the two dates."""

    now: datetime
    zone: ZoneInfo

    @classmethod
    def at(cls, zone: str, now: datetime | None = None) -> PolicyClock:
        """`now` defaults to the system clock; a naive `now` is wall time in `zone`
        (`wall_instant`: a repeated hour is its second occurrence)."""
        tz = ZoneInfo(zone)
        moment = datetime.now(UTC) if now is None else now
        if moment.tzinfo is None:
            moment = wall_instant(moment, tz)
        return cls(moment, tz)

    def local_now(self) -> datetime:
        return self.now.astimezone(self.zone)

    def today(self) -> date:
        return self.local_now().date()

    def cutoff(self, retention: Duration) -> datetime:
        """Records whose clock is strictly before this instant have expired: the wall
        time `retention` before now's, read as `wall_instant` reads any wall time (it
        may fall in an hour a change of offset repeats or skips)."""
        wall = retention.before(self.local_now().replace(tzinfo=None))
        return wall_instant(wall, self.zone)


def clock_problems(policy: Policy, clock: PolicyClock) -> list[str]:
    """What cannot be computed at this instant, one message each: a cut-off before the
    year 1 (``--now 0001-01-02`` with six years of retention), or a date after 9999."""
    problems = []
    try:
        clock.local_now()
    except (OverflowError, ValueError):
        return [f"{clock.now.isoformat()} is out of range in the time zone {clock.zone.key}"]
    for dataset in policy.datasets:
        try:
            clock.cutoff(dataset.retention)
        except (OverflowError, ValueError):
            problems.append(
                f"dataset {dataset.name}: retention {dataset.retention} before "
                f"{clock.today().isoformat()} is before the year 1"
            )
    review = policy.anonymization_register.review_every
    try:
        clock.now + review.as_relativedelta()
    except (OverflowError, ValueError):
        problems.append(f"register.review_every {review} after {clock.today()} is past 9999")
    return problems
