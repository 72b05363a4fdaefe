"""``tenure request …`` and ``tenure requests``: the register of requests from people.

Bad input (an unknown request, an unverified request asked to act, a refusal without its
reasons, an extension the law forbids) is one line on stderr and exit code 2, with
nothing written. ``tenure requests`` exits 1 when a request is overdue, so that a
scheduled check can alert on it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import Engine

from flows.cluster import ClusterOptions, cluster_workers
from flows.cluster_cli import DaskOption, WorkersOption
from flows.rights import register
from flows.rights.register import RequestError
from retention_rules.loader import LoadedPolicy, load_policy

request_app = typer.Typer(
    help="Requests from people: access, portability, correction, erasure, consent "
    "withdrawal, complaints.",
    no_args_is_help=True,
)

PolicyArg = Annotated[Path, typer.Argument(help="Retention policy YAML file.", show_default=False)]
IdArg = Annotated[str, typer.Argument(help="The request's id, e.g. 2026-0001.", show_default=False)]
StateOption = Annotated[
    str | None,
    typer.Option(
        envvar="TENURE_STATE_URL",
        help="State database holding the register (found as by `tenure run`).",
        show_default=False,
    ),
]
DayOption = Annotated[
    datetime | None,
    typer.Option(formats=["%Y-%m-%d"], help="Count days left as on this day (default: today)."),
]


@contextmanager
def _reported() -> Iterator[None]:
    """The main command line's one line per problem and exit code 2, and the same for a
    request that cannot be recorded or changed as asked."""
    from flows.cli import EXIT_INVALID, _state, stderr
    from flows.cli import _reported as reported

    with reported():
        try:
            yield
        except RequestError as exc:
            if _state["debug"]:
                raise
            stderr.print(f"error: {exc}", markup=False)
            raise typer.Exit(EXIT_INVALID) from None


def _loaded(policy: Path) -> LoadedPolicy:
    with _reported():
        return load_policy(policy)


@contextmanager
def _register(loaded: LoadedPolicy, state: str | None, *, existing: bool) -> Iterator[Engine]:
    """The state database, to write the register: created for a new request; for one
    that must exist already, a missing database is one line and nothing is created."""
    from flows.audit import current_key
    from flows.cli import _print_state, stderr
    from flows.state.location import state_location

    with _reported():
        current_key()  # no audit key: one line, exit 2, nothing written
        location = state_location(loaded, state)
        if existing:
            location.open().dispose()
        engine = location.open(create=True)
    _print_state(location, stderr)
    try:
        yield engine
    finally:
        engine.dispose()


def _now(loaded: LoadedPolicy) -> datetime:
    """Now, in the policy's time zone: a request's days are the policy's days."""
    return datetime.now(ZoneInfo(loaded.policy.timezone))


def _today(loaded: LoadedPolicy, today: datetime | None) -> date:
    return today.date() if today is not None else _now(loaded).date()


def _pairs(option: str, given: list[str]) -> list[tuple[str, str]]:
    """``name=value`` options as pairs: a value may hold ``=``, a name may not."""
    pairs = []
    for text in given:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise RequestError(f"{option}: expected name=value (e.g. {option} email=...)")
        pairs.append((name.strip(), value))
    return pairs


@request_app.command("open")
def open_command(
    policy: PolicyArg,
    kind: Annotated[
        str,
        typer.Option(
            help="access, portability, correction, erasure, consent_withdrawal or complaint."
        ),
    ],
    identifier: Annotated[
        list[str],
        typer.Option("--id", help="An identifier given, as name=value (repeat for several)."),
    ],
    received: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="The day it was received (default: today)."),
    ] = None,
    jurisdiction: Annotated[
        list[str] | None,
        typer.Option(help="A law applying to this person besides the policy's (e.g. gdpr)."),
    ] = None,
    lang: Annotated[
        str | None, typer.Option(help="fr or en (default: the policy's language).")
    ] = None,
    detail: Annotated[
        list[str] | None,
        typer.Option(
            help="What the kind needs, as key=value: a correction's category and value, a "
            "withdrawal's purpose, a complaint's subject."
        ),
    ] = None,
    state: StateOption = None,
) -> None:
    """Record a request received from a person; prints its id and its due date."""
    from flows.cli import stdout

    loaded = _loaded(policy)
    now = _now(loaded)
    with _reported():
        identifiers: dict[str, list[str]] = {}
        for name, value in _pairs("--id", identifier):
            identifiers.setdefault(name, []).append(value)
        details = dict(_pairs("--detail", detail or []))
        day = received.date() if received is not None else now.date()
    with _register(loaded, state, existing=False) as engine, _reported():
        found = register.open_request(
            engine,
            loaded.policy,
            kind,
            day,
            identifiers,
            details=details,
            jurisdictions=jurisdiction,
            language=lang,
            now=now,
        )
    rules = found.deadline(register.request_settings(loaded.policy).complaint_period)
    stdout.print(
        f"request {found.request_id} opened: {found.kind.value}, received "
        f"{found.received.isoformat()}, due {found.due.isoformat()} "
        f"({found.days_left(now.date())} days left; "
        f"{'; '.join(rule.provision for rule in rules.governing)})",
        markup=False,
        soft_wrap=True,
    )
    if found.verified_at is None and found.kind.value != "complaint":
        stdout.print(
            f"next: check the person's identity, then `tenure request verify {policy} "
            f"{found.request_id} --method ... --by ...`",
            markup=False,
            soft_wrap=True,
        )


