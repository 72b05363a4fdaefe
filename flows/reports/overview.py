"""What the HTML report (``flows/reports/html.py``) shows, gathered once: counts and the
names of datasets, columns, purposes, holds and rollups, never a personal value.

- ``activity``: per purpose and month, the rows deleted, anonymized and aggregated (the
  ledger's committed chunks, summed in the state database) and the rows held (the audit
  entries' counts);
- ``forecast``: per dataset, the rows reaching their cut-off in each of the next twelve
  months: the planner run at each month's end, counted in the stores as ``tenure plan
  --now`` counts them;
- ``coverage_view``: the coverage gate's verdict on the last scan (the scan cache);
- ``holds_view``, the policy's legal holds with the rows each keeps now;
- ``released``: each rollup's release and its disclosure;
- ``audit_view``: the audit chain's head and whether it verifies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from sqlalchemy import Engine, func, select

from anonymizers.detection.entities import DIRECT_IDENTIFIERS
from anonymizers.secrets import MissingSecret
from connectors.errors import StoreError
from connectors.protocol import Connector
from flows import audit
from flows.releases import release_tables
from flows.reports.risk import RiskLine, risk_lines
from flows.run.types import first_line
from flows.scan_cache import StateScanCache
from flows.state.ledger import Ledger
from flows.state.tables import audit as audit_table
from retention_rules.clock import PolicyClock, clock_problems
from retention_rules.coverage import ColumnEvidence, check_coverage
from retention_rules.model import Policy
from retention_rules.planner import PlanRow, evaluate, plan_rules, table_references

_log = logging.getLogger(__name__)

#: The counts of the activity section, in the order the chart stacks them.
KINDS = ("deleted", "anonymized", "aggregated", "held")
#: How many months ahead the forecast looks.
MONTHS_AHEAD = 12
#: A chunk label holding this marks a request's own writes (``flows.rights.erasure``).
_REQUEST_WRITE = "~"


@dataclass(frozen=True)
class MonthActivity:
    """One purpose in one month (``YYYY-MM`` in the policy's time zone)."""

    purpose: str
    month: str
    deleted: int = 0
    anonymized: int = 0
    aggregated: int = 0
    held: int = 0

    def count(self, kind: str) -> int:
        return int(getattr(self, kind))


@dataclass(frozen=True)
class Activity:
    months: list[MonthActivity]
    request_writes: int = 0
    """Rows a person's request rewrote (a correction, a withdrawal's date): no
    retention action, left out of the counts and said so."""
    unbound: tuple[str, ...] = ()
    """Datasets of the ledger the policy no longer binds (their purpose is unknown)."""


def activity(state: Engine, policy: Policy) -> Activity:
    """Per purpose and month of the run's start: the rows each real run committed
    (``Ledger.committed_runs``) by the action of their chunks, and the most rows any run
    of the month found expired but kept by a legal hold (its audit entries), summed over
    the purpose's datasets. Held rows are a count at a run, not a flow: a row held all
    month is counted once in it, and again in every month it stays held."""
    zone = ZoneInfo(policy.timezone)
    ledger = Ledger(state)
    started = ledger.real_runs()
    purposes = {d.name: d.purpose for d in policy.datasets}
    counters = audit.ACTION_COUNTERS
    totals: dict[tuple[str, str], dict[str, int]] = {}
    request_writes = 0
    unbound: set[str] = set()

    def month_of(run_id: str) -> str | None:
        moment = started.get(run_id)
        return None if moment is None else moment.astimezone(zone).strftime("%Y-%m")

    for run_id, committed in ledger.committed_runs().items():
        month = month_of(run_id)
        if month is None:
            continue  # a dry run records no chunk; a chunk without its run is verify's
        for (dataset, action), (rows, _) in committed.items():
            if _REQUEST_WRITE in dataset:
                request_writes += rows
                continue
            purpose = purposes.get(dataset)
            if purpose is None or action not in counters:
                unbound.add(dataset)
                continue
            row = totals.setdefault((purpose, month), dict.fromkeys(KINDS, 0))
            row[counters[action]] += rows
    held: dict[tuple[str, str], int] = {}
    for entry in audit.entries(state):
        name, count = entry.get("dataset"), entry.get("held")
        when = month_of(str(entry.get("run_id")))
        if not isinstance(name, str) or not isinstance(count, int) or when is None:
            continue
        held[(name, when)] = max(held.get((name, when), 0), count)
    for (name, when), count in held.items():
        purpose = purposes.get(name)
        if purpose is not None and count:
            totals.setdefault((purpose, when), dict.fromkeys(KINDS, 0))["held"] += count
    order = {name: i for i, name in enumerate(policy.purposes)}
    months = [
        MonthActivity(purpose, month, **counts)
        for (purpose, month), counts in sorted(
            totals.items(), key=lambda item: (item[0][1], order.get(item[0][0], len(order)))
        )
    ]
    return Activity(months, request_writes, tuple(sorted(unbound)))


@dataclass(frozen=True)
class ForecastRow:
    dataset: str
    purpose: str
    action: str
    overdue: int
    """Past their cut-off already: the next run takes them."""
    expiring: tuple[int, ...]
    """Rows reaching their cut-off in each month of ``Forecast.months``."""
    held: int
    """Past their cut-off now but kept by a legal hold."""
    error: str | None = None

    @property
    def total(self) -> int:
        return sum(self.expiring)


@dataclass(frozen=True)
class Forecast:
    now: datetime
    months: tuple[str, ...]
    rows: list[ForecastRow]
    held_by: dict[str, int] = field(default_factory=dict)
    """Rows held now by each hold (a hold's name, or the label of a hold reaching rows
    through the rows they refer to: ``name via table``)."""


def month_ends(clock: PolicyClock, months: int = MONTHS_AHEAD) -> list[datetime]:
    """The wall time (policy's zone, naive) at which each of the next ``months`` months
    ends, the current one first: midnight of the next month's first day."""
    first = datetime.combine(clock.today().replace(day=1), time())
    return [first + relativedelta(months=m + 1) for m in range(months)]


def forecast(policy: Policy, connectors: Mapping[str, Connector], clock: PolicyClock) -> Forecast:
    """What expires next, dataset by dataset: the planner's selections at now and at
    each month's end (``plan_rules`` with that instant's clock, the holds active that
    day), each counted in its store (``evaluate``: one count per dataset and instant).
    Rows expiring in a month are those selected at its end less those selected at the
    end of the month before (now, for the current month). Rows a hold keeps are not
    selected while it is active: they are counted in the month it lapses. Counted on the
    stores as they are: rows written or events happening later are not foreseen."""
    ends = month_ends(clock)
    references = table_references(policy, connectors)
    instants = [clock] + [PolicyClock.at(policy.timezone, end) for end in ends]
    counted: list[dict[str, PlanRow | str]] = []
    for moment in instants:
        problems = clock_problems(policy, moment)
        plans = plan_rules(policy, moment, references)
        at: dict[str, PlanRow | str] = {}
        for plan in plans:
            name = plan.dataset.name
            if problems:
                at[name] = "; ".join(problems)
            elif plan.dataset.store not in connectors:
                at[name] = f"store {plan.dataset.store!r} could not be opened"
            else:
                try:
                    at[name] = evaluate([plan], connectors)[0]
                except StoreError as exc:
                    at[name] = first_line(exc)
        counted.append(at)
    rows: list[ForecastRow] = []
    held_by: dict[str, int] = {}
    for dataset in policy.datasets:
        found = [at.get(dataset.name, "not planned") for at in counted]
        error = next((f for f in found if isinstance(f, str)), None)
        if error is not None:
            rows.append(
                ForecastRow(dataset.name, dataset.purpose, dataset.action.type, 0, (), 0, error)
            )
            continue
        plan_rows = [f for f in found if isinstance(f, PlanRow)]
        selected = [row.counts.expired for row in plan_rows]
        now = plan_rows[0].counts
        for name, count in now.held_by.items():
            held_by[name] = held_by.get(name, 0) + count
        rows.append(
            ForecastRow(
                dataset.name,
                dataset.purpose,
                dataset.action.type,
                overdue=selected[0],
                expiring=tuple(b - a for a, b in pairwise(selected)),
                held=now.held,
            )
        )
    months = tuple(end.date().replace(day=1) - relativedelta(months=1) for end in ends)
    return Forecast(clock.local_now(), tuple(m.strftime("%Y-%m") for m in months), rows, held_by)


@dataclass(frozen=True)
class HoldView:
    name: str
    reason: str
    expires: date
    active: bool
    datasets: tuple[str, ...]
    selects: str
    """``subject_keys`` (with how many) or the columns its predicate reads: never a value."""
    rows: int
    """Rows it keeps now (past their cut-off), its own and those reached through them."""


def holds_view(policy: Policy, clock: PolicyClock, held_by: Mapping[str, int]) -> list[HoldView]:
    today = clock.today()
    views = []
    for hold in policy.holds:
        datasets = (
            tuple(d.name for d in policy.datasets)
            if hold.datasets == "all"
            else tuple(hold.datasets)
        )
        if hold.subject_keys is not None:
            selects = f"subject_keys ({len(hold.subject_keys)})"
        else:
            selects = ", ".join(dict.fromkeys(c.column for c in hold.where or ()))
        rows = sum(
            count
            for label, count in held_by.items()
            if label == hold.name or label.startswith(f"{hold.name} via ")
        )
        views.append(
            HoldView(
                hold.name,
                hold.reason,
                hold.expires,
                hold.active_on(today),
                datasets,
                selects,
                rows,
            )
        )
    return views


@dataclass(frozen=True)
class CoverageView:
    scanned_at: datetime | None
    tables: int
    columns: int
    personal: int
    """Columns the scan labelled with personal information."""
    bound: int
    exempt: int
    gaps: tuple[str, ...]
    not_scanned: tuple[str, ...] = ()
    """Stores the cache holds nothing of (never scanned, or renamed)."""

    @property
    def passed(self) -> bool:
        return not self.gaps


def coverage_view(
    policy: Policy, connectors: Mapping[str, Connector], state: Engine
) -> CoverageView:
    """The coverage gate's verdict on the last scan of each store's tables (the scan
    cache: no store is sampled again)."""
    cache = StateScanCache(state, read_only=True)
    evidence: list[ColumnEvidence] = []
    tables = 0
    latest: datetime | None = None
    not_scanned = []
    for store, connector in connectors.items():
        cached = cache.tables(connector.display_url)
        if not cached:
            not_scanned.append(store)
        for (schema, table), scan in cached.items():
            tables += 1
            moment = scan.scanned_at
            latest = moment if latest is None or moment > latest else latest
            evidence += [
                ColumnEvidence(store, schema, table, column.column, column.labels())
                for column in scan.columns
            ]
    coverage = check_coverage(policy, evidence, DIRECT_IDENTIFIERS)
    return CoverageView(
        scanned_at=latest,
        tables=tables,
        columns=len(evidence),
        personal=sum(1 for item in evidence if item.entities),
        bound=len(coverage.bound),
        exempt=len(coverage.exempt),
        gaps=tuple(str(gap) for gap in coverage.gaps),
        not_scanned=tuple(not_scanned),
    )


@dataclass(frozen=True)
class RiskView:
    lines: list[RiskLine]
    errors: dict[str, str] = field(default_factory=dict)
    """Datasets whose risk could not be taken (a store down), with why."""


def risk_view(policy: Policy, connectors: Mapping[str, Connector], state: Engine) -> RiskView:
    """``tenure risk``'s lines: every anonymized table and released aggregate, dataset by
    dataset, so that a store that cannot be read leaves out its own datasets alone."""
    lines: list[RiskLine] = []
    errors: dict[str, str] = {}
    for dataset in policy.datasets:
        alone = policy.model_copy(update={"datasets": [dataset]})
        try:
            lines += risk_lines(alone, connectors, state)
        except (StoreError, KeyError) as exc:
            errors[dataset.name] = first_line(exc)
    return RiskView(lines, errors)


@dataclass(frozen=True)
class ReleasedRollup:
    dataset: str
    rollup: str
    period: str
    method: str
    parameters: dict[str, Any]
    periods: int
    """Periods with cells published."""
    cells: int
    """Cells published (under suppression, those not withheld)."""
    withheld: int
    released_at: datetime | None
    spent: dict[str, float] = field(default_factory=dict)
    """Differential privacy: the privacy loss spent per calendar year."""
    left: dict[str, float] = field(default_factory=dict)


def released(state: Engine, policy: Policy) -> list[ReleasedRollup]:
    """Every rollup of every aggregating binding, released or not
    (``flows.releases.release_tables``), with its disclosure: the method and its
    parameters, the periods and cells published, the cells withheld, and for
    differential privacy the privacy loss spent and left per year."""
    found = []
    for table in release_tables(state, policy):
        disclosure = dict(table.disclosure)
        method = str(disclosure.pop("method"))
        withheld = int(disclosure.pop("withheld_cells", 0))
        spent = {str(y): float(v) for y, v in disclosure.pop("spent", {}).items()}
        left = {str(y): float(v) for y, v in disclosure.pop("left", {}).items()}
        found.append(
            ReleasedRollup(
                dataset=table.dataset,
                rollup=table.rollup,
                period=table.period,
                method=method,
                parameters=disclosure,
                periods=int(table.frame["period"].nunique()),
                cells=len(table.frame),
                withheld=withheld,
                released_at=table.released_at,
                spent=spent,
                left=left,
            )
        )
    return found


@dataclass(frozen=True)
class AuditView:
    entries: int
    head: str | None
    verified: bool | None
    """None: not verified (no audit key here, or a store's journal unread)."""
    problems: tuple[str, ...] = ()
    note: str | None = None


def audit_view(
    state: Engine, connectors: Mapping[str, Connector], datasets: Sequence[str]
) -> AuditView:
    """``tenure audit verify``'s verdict: the chain, then the ledger, the register of
    requests and each store's journal against it."""
    try:
        result = audit.verify(state, connectors, set(datasets))
    except MissingSecret as exc:
        statement = select(audit_table.c.hash).order_by(audit_table.c.seq.desc()).limit(1)
        with state.connect() as connection:
            head = connection.execute(statement).scalar_one_or_none()
            count = connection.execute(select(func.count()).select_from(audit_table)).scalar_one()
        return AuditView(count, head, None, note=f"not verified: {first_line(exc)}")
    problems = tuple(result.problems + result.unaudited)
    note = "; ".join(f"not checked: {line}" for line in result.unchecked) or None
    return AuditView(result.entries, result.head, result.ok, problems, note)
