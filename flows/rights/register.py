"""The register of requests from people, in the state database: what was asked, by whom
(their identifiers), whether their identity was checked, when it is due and what was
decided.

One row per request (``tenure_requests``) and one row per thing that happened to it
(``tenure_request_events``); every change appends, in the same transaction, one entry to
the hash-chained audit log (``flows.audit``) holding the request's id, kind, event, dates,
counts and hashes, never an identifier or a value. ``tenure audit verify`` checks the
events and the entries against each other.

Due dates come from ``retention_rules.deadlines`` (the strictest rule of every applicable
jurisdiction). The register is personal information too: ``purge`` applies the retention
of the policy's ``requests.purpose`` to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError

from flows.audit import (
    EVENT_SEQ,
    REQUEST_DELETED,
    REQUEST_EVENT,
    REQUEST_ID,
    append_on,
    current_key,
)
from flows.state.tables import request_events, request_numbers, requests, utc
from retention_rules.clock import PolicyClock
from retention_rules.deadlines import (
    COMPLAINT_PERIOD,
    Deadline,
    Jurisdiction,
    RequestKind,
    deadline,
)
from retention_rules.durations import Duration
from retention_rules.model import Policy, RequestSettings

RECEIVED = "received"
VERIFIED = "verified"
IN_PROGRESS = "in_progress"
PARTIAL = "partial"
FULFILLED = "fulfilled"
REFUSED = "refused"
ACKNOWLEDGED = "acknowledged"
ANSWERED = "answered"
#: A closed request is answered for good; the others are open (listed, with days left).
CLOSED = frozenset({FULFILLED, REFUSED, ANSWERED})
#: The outcomes a fulfilment records (``record_outcome``).
OUTCOMES = frozenset({FULFILLED, PARTIAL, REFUSED})
#: What each kind of request must say besides the identifiers (``--detail key=value``).
DETAILS: dict[RequestKind, tuple[str, ...]] = {
    RequestKind.CORRECTION: ("category", "value"),
    RequestKind.CONSENT_WITHDRAWAL: ("purpose",),
    RequestKind.COMPLAINT: ("subject",),
}
#: The details a kind may also take: a correction's one column (``dataset.column``),
#: where its category is spread over several (first and last name).
OPTIONAL_DETAILS: dict[RequestKind, tuple[str, ...]] = {RequestKind.CORRECTION: ("column",)}
#: How many times a new request number is tried when another process took it first.
_NUMBER_ATTEMPTS = 5


class RequestError(ValueError):
    """A request cannot be recorded or changed as asked: one line says why; nothing was
    written."""


def request_settings(policy: Policy) -> RequestSettings:
    """The policy's ``requests:`` section: the jurisdictions whose law applies to every
    request (Quebec and PIPEDA unless it says otherwise), the period the policy promises
    for complaints (30 days), the purpose the register's own records are kept for and
    the default language of letters and packages (French)."""
    return policy.requests


def identifier_names(policy: Policy) -> frozenset[str] | None:
    """The identifiers the policy's ``subjects:`` section declares; None without one."""
    return None if policy.subjects is None else frozenset(policy.subjects.identifiers)


@dataclass(frozen=True)
class Event:
    """One thing that happened to a request: never an identifier or a value."""

    seq: int
    at: datetime
    event: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Request:
    """A request of the register (``tenure_requests``)."""

    request_id: str
    policy: str
    kind: RequestKind
    received: date
    jurisdictions: tuple[Jurisdiction, ...]
    language: str
    identifiers: dict[str, list[str]] | None
    """Identifier name -> the values given; None once purged."""
    details: dict[str, str] | None
    """What the kind needs (``DETAILS``); None once purged."""
    verified_at: datetime | None
    verified_method: str | None
    verified_by: str | None
    status: str
    due: date
    extended_due: date | None
    decision: str | None
    reasons: str | None
    provision: str | None
    recourse: str | None
    package_sha256: str | None
    package_path: str | None
    counts: dict[str, Any] | None
    failed_stores: list[str] = field(default_factory=list)
    closed_at: datetime | None = None
    purged_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED

    @property
    def current_due(self) -> date:
        """The due date now: the extended one once extended."""
        return self.extended_due or self.due

    def days_left(self, today: date) -> int:
        """Calendar days until ``current_due``: 0 on the day, negative once overdue."""
        return (self.current_due - today).days

    def deadline(self, complaint_period: Duration = COMPLAINT_PERIOD) -> Deadline:
        """The rules that set its due date (``retention_rules.deadlines``)."""
        return deadline(
            self.kind, self.received, self.jurisdictions, complaint_period=complaint_period
        )


