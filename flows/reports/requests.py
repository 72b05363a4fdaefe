"""What ``tenure requests`` and ``tenure request show`` print: the open requests with
their days left, and one request with its events and the deadline rules applied."""

from __future__ import annotations

from datetime import date, tzinfo
from typing import TYPE_CHECKING, Any

from flows.reports.table import Cell, CellValue, Column, ReportTable

if TYPE_CHECKING:
    from rich.console import Console

    from flows.rights.fulfil import Fulfilment
    from flows.rights.register import Event, Request
    from retention_rules.deadlines import Deadline

#: A request due within this many days is flagged "due soon".
DUE_SOON_DAYS = 5


def flag(request: Request, today: date) -> str:
    """``OVERDUE`` past the due date, ``due soon`` within ``DUE_SOON_DAYS``, else empty."""
    left = request.days_left(today)
    if left < 0:
        return "OVERDUE"
    return "due soon" if left <= DUE_SOON_DAYS else ""


def _flag_cell(request: Request, today: date) -> CellValue:
    shown = flag(request, today)
    return Cell(shown, _flag_style(shown))


def _due(request: Request) -> str:
    if request.extended_due is None:
        return request.due.isoformat()
    return f"{request.extended_due.isoformat()} (extended from {request.due.isoformat()})"


def open_requests_table(found: list[Request], today: date) -> ReportTable:
    """The open requests, the one due first first, with their days left on ``today``."""
    columns = (
        Column("Request", no_wrap=True),
        Column("Kind"),
        Column("Received", no_wrap=True),
        Column("Status"),
        Column("Verified"),
        Column("Due"),
        Column("Days left", numeric=True),
        Column("Flag", no_wrap=True),
    )
    rows = [
        (
            r.request_id,
            r.kind.value,
            r.received.isoformat(),
            r.status,
            "yes" if r.verified_at is not None else "no",
            _due(r),
            str(r.days_left(today)),
            _flag_cell(r, today),
        )
        for r in found
    ]
    return ReportTable.of(
        f"Open requests on {today.isoformat()}", columns, rows, caption=summary_line(found, today)
    )


def summary_line(found: list[Request], today: date) -> str:
    overdue = sum(1 for r in found if flag(r, today) == "OVERDUE")
    soon = sum(1 for r in found if flag(r, today) == "due soon")
    return (
        f"{len(found)} open request(s): {overdue} overdue, {soon} due within {DUE_SOON_DAYS} days"
    )


def request_json(request: Request, today: date) -> dict[str, Any]:
    """A request for machines: its fields, its current due date and days left."""
    return {
        "request_id": request.request_id,
        "policy": request.policy,
        "kind": request.kind.value,
        "received": request.received.isoformat(),
        "jurisdictions": [j.value for j in request.jurisdictions],
        "language": request.language,
        "identifiers": request.identifiers,
        "details": request.details,
        "verified_at": _iso(request.verified_at),
        "verified_method": request.verified_method,
        "verified_by": request.verified_by,
        "status": request.status,
        "due": request.due.isoformat(),
        "extended_due": _iso(request.extended_due),
        "days_left": request.days_left(today) if request.is_open else None,
        "flag": flag(request, today) if request.is_open else "",
        "decision": request.decision,
        "reasons": request.reasons,
        "provision": request.provision,
        "recourse": request.recourse,
        "package_sha256": request.package_sha256,
        "counts": request.counts,
        "failed_stores": request.failed_stores,
        "closed_at": _iso(request.closed_at),
        "purged_at": _iso(request.purged_at),
    }


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def request_table(request: Request, today: date, zone: tzinfo) -> ReportTable:
    """One request, field by field (its days in the policy's time zone ``zone``);
    identifiers and details shown until purged."""
    rows: list[tuple[CellValue, CellValue]] = [
        ("Kind", request.kind.value),
        ("Policy", request.policy),
        ("Received", request.received.isoformat()),
        ("Jurisdictions", ", ".join(j.value for j in request.jurisdictions)),
        ("Language", request.language),
        ("Identifiers", _identifiers(request, zone)),
    ]
    if request.details or request.purged_at is not None:
        rows.append(("Details", _details(request, zone)))
    verified = (
        "no: Tenure acts only on a verified request"
        if request.verified_at is None
        else f"{_local_day(request.verified_at, zone)}: {request.verified_method} "
        f"(by {request.verified_by})"
    )
    rows += [("Identity check", verified), ("Status", request.status), ("Due", _due(request))]
    if request.is_open:
        shown = flag(request, today)
        text = f"{request.days_left(today)}" + (f" ({shown})" if shown else "")
        rows.append(("Days left", Cell(text, _flag_style(shown))))
    for label, value in (
        ("Decision", request.decision),
        ("Reasons", request.reasons),
        ("Provision", request.provision),
        ("Recourse", request.recourse),
        ("Package SHA-256", request.package_sha256),
        ("Failed stores", ", ".join(request.failed_stores)),
        ("Counts", _counts(request.counts)),
        ("Closed", _local_day(request.closed_at, zone)),
        ("Purged", _local_day(request.purged_at, zone)),
    ):
        if value:
            rows.append((label, value))
    return ReportTable.of(f"Request {request.request_id}", ("Field", "Value"), rows)


