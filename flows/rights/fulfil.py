"""Fulfil a verified request: the one entry point of the command, the Prefect flow and
the tests.

Access and portability read every bound store and write one package; erasure, consent
withdrawal and correction run the retention engine for the person
(``flows.rights.erasure``). A store that fails leaves the request ``partial`` with the
failed stores named and the rest done; fulfilling it again does what is left. The
register keeps counts, hashes and the stores that failed, never a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.rights import register
from flows.rights.access import collect
from flows.rights.erasure import PersonRun, correct, erase, withdraw
from flows.rights.package import AccessPackage, PackageFile, write_package
from flows.rights.people import Person, RequestRefused, check_person, resolve
from flows.run.types import RunOptions
from flows.state.location import state_location
from flows.stores import opened_stores
from retention_rules.clock import PolicyClock
from retention_rules.deadlines import RequestKind
from retention_rules.loader import load_policy
from retention_rules.planner import plan_rules, table_references


@dataclass
class Fulfilment:
    """What fulfilling one request did."""

    request: register.Request
    status: str
    package: PackageFile | None = None
    run: PersonRun | None = None
    failed: dict[str, str] = field(default_factory=dict)
    """Dataset -> why it could not be done."""
    counts: dict[str, Any] = field(default_factory=dict)


def fulfil(
    path: str | Path,
    request_id: str,
    options: RunOptions,
    *,
    out: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Fulfilment:
    """Answer the request ``request_id`` now. Raises `RequestRefused` (nothing changed)
    when it cannot be acted on as asked: unverified, unknown identifiers, two people."""
    loaded = load_policy(path, environ)
    policy = loaded.policy
    clock = PolicyClock.at(policy.timezone, options.now)
    state = state_location(loaded, options.state_url).open(create=not options.dry_run)
    try:
        request = register.get(state, request_id)
        if request.kind == RequestKind.COMPLAINT:
            raise RequestRefused(
                f"request {request_id} is a complaint: answer it with `tenure request answer`"
            )
        given = request.identifiers
        if given is None:
            raise RequestRefused(f"request {request_id}: its identifiers were purged")
        if request.verified_at is None:
            raise RequestRefused(
                f"request {request_id} is not verified: record the identity check first "
                f"(tenure request verify POLICY {request_id} --method ... --by ...)"
            )
        identifiers = {k: list(v) for k, v in given.items()}
        details = request.details or {}
        # Before the request is begun and a run started: two people behind the
        # identifiers, or nobody, leave nothing to undo and the request as it was.
        check_person(policy, identifiers)
        if not options.dry_run:
            request = register.begin(state, request_id, now=clock.now)

        def keep(person: Person) -> None:
            if not options.dry_run:
                register.record_identifiers(state, request_id, person.identifiers, clock.now)

        kind = RequestKind(request.kind)
        if kind in (RequestKind.ACCESS, RequestKind.PORTABILITY):
            done = _access(loaded.path, policy, request, identifiers, clock, out, environ)
        elif kind is RequestKind.ERASURE:
            run = erase(loaded.path, identifiers, options, environ=environ, on_resolved=keep)
            done = _from_run(request, run)
        elif kind is RequestKind.CONSENT_WITHDRAWAL:
            purposes = _purposes(policy, details)
            run = withdraw(
                loaded.path, identifiers, purposes, options, environ=environ, on_resolved=keep
            )
            done = _from_run(request, run)
        elif kind is RequestKind.CORRECTION:
            category, value = details.get("category"), details.get("value")
            if not category or value is None:
                raise RequestRefused(
                    f"request {request_id}: a correction needs --detail category=... "
                    "and --detail value=..."
                )
            run = correct(
                loaded.path,
                identifiers,
                str(category),
                str(value),
                options,
                column=details.get("column"),
                environ=environ,
                on_resolved=keep,
            )
            done = _from_run(request, run)
        else:  # pragma: no cover - RequestKind is exhaustive above
            raise RequestRefused(f"request {request_id}: unknown kind {request.kind}")
        if options.dry_run:
            return done
        stores = sorted({policy.dataset(name).store for name in done.failed})
        done.request = register.record_outcome(
            state,
            request_id,
            status=done.status,
            counts=done.counts,
            failed_stores=stores,
            package_sha256=done.package.sha256 if done.package else None,
            package_path=done.package.path if done.package else None,
            now=clock.now if options.now is not None else datetime.now(UTC),
        )
        return done
    finally:
        state.dispose()


def _purposes(policy: Any, details: Mapping[str, Any]) -> set[str]:
    """The purposes a withdrawal names (``purpose=marketing``), or every purpose that
    rests on consent."""
    named = details.get("purpose")
    if named:
        return {p.strip() for p in str(named).split(",") if p.strip()}
    return {name for name, p in policy.purposes.items() if p.legal_basis == "consent"}


def _access(
    path: Path,
    policy: Any,
    request: register.Request,
    identifiers: Mapping[str, list[str]],
    clock: PolicyClock,
    out: Path | None,
    environ: Mapping[str, str] | None,
) -> Fulfilment:
    del path, environ
    kind = RequestKind(request.kind)
    with opened_stores(policy, read_only=True) as (connectors, issues):
        person, found = resolve(policy, connectors, identifiers)
        for issue in issues:  # a store that could not be opened: its datasets failed
            store = issue.loc[1]
            for dataset in policy.datasets:
                if dataset.store == store:
                    found.failed.setdefault(dataset.name, issue.message)
        plans = plan_rules(policy, clock, table_references(policy, connectors))
        sections = collect(
            policy,
            connectors,
            person,
            found,
            plans,
            clock.now,
            portability=kind is RequestKind.PORTABILITY,
            language=request.language,
        )
    if not any(s.section.records for s in sections) and not any(s.section.failed for s in sections):
        raise RequestRefused(
            f"request {request.request_id}: no record of anyone with these identifiers "
            "in any bound store"
        )
    package = AccessPackage(
        request_id=request.request_id,
        kind="portability" if kind is RequestKind.PORTABILITY else "access",
        generated_at=clock.local_now(),
        language=request.language,  # type: ignore[arg-type]
        organisation=policy.description or policy.name,
        person={k: sorted(v) for k, v in person.identifiers.items()},
        sections=[s.section for s in sections],
    )
    target = out or Path(".")
    if target.suffix != ".zip":
        target = target / f"tenure-{request.request_id}-{package.kind}.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        written = write_package(package, target)
    except OSError as exc:
        raise RequestRefused(f"--out: cannot write {target}: {exc.strerror}") from None
    failed = {s.section.dataset: s.section.failed for s in sections if s.section.failed}
    return Fulfilment(
        request,
        "partial" if failed else "fulfilled",
        package=written,
        failed={k: v for k, v in failed.items() if v},
        counts={"records": written.counts, "package": target.name},
    )


def _from_run(request: register.Request, run: PersonRun) -> Fulfilment:
    return Fulfilment(
        request,
        "partial" if run.failed else "fulfilled",
        run=run,
        failed=dict(run.failed),
        counts={
            "run_id": run.report.run_id,
            "changed": dict(run.changed),
            "remaining": {d: dict(r) for d, r in run.remaining.items()},
            **({"skipped": list(run.skipped)} if run.skipped else {}),
        },
    )