def open_request(
    engine: Engine,
    policy: Policy,
    kind: RequestKind | str,
    received: date,
    identifiers: Mapping[str, Iterable[str]],
    *,
    details: Mapping[str, str] | None = None,
    jurisdictions: Iterable[Jurisdiction | str] | None = None,
    language: str | None = None,
    now: datetime,
) -> Request:
    """Record a request received on ``received``, due under the strictest rule of the
    policy's jurisdictions and ``jurisdictions`` (laws that apply to this person besides
    the policy's own). Raises ``RequestError`` for an unknown kind, jurisdiction or
    language, no identifiers, an identifier the policy's ``subjects:`` does not declare,
    details the kind lacks or does not take, or a received date after today."""
    settings = request_settings(policy)
    kind = _kind(kind)
    laws = _jurisdictions([*settings.jurisdictions, *(jurisdictions or ())])
    language = (language or settings.language).strip().lower()
    if language not in ("fr", "en"):
        raise RequestError(f"--lang: unknown language {language!r} (fr or en)")
    given = _identifiers(policy, identifiers)
    wanted = _details(policy, kind, details or {})
    today = PolicyClock.at(policy.timezone, now).today()
    if received > today:
        raise RequestError(
            f"--received: {received.isoformat()} is after today ({today.isoformat()})"
        )
    due = deadline(kind, received, laws, complaint_period=settings.complaint_period)
    row = {
        "policy": policy.name,
        "kind": kind.value,
        "received": received,
        "jurisdictions": json.dumps([law.value for law in laws]),
        "language": language,
        "identifiers": json.dumps(given, sort_keys=True, ensure_ascii=False),
        "details": None if not wanted else json.dumps(wanted, sort_keys=True, ensure_ascii=False),
        "status": RECEIVED,
        "due": due.due,
    }
    detail = {
        "identifiers": sorted(given),
        "jurisdictions": [law.value for law in laws],
        "rules": [rule.provision for rule in due.governing],
    }
    key = current_key()
    for attempt in range(_NUMBER_ATTEMPTS):
        try:
            with engine.begin() as connection:
                request_id = _next_number(connection, received.year)
                connection.execute(insert(requests).values(request_id=request_id, **row))
                _record(connection, request_id, "opened", detail, now, key)
            return get(engine, request_id)
        except IntegrityError:  # another process took the number: take the next one
            if attempt == _NUMBER_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def verify(engine: Engine, request_id: str, method: str, by: str, now: datetime) -> Request:
    """Record how the person's identity was checked, and by whom: Tenure acts only on a
    verified request (``begin``). It does not check identities itself."""
    method, by = method.strip(), by.strip()
    if not method or not by:
        raise RequestError("an identity check needs its method (--method) and who made it (--by)")
    with engine.begin() as connection:
        found = _open_one(connection, request_id)
        if found.verified_at is not None:
            raise RequestError(
                f"request {request_id} was verified already, on {_day(found.verified_at)}"
            )
        status = VERIFIED if found.status == RECEIVED else found.status
        values = {"verified_at": now, "verified_method": method, "verified_by": by}
        _change(connection, found, "verified", {"method": method}, now, status=status, **values)
    return get(engine, request_id)


def refuse(engine: Engine, request_id: str, reasons: str, provision: str, now: datetime) -> Request:
    """Refuse a request, with its reasons and the provision relied on; the recourse open
    to the person is that of the rules governing it."""
    reasons, provision = reasons.strip(), provision.strip()
    if not reasons or not provision:
        raise RequestError(
            "a refusal needs its reasons (--reason) and the provision relied on (--provision)"
        )
    with engine.begin() as connection:
        found = _not_a_complaint(_open_one(connection, request_id), "refused")
        _change(
            connection,
            found,
            REFUSED,
            {"provision": provision},
            now,
            status=REFUSED,
            decision=REFUSED,
            reasons=reasons,
            provision=provision,
            recourse=_recourse(found),
            closed_at=now,
        )
    return get(engine, request_id)