@request_app.command("verify")
def verify_command(
    policy: PolicyArg,
    request_id: IdArg,
    method: Annotated[str, typer.Option(help="How the identity was checked.")],
    by: Annotated[str, typer.Option(help="Who checked it.")],
    state: StateOption = None,
) -> None:
    """Record the check of the person's identity: Tenure acts only on a verified request."""
    loaded = _loaded(policy)
    with _register(loaded, state, existing=True) as engine, _reported():
        found = register.verify(engine, request_id, method, by, _now(loaded))
    _said(found, loaded, "verified")


@request_app.command("refuse")
def refuse_command(
    policy: PolicyArg,
    request_id: IdArg,
    reason: Annotated[str, typer.Option(help="The reasons given to the person.")] = "",
    provision: Annotated[str, typer.Option(help="The provision relied on.")] = "",
    state: StateOption = None,
) -> None:
    """Refuse a request, with its reasons and the provision relied on.

    The person's recourse is recorded from the rules that govern the request."""
    from flows.cli import stdout

    loaded = _loaded(policy)
    with _register(loaded, state, existing=True) as engine, _reported():
        found = register.refuse(engine, request_id, reason, provision, _now(loaded))
    _said(found, loaded, "refused")
    stdout.print(f"recourse: {found.recourse}", markup=False, soft_wrap=True)


@request_app.command("extend")
def extend_command(
    policy: PolicyArg,
    request_id: IdArg,
    reason: Annotated[str, typer.Option(help="The reasons given to the person.")] = "",
    new_due: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="The new due date (default for a request: the latest the law allows; "
            "required for a complaint).",
        ),
    ] = None,
    state: StateOption = None,
) -> None:
    """Extend a request's deadline, with the reasons the notice gives.

    Only where every applicable law allows it (never under Quebec's s. 32), once, by the
    notice date; a complaint as the policy promises, to a new date given."""
    loaded = _loaded(policy)
    with _register(loaded, state, existing=True) as engine, _reported():
        new = new_due.date() if new_due is not None else None
        found = register.extend(engine, request_id, reason, _now(loaded), new)
    _said(found, loaded, "extended")


@request_app.command("acknowledge")
def acknowledge_command(policy: PolicyArg, request_id: IdArg, state: StateOption = None) -> None:
    """Record that a complaint's receipt was acknowledged to the person."""
    loaded = _loaded(policy)
    with _register(loaded, state, existing=True) as engine, _reported():
        found = register.acknowledge(engine, request_id, _now(loaded))
    _said(found, loaded, "acknowledged")


@request_app.command("answer")
def answer_command(
    policy: PolicyArg,
    request_id: IdArg,
    response: Annotated[str, typer.Option(help="The reasoned response sent.")] = "",
    state: StateOption = None,
) -> None:
    """Record a complaint's reasoned response, which closes it."""
    loaded = _loaded(policy)
    with _register(loaded, state, existing=True) as engine, _reported():
        found = register.answer(engine, request_id, response, _now(loaded))
    _said(found, loaded, "answered")


def _said(found: register.Request, loaded: LoadedPolicy, done: str) -> None:
    """One line: what was recorded, and where the request stands."""
    from flows.cli import stdout

    where = (
        f"due {found.current_due.isoformat()} ({found.days_left(_now(loaded).date())} days left)"
        if found.is_open
        else "closed"
    )
    line = f"request {found.request_id} {done}: {found.status}, {where}"
    stdout.print(line, markup=False, soft_wrap=True)