def _flag_style(shown: str) -> str:
    return "bold red" if shown == "OVERDUE" else "yellow" if shown else ""


def _identifiers(request: Request, zone: tzinfo) -> str:
    if request.identifiers is None:
        return f"purged on {_local_day(request.purged_at, zone)}"
    return "; ".join(f"{name}: {', '.join(values)}" for name, values in request.identifiers.items())


def _details(request: Request, zone: tzinfo) -> str:
    if request.details is None:
        return f"purged on {_local_day(request.purged_at, zone)}"
    return "; ".join(f"{name}: {value}" for name, value in request.details.items())


def _counts(counts: dict[str, Any] | None) -> str:
    if not counts:
        return ""
    return ", ".join(f"{name}: {value}" for name, value in sorted(counts.items()))


def _local_day(moment: Any, zone: tzinfo) -> str:
    return "" if moment is None else str(moment.astimezone(zone).date().isoformat())


def events_table(found: list[Event], zone: tzinfo) -> ReportTable:
    """What happened to a request, in order, at times of the policy's zone ``zone``."""
    rows = [
        (
            str(e.seq),
            e.at.astimezone(zone).isoformat(timespec="seconds"),
            e.event,
            "; ".join(f"{k}: {_text(v)}" for k, v in sorted(e.detail.items())),
        )
        for e in found
    ]
    return ReportTable.of(
        "Events", (Column("#", numeric=True), Column("At", no_wrap=True), "Event", "Detail"), rows
    )


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def rules_table(rules: Deadline) -> ReportTable:
    """The deadline rules applicable to a request; those that set its due date marked."""
    rows = [
        (
            "yes" if rule in rules.governing else "",
            rule.provision,
            str(rule.period),
            "none"
            if rule.extension is None
            else f"{rule.extension}, notice within {rule.notice_within}",
            rule.silence,
            rule.recourse,
        )
        for rule in rules.applicable
    ]
    columns = ("Governs", "Rule", "Period", "Extension", "If unanswered", "Recourse")
    return ReportTable.of("Deadline rules applied", columns, rows)


def fulfilment_json(done: Fulfilment) -> dict[str, Any]:
    """What ``tenure request fulfil --json`` prints: counts, hashes and failed stores;
    never a value from a record."""
    shown: dict[str, Any] = {
        "request_id": done.request.request_id,
        "kind": done.request.kind.value,
        "status": done.status,
        "failed": dict(done.failed),
    }
    if done.package is not None:
        shown["package"] = {
            "path": str(done.package.path),
            "sha256": done.package.sha256,
            "records": dict(done.package.counts),
        }
    if done.run is not None:
        shown["run_id"] = done.run.report.run_id
        shown["changed"] = dict(done.run.changed)
        shown["remaining"] = {d: dict(r) for d, r in done.run.remaining.items()}
        shown["skipped"] = list(done.run.skipped)
    return shown


def fulfilment_table(done: Fulfilment) -> ReportTable:
    """One row per dataset: records found (access) or rows changed, and what remains
    of the person afterwards, by reason."""
    rows: list[tuple[CellValue, ...]] = []
    if done.package is not None:
        for dataset, n in sorted(done.package.counts.items()):
            rows.append((dataset, str(n), "", ""))
    if done.run is not None:
        names = sorted(set(done.run.changed) | set(done.run.remaining))
        for dataset in names:
            left = done.run.remaining.get(dataset, {})
            reasons = "; ".join(f"{n} {why}" for why, n in sorted(left.items()))
            changed = str(done.run.changed.get(dataset, 0))
            rows.append((dataset, changed, str(sum(left.values())), reasons))
    for dataset, why in sorted(done.failed.items()):
        rows.append((dataset, Cell("failed", "red"), "", why))
    columns = (
        Column("dataset"),
        Column("records" if done.package is not None else "changed", numeric=True),
        Column("remaining", numeric=True),
        Column("why they remain"),
    )
    return ReportTable(f"request {done.request.request_id}: {done.status}", columns, tuple(rows))


def render_fulfilment(console: Console, done: Fulfilment, *, dry_run: bool = False) -> None:
    from flows.reports.table import to_rich

    console.print(to_rich(fulfilment_table(done)))
    if dry_run:
        console.print("dry run: nothing was changed", markup=False)
    if done.package is not None:
        console.print(
            f"package {done.package.path} (sha256 {done.package.sha256})",
            markup=False,
            soft_wrap=True,
        )
    if done.run is not None and done.run.skipped:
        console.print(
            "not corrected (the column holds several categories; correct by hand): "
            + ", ".join(done.run.skipped),
            markup=False,
            soft_wrap=True,
        )
    if done.failed:
        stores = ", ".join(sorted(done.failed))
        console.print(
            f"partial: {stores} not done; fulfil the request again once the store answers",
            markup=False,
            soft_wrap=True,
        )