def extend(
    engine: Engine, request_id: str, reasons: str, now: datetime, new_due: date | None = None
) -> Request:
    """Extend a request's deadline, with the reasons given to the person by the notice.

    A request: once, where every applicable law allows it (never under Quebec's s. 32),
    by the notice date those laws set, to their extended date at the latest (the default).
    A complaint: as the policy promises, by a notice sent before the due date giving the
    reasons, the complaint's status and a new date (required), later than the current one;
    again if that date cannot be kept."""
    reasons = reasons.strip()
    if not reasons:
        raise RequestError("an extension needs the reasons given to the person (--reason)")
    with engine.begin() as connection:
        found = _open_one(connection, request_id)
        today = now.date()
        if found.kind is RequestKind.COMPLAINT:
            new_due = _complaint_extension(found, today, new_due)
        else:
            new_due = _request_extension(found, today, new_due)
        detail = {"reasons": reasons, "status": found.status, "new_due": new_due.isoformat()}
        _change(connection, found, "extended", detail, now, extended_due=new_due)
    return get(engine, request_id)


def acknowledge(engine: Engine, request_id: str, now: datetime) -> Request:
    """Record that a complaint's receipt was acknowledged to the person."""
    with engine.begin() as connection:
        found = _complaint(connection, request_id)
        if found.status == ACKNOWLEDGED:
            raise RequestError(f"complaint {request_id} was acknowledged already")
        _change(connection, found, ACKNOWLEDGED, {}, now, status=ACKNOWLEDGED)
    return get(engine, request_id)


def answer(engine: Engine, request_id: str, response: str, now: datetime) -> Request:
    """Record a complaint's reasoned written response, which closes it."""
    response = response.strip()
    if not response:
        raise RequestError("a complaint is answered with a reasoned response (--response)")
    with engine.begin() as connection:
        found = _complaint(connection, request_id)
        _change(
            connection, found, ANSWERED, {}, now, status=ANSWERED, decision=response, closed_at=now
        )
    return get(engine, request_id)


def get(engine: Engine, request_id: str) -> Request:
    """The request ``request_id``; ``RequestError`` when the register has none."""
    if not _has_register(engine):
        raise RequestError(f"no request {request_id!r} in the register")
    with engine.connect() as connection:
        return _one(connection, request_id)


def events(engine: Engine, request_id: str) -> list[Event]:
    """What happened to a request, in order."""
    if not _has_register(engine):
        return []
    statement = (
        select(request_events)
        .where(request_events.c.request_id == request_id)
        .order_by(request_events.c.seq)
    )
    with engine.connect() as connection:
        found = connection.execute(statement).all()
    return [Event(row.seq, _aware(row.at), row.event, json.loads(row.detail)) for row in found]


def listing(engine: Engine, today: date) -> list[Request]:
    """The open requests, the one due first first (``today`` breaks no tie: it is the
    day their days left are counted from, ``Request.days_left``)."""
    if not _has_register(engine):
        return []
    statement = select(requests).where(requests.c.status.not_in(sorted(CLOSED)))
    with engine.connect() as connection:
        found = [_request(row) for row in connection.execute(statement)]
    return sorted(found, key=lambda r: (r.days_left(today), r.request_id))


def begin(engine: Engine, request_id: str, now: datetime) -> Request:
    """Mark a verified request as being fulfilled (again, after a partial outcome or an
    interrupted attempt). Refused for an unverified request: Tenure does not act on one."""
    with engine.begin() as connection:
        found = _not_a_complaint(_open_one(connection, request_id), "fulfilled")
        if found.verified_at is None:
            raise RequestError(
                f"request {request_id} is not verified: record the identity check first "
                f"(tenure request verify POLICY {request_id} --method ... --by ...)"
            )
        _change(connection, found, "begun", {"from": found.status}, now, status=IN_PROGRESS)
    return get(engine, request_id)