@request_app.command("show")
def show_command(
    policy: PolicyArg,
    request_id: IdArg,
    today: DayOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    state: StateOption = None,
) -> None:
    """A request: its fields, its events, the deadline rules applied and its days left."""
    from flows.cli import _state_of, stdout
    from flows.reports.requests import events_table, request_json, request_table, rules_table
    from flows.reports.table import to_rich

    loaded = _loaded(policy)
    day = _today(loaded, today)
    engine = _state_of(loaded, state)
    try:
        with _reported():
            found = register.get(engine, request_id)
            happened = register.events(engine, request_id)
    finally:
        engine.dispose()
    rules = found.deadline(register.request_settings(loaded.policy).complaint_period)
    if as_json:
        shown = request_json(found, day)
        shown["events"] = [
            {"seq": e.seq, "at": e.at.isoformat(), "event": e.event, "detail": e.detail}
            for e in happened
        ]
        shown["rules"] = [rule.provision for rule in rules.applicable]
        json.dump(shown, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    zone = ZoneInfo(loaded.policy.timezone)
    stdout.print(to_rich(request_table(found, day, zone)))
    stdout.print(to_rich(events_table(happened, zone)))
    stdout.print(to_rich(rules_table(rules)))


@request_app.command("purge")
def purge_command(policy: PolicyArg, state: StateOption = None) -> None:
    """Apply the register's own retention (requests.purpose).

    A request closed for longer than the purpose's minimum retention loses its
    identifiers, details and package file; one closed for longer than its maximum is
    deleted with its events. Open requests are never purged."""
    from flows.cli import stdout

    loaded = _loaded(policy)
    with _register(loaded, state, existing=True) as engine, _reported():
        done = register.purge_register(engine, loaded.policy, _now(loaded))
    stdout.print(
        f"register purged under purpose {done.purpose}: {len(done.purged)} request(s) "
        f"lost their identifiers and package, {len(done.deleted)} deleted",
        markup=False,
        soft_wrap=True,
    )


def requests_command(
    policy: PolicyArg,
    today: DayOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    state: StateOption = None,
) -> None:
    """The open requests with their days left; exit 1 when one is overdue.

    Flagged "due soon" within 5 days and "OVERDUE" past due: a scheduled check alerts
    on the exit code."""
    from flows.cli import EXIT_FAILED, _state_of, stdout
    from flows.reports.requests import flag, open_requests_table, request_json, summary_line
    from flows.reports.table import to_rich

    loaded = _loaded(policy)
    day = _today(loaded, today)
    engine = _state_of(loaded, state)
    try:
        found = register.listing(engine, day)
    finally:
        engine.dispose()
    if as_json:
        rows = [request_json(r, day) for r in found]
        json.dump(rows, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif found:
        stdout.print(to_rich(open_requests_table(found, day)))
    else:
        stdout.print(summary_line(found, day), markup=False)
    if any(flag(r, day) == "OVERDUE" for r in found):
        raise typer.Exit(EXIT_FAILED)


@request_app.command("fulfil")
def fulfil_command(
    policy: PolicyArg,
    request_id: IdArg,
    out: Annotated[
        Path | None,
        typer.Option(help="Where an access package goes: a .zip path or a folder (default: .)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Count what would be erased, corrected or withdrawn; change nothing."
        ),
    ] = False,
    now: Annotated[
        datetime | None, typer.Option(help="Act as at this instant (default: now).")
    ] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Rows per transaction.")] = 10_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    state: StateOption = None,
    dask: DaskOption = None,
    workers: WorkersOption = None,
) -> None:
    """Answer a verified request from every store the policy binds.

    Access and portability write one package (JSON, CSV per dataset, a page in the
    person's language, in one zip); erasure, withdrawal and correction run the retention
    engine for the person alone. A store that fails leaves the request partial, with the
    store named and the rest done (exit 1): fulfilling it again does what is left."""
    from flows.cli import EXIT_FAILED, EXIT_LOCKED, stderr, stdout
    from flows.reports.requests import fulfilment_json, render_fulfilment
    from flows.rights.fulfil import fulfil
    from flows.rights.people import RequestRefused
    from flows.run.types import RunOptions
    from flows.state.ledger import RunLocked

    loaded = _loaded(policy)
    options = RunOptions(dry_run=dry_run, chunk_size=chunk_size, now=now, state_url=state)
    with _reported():
        cluster = ClusterOptions(dask, workers)
        if not dry_run:
            from flows.audit import current_key

            current_key()  # no audit key: one line, exit 2, nothing touched
        try:
            with cluster_workers(cluster):  # the access package's free text is redacted there
                done = fulfil(loaded.path, request_id, options, out=out)
        except RequestRefused as exc:
            raise RequestError(str(exc)) from None
        except RunLocked as exc:
            stderr.print(f"error: {exc}", markup=False)
            raise typer.Exit(EXIT_LOCKED) from None
    if as_json:
        json.dump(fulfilment_json(done), sys.stdout, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write("\n")
    else:
        render_fulfilment(stdout, done, dry_run=dry_run)
    if done.failed:
        raise typer.Exit(EXIT_FAILED)