def record_identifiers(
    engine: Engine, request_id: str, identifiers: Mapping[str, Iterable[str]], now: datetime
) -> Request:
    """Keep every identifier the stores linked to the person (before anything of theirs
    is changed: once their customer row is pseudonymized, their address can no longer be
    found from their number, and a rerun must still reach their mail). The event counts
    them; the values stay in the request's row, which the register's retention purges."""
    with engine.begin() as connection:
        found = _open_one(connection, request_id)
        merged = {k: sorted(set(v)) for k, v in (found.identifiers or {}).items()}
        for name, values in identifiers.items():
            merged[name] = sorted(set(merged.get(name, [])) | {str(v) for v in values})
        if merged == {k: sorted(set(v)) for k, v in (found.identifiers or {}).items()}:
            return found
        counts = {name: len(values) for name, values in sorted(merged.items())}
        _change(
            connection,
            found,
            "identifiers found",
            {"identifiers": counts},
            now,
            identifiers=json.dumps(merged, sort_keys=True),
        )
    return get(engine, request_id)


def record_outcome(
    engine: Engine,
    request_id: str,
    *,
    status: str,
    counts: Mapping[str, Any],
    failed_stores: Sequence[str],
    package_sha256: str | None = None,
    decision: str | None = None,
    reasons: str | None = None,
    now: datetime,
    package_path: Path | str | None = None,
) -> Request:
    """Record what a fulfilment did: ``fulfilled``; ``partial`` (the stores in
    ``failed_stores`` could not be reached: a rerun does what is left); or ``refused``
    (with its ``reasons``). ``counts`` are numbers by dataset and reason, never values;
    ``package_path`` is the package file the register's retention deletes."""
    if status not in OUTCOMES:
        raise RequestError(f"unknown outcome {status!r} (one of {', '.join(sorted(OUTCOMES))})")
    failed = sorted(set(failed_stores))
    if status == PARTIAL and not failed:
        raise RequestError("a partial outcome names the stores that failed")
    if status == FULFILLED and failed:
        raise RequestError(f"stores {', '.join(failed)} failed: the outcome is partial")
    if status == REFUSED and not (reasons or "").strip():
        raise RequestError("a refusal needs its reasons")
    with engine.begin() as connection:
        found = _open_one(connection, request_id)
        if found.status != IN_PROGRESS:
            raise RequestError(
                f"request {request_id} is {found.status}, not in progress: begin it first"
            )
        closed = status != PARTIAL
        detail: dict[str, Any] = {"counts": dict(counts), "failed_stores": failed}
        if package_sha256 is not None:
            detail["package_sha256"] = package_sha256
        _change(
            connection,
            found,
            status,
            detail,
            now,
            status=status,
            counts=json.dumps(dict(counts), sort_keys=True, default=str),
            failed_stores=json.dumps(failed),
            package_sha256=package_sha256 or found.package_sha256,
            package_path=str(package_path) if package_path is not None else found.package_path,
            decision=decision if decision is not None else status,
            reasons=reasons.strip() if reasons else found.reasons,
            recourse=_recourse(found) if status == REFUSED else found.recourse,
            closed_at=now if closed else None,
        )
    return get(engine, request_id)


@dataclass(frozen=True)
class Purged:
    """What the register's own retention did (``purge``)."""

    purged: tuple[str, ...]
    """Requests whose identifiers, details and package were dropped."""
    deleted: tuple[str, ...]
    """Requests whose whole record was deleted, events included."""
    purpose: str

    @property
    def total(self) -> int:
        return len(self.purged) + len(self.deleted)


def purge(engine: Engine, policy: Policy, now: datetime) -> int:
    """Apply the register's own retention (``purge_register``); the number of requests
    it purged or deleted."""
    return purge_register(engine, policy, now).total


def purge_register(engine: Engine, policy: Policy, now: datetime) -> Purged:
    """The register's own retention, under the policy's ``requests.purpose`` (else its
    ``manage_choices_and_rights``): a request closed for longer than the purpose's
    minimum retention keeps what proves it was handled (dates, decision, counts, hashes)
    and loses its identifiers, its details and its package file; one closed for longer
    than the maximum is deleted with its events. Open requests are never purged. Each
    change is audited."""
    purpose_name = register_purpose(policy)
    purpose = policy.purposes[purpose_name]
    clock = PolicyClock.at(policy.timezone, now)
    drop_before, delete_before = (
        clock.cutoff(purpose.min_retention),
        clock.cutoff(purpose.max_retention),
    )
    if not _has_register(engine):
        return Purged((), (), purpose_name)
    closed = select(requests).where(requests.c.closed_at.is_not(None))
    with engine.connect() as connection:
        found = [_request(row) for row in connection.execute(closed)]
    to_delete = [r for r in found if r.closed_at and r.closed_at < delete_before]
    to_drop = [
        r
        for r in found
        if r.purged_at is None and r.closed_at and delete_before <= r.closed_at < drop_before
    ]
    for found_request in to_drop:  # first the files: a failure leaves the row as it was
        if found_request.package_path:
            _remove_package(found_request)
    key = current_key() if to_drop or to_delete else None
    with engine.begin() as connection:
        for old in to_drop:
            assert key is not None
            detail = {"purpose": purpose_name, "min_retention": str(purpose.min_retention)}
            _change(
                connection,
                old,
                "purged",
                detail,
                now,
                identifiers=None,
                details=None,
                package_path=None,
                purged_at=now,
            )
        for old in to_delete:
            assert key is not None
            connection.execute(
                delete(request_events).where(request_events.c.request_id == old.request_id)
            )
            connection.execute(delete(requests).where(requests.c.request_id == old.request_id))
            append_on(
                connection,
                [
                    {
                        REQUEST_ID: old.request_id,
                        REQUEST_EVENT: REQUEST_DELETED,
                        "request_kind": old.kind.value,
                        "at": now.isoformat(),
                        "closed_at": _day(old.closed_at),
                        "purpose": purpose_name,
                        "max_retention": str(purpose.max_retention),
                    }
                ],
                key,
            )
    return Purged(
        tuple(r.request_id for r in to_drop), tuple(r.request_id for r in to_delete), purpose_name
    )


def register_purpose(policy: Policy) -> str:
    """The purpose the register's records are kept for: ``requests.purpose``, else the
    policy's ``manage_choices_and_rights``; ``RequestError`` when it has neither."""
    name = request_settings(policy).purpose or "manage_choices_and_rights"
    if name not in policy.purposes:
        raise RequestError(
            f"the register's records are kept for no purpose of the policy: name one in "
            f"requests.purpose (no purpose {name!r} among {', '.join(sorted(policy.purposes))})"
        )
    return name


def _remove_package(found: Request) -> None:
    path = Path(found.package_path or "")
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise RequestError(
            f"request {found.request_id}: cannot delete its package {path}: {exc.strerror or exc}"
        ) from None


def _kind(kind: RequestKind | str) -> RequestKind:
    try:
        return RequestKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in RequestKind)
        raise RequestError(f"--kind: unknown kind {kind!r} (one of {known})") from None


def _jurisdictions(laws: Iterable[Jurisdiction | str]) -> tuple[Jurisdiction, ...]:
    found: list[Jurisdiction] = []
    for law in laws:
        try:
            found.append(Jurisdiction(str(law).strip().lower()))
        except ValueError:
            known = ", ".join(j.value for j in Jurisdiction)
            raise RequestError(
                f"--jurisdiction: unknown jurisdiction {law!r} (one of {known})"
            ) from None
    return tuple(dict.fromkeys(found))


def _identifiers(policy: Policy, given: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """The identifiers given, each name's values stripped, deduplicated and sorted."""
    declared = identifier_names(policy)
    found: dict[str, list[str]] = {}
    for name, values in given.items():
        name = name.strip()
        if declared is not None and name not in declared:
            raise RequestError(
                f"--id: unknown identifier {name!r}: the policy's subjects: declares "
                f"{', '.join(sorted(declared))}"
            )
        kept = sorted({str(v).strip() for v in values} - {""})
        if not name or not kept:
            raise RequestError("--id: give each identifier as name=value, both non-empty")
        found[name] = kept
    if not found:
        raise RequestError(
            "no identifiers: give at least one with --id name=value (an e-mail address, a "
            "customer number, ...)"
        )
    return found


def _details(policy: Policy, kind: RequestKind, given: Mapping[str, str]) -> dict[str, str]:
    """The details ``kind`` needs (``DETAILS``), checked against the policy."""
    wanted = DETAILS.get(kind, ())
    details = {k.strip(): str(v).strip() for k, v in given.items()}
    extra = sorted(set(details) - set(wanted) - set(OPTIONAL_DETAILS.get(kind, ())))
    if extra:
        allowed = (*wanted, *OPTIONAL_DETAILS.get(kind, ()))
        takes = f"takes only {', '.join(allowed)}" if allowed else "takes none"
        raise RequestError(f"--detail: {', '.join(extra)}: a {kind.value} request {takes}")
    missing = [k for k in wanted if not details.get(k)]
    if missing:
        shown = " ".join(f"--detail {k}=..." for k in missing)
        raise RequestError(f"--detail: a {kind.value} request needs {shown}")
    category, purpose = details.get("category"), details.get("purpose")
    if category is not None and category not in policy.categories:
        raise RequestError(f"--detail category: the policy declares no category {category!r}")
    if purpose is not None and purpose not in policy.purposes:
        raise RequestError(f"--detail purpose: the policy declares no purpose {purpose!r}")
    return details


def _request_extension(found: Request, today: date, new_due: date | None) -> date:
    rules = found.deadline()
    if found.extended_due is not None:
        raise RequestError(
            f"request {found.request_id} was extended already, to {found.extended_due}: "
            "the law allows one extension"
        )
    if rules.extended_due is None or rules.notice_due is None:
        forbidding = [r for r in rules.applicable if r.extension is None]
        raise RequestError(
            f"request {found.request_id} cannot be extended: "
            + "; ".join(f"{r.provision} allows no extension" for r in forbidding)
            + f" (due {found.due.isoformat()})"
        )
    if today > rules.notice_due:
        raise RequestError(
            f"request {found.request_id} cannot be extended any more: the notice was due by "
            f"{rules.notice_due.isoformat()}"
        )
    chosen = new_due or rules.extended_due
    if not found.due < chosen <= rules.extended_due:
        raise RequestError(
            f"--new-due: {chosen.isoformat()} must be after {found.due.isoformat()} and no "
            f"later than {rules.extended_due.isoformat()}"
        )
    return chosen


def _complaint_extension(found: Request, today: date, new_due: date | None) -> date:
    if new_due is None:
        raise RequestError(
            "--new-due: a complaint's extension tells the person the new date of the answer"
        )
    if today > found.current_due:
        raise RequestError(
            f"complaint {found.request_id} was due on {found.current_due.isoformat()}: an "
            "extension is announced before the due date"
        )
    if new_due <= found.current_due:
        raise RequestError(
            f"--new-due: {new_due.isoformat()} must be after {found.current_due.isoformat()}"
        )
    return new_due


def _recourse(found: Request) -> str:
    """Where the person may turn, under every rule applicable to the request."""
    rules = found.deadline().applicable
    return "; ".join(dict.fromkeys(rule.recourse for rule in rules))


def _next_number(connection: Connection, year: int) -> str:
    """The next request id of ``year``: ``2026-0001``, never given twice, even after
    the register's retention deleted the request that had it."""
    last = connection.execute(
        select(request_numbers.c.last).where(request_numbers.c.year == year)
    ).scalar()
    if last is None:
        connection.execute(insert(request_numbers).values(year=year, last=1))
        number = 1
    else:
        number = int(last) + 1
        changed = connection.execute(
            update(request_numbers)
            .where(request_numbers.c.year == year, request_numbers.c.last == last)
            .values(last=number)
        )
        if changed.rowcount != 1:
            raise IntegrityError("request number taken", None, Exception("taken"))
    return f"{year}-{number:04d}"


def _one(connection: Connection, request_id: str) -> Request:
    row = connection.execute(select(requests).where(requests.c.request_id == request_id)).first()
    if row is None:
        raise RequestError(f"no request {request_id!r} in the register")
    return _request(row)


def _open_one(connection: Connection, request_id: str) -> Request:
    found = _one(connection, request_id)
    if not found.is_open:
        raise RequestError(
            f"request {request_id} is closed ({found.status} on {_day(found.closed_at)})"
        )
    return found


def _not_a_complaint(found: Request, act: str) -> Request:
    if found.kind is RequestKind.COMPLAINT:
        raise RequestError(
            f"request {found.request_id} is a complaint: it is acknowledged and answered "
            f"(tenure request acknowledge|answer), not {act}"
        )
    return found


def _complaint(connection: Connection, request_id: str) -> Request:
    found = _open_one(connection, request_id)
    if found.kind is not RequestKind.COMPLAINT:
        raise RequestError(f"request {request_id} is a {found.kind.value} request, not a complaint")
    return found


def _change(
    connection: Connection,
    found: Request,
    event: str,
    detail: Mapping[str, Any],
    now: datetime,
    **values: Any,
) -> None:
    """Write ``values`` to the request's row and record ``event``, in the caller's
    transaction."""
    values = {k: _utc(v) if isinstance(v, datetime) else v for k, v in values.items()}
    if values:
        connection.execute(
            update(requests).where(requests.c.request_id == found.request_id).values(**values)
        )
    _record(connection, found.request_id, event, detail, now, current_key())


def _record(
    connection: Connection,
    request_id: str,
    event: str,
    detail: Mapping[str, Any],
    now: datetime,
    key: Any,
) -> None:
    """Append ``event`` to the request's events and its entry to the audit log."""
    now = _utc(now)
    seq = connection.execute(
        select(func.coalesce(func.max(request_events.c.seq), 0)).where(
            request_events.c.request_id == request_id
        )
    ).scalar_one()
    seq = int(seq) + 1
    connection.execute(
        insert(request_events).values(
            request_id=request_id,
            seq=seq,
            at=now,
            event=event,
            detail=json.dumps(dict(detail), sort_keys=True, default=str, ensure_ascii=False),
        )
    )
    after = _one(connection, request_id)
    entry: dict[str, Any] = {
        REQUEST_ID: request_id,
        REQUEST_EVENT: event,
        EVENT_SEQ: seq,
        "request_kind": after.kind.value,
        "at": now.isoformat(),
        "received": after.received.isoformat(),
        "status": after.status,
        "due": after.due.isoformat(),
        "extended_due": None if after.extended_due is None else after.extended_due.isoformat(),
    }
    for name in ("counts", "failed_stores", "package_sha256"):
        if name in detail:
            entry[name] = detail[name]
    append_on(connection, [entry], key)


def _request(row: Any) -> Request:
    return Request(
        request_id=row.request_id,
        policy=row.policy,
        kind=RequestKind(row.kind),
        received=row.received,
        jurisdictions=tuple(Jurisdiction(j) for j in json.loads(row.jurisdictions)),
        language=row.language,
        identifiers=None if row.identifiers is None else json.loads(row.identifiers),
        details=None if row.details is None else json.loads(row.details),
        verified_at=_aware(row.verified_at),
        verified_method=row.verified_method,
        verified_by=row.verified_by,
        status=row.status,
        due=row.due,
        extended_due=row.extended_due,
        decision=row.decision,
        reasons=row.reasons,
        provision=row.provision,
        recourse=row.recourse,
        package_sha256=row.package_sha256,
        package_path=row.package_path,
        counts=None if row.counts is None else json.loads(row.counts),
        failed_stores=[] if row.failed_stores is None else json.loads(row.failed_stores),
        closed_at=_aware(row.closed_at),
        purged_at=_aware(row.purged_at),
    )


def _has_register(engine: Engine) -> bool:
    """False for a state database, opened read-only, made before requests were
    registered (a database opened for writing gets the tables)."""
    return inspect(engine).has_table(requests.name)


def _aware(moment: Any) -> Any:
    """A timestamp read back from a database that drops the zone is UTC."""
    return None if moment is None else utc(moment)


def _day(moment: datetime | None) -> str:
    return "?" if moment is None else moment.date().isoformat()


def _utc(moment: datetime) -> datetime:
    """An instant as UTC, as the state database keeps them (SQLite keeps no offset: a
    wall time of the policy's zone would read back as UTC, hours off)."""
    if moment.tzinfo is None:
        raise ValueError("an instant of the register needs its time zone")
    return moment.astimezone(UTC)
