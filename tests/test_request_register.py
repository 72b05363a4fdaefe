"""The register of requests: its clocks, its refusals and extensions, its own retention,
and the audit log that vouches for it (`tenure audit verify` fails when the register is
edited behind Tenure's back)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select, update

from flows import audit
from flows.rights import register
from flows.rights.register import RequestError
from flows.state.tables import audit as audit_table
from flows.state.tables import open_state, request_events, requests
from retention_rules.deadlines import Jurisdiction, RequestKind
from retention_rules.loader import load_policy
from retention_rules.model import Policy
from tests.support.paths import FIXTURES
from tests.support.request_policy import write_request_policy

NOW = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load_policy(write_request_policy(tmp_path)).policy


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    state = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    yield state
    state.dispose()


def _open(engine: Engine, policy: Policy, **kw: object) -> register.Request:
    values: dict[str, object] = {
        "kind": "access",
        "received": date(2026, 12, 1),
        "identifiers": {"email": ["a@b.ca"], "customer_id": ["17"]},
        "now": NOW,
    }
    values.update(kw)
    return register.open_request(engine, policy, **values)  # type: ignore[arg-type]


def _verified(engine: Engine, policy: Policy, **kw: object) -> register.Request:
    found = _open(engine, policy, **kw)
    return register.verify(engine, found.request_id, "photo ID checked", "J. Tremblay", NOW)


def _verify_log(engine: Engine) -> audit.Verification:
    return audit.verify(engine)


def test_a_request_gets_a_readable_id_and_the_strictest_due_date(
    engine: Engine, policy: Policy
) -> None:
    first = _open(engine, policy)
    second = _open(engine, policy, kind="erasure")
    assert (first.request_id, second.request_id) == ("2026-0001", "2026-0002")
    # Quebec s. 32 and PIPEDA: 30 calendar days.
    assert first.due == date(2026, 12, 31) and first.status == "received"
    assert first.jurisdictions == (Jurisdiction.QUEBEC, Jurisdiction.PIPEDA)
    assert first.identifiers == {"customer_id": ["17"], "email": ["a@b.ca"]}
    assert first.language == "fr"
    earlier = _open(engine, policy, received=date(2025, 3, 1))
    assert earlier.request_id == "2025-0001"


def test_gdpr_added_for_a_person_makes_february_stricter(engine: Engine, policy: Policy) -> None:
    found = _open(engine, policy, received=date(2026, 1, 31), jurisdictions=["gdpr"])
    # 30 days would be 2 March; GDPR's month ends on 28 February.
    assert found.due == date(2026, 2, 28)
    assert Jurisdiction.GDPR in found.jurisdictions


def test_a_withdrawal_is_due_the_day_it_is_received(engine: Engine, policy: Policy) -> None:
    found = _open(
        engine, policy, kind="consent_withdrawal", details={"purpose": "website_analytics"}
    )
    assert found.due == date(2026, 12, 1)
    assert found.details == {"purpose": "website_analytics"}


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"kind": "delete_me"}, "unknown kind 'delete_me'"),
        ({"identifiers": {}}, "no identifiers"),
        ({"identifiers": {"email": ["  "]}}, "name=value, both non-empty"),
        ({"jurisdictions": ["ontario"]}, "unknown jurisdiction 'ontario'"),
        ({"language": "de"}, "unknown language 'de'"),
        ({"received": date(2026, 12, 6)}, "after today (2026-12-05)"),
        ({"kind": "correction"}, "needs --detail category=... --detail value=..."),
        (
            {"kind": "correction", "details": {"category": "contact.fax", "value": "x"}},
            "no category 'contact.fax'",
        ),
        ({"kind": "consent_withdrawal", "details": {"purpose": "x"}}, "no purpose 'x'"),
        ({"details": {"subject": "x"}}, "a access request takes none"),
        ({"kind": "complaint"}, "needs --detail subject=..."),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    engine: Engine, policy: Policy, kw: dict[str, object], message: str
) -> None:
    with pytest.raises(RequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _open(engine, policy, **kw)
    with engine.connect() as connection:
        assert connection.execute(select(requests)).first() is None
        assert connection.execute(select(audit_table)).first() is None


def test_identifiers_must_be_those_the_policy_declares(tmp_path: Path, engine: Engine) -> None:
    policy = load_policy(write_request_policy(tmp_path, subjects=True)).policy
    with pytest.raises(RequestError, match=r"unknown identifier 'phone'.*customer_id, email"):
        _open(engine, policy, identifiers={"phone": ["514"]})
    assert _open(engine, policy).request_id == "2026-0001"


def test_the_policys_requests_section_sets_laws_language_and_promise(
    tmp_path: Path, engine: Engine
) -> None:
    section = "requests:\n  jurisdictions: [gdpr]\n  language: en\n  complaint_period: 14 days\n"
    policy = load_policy(write_request_policy(tmp_path, requests=section)).policy
    complaint = _open(engine, policy, kind="complaint", details={"subject": "late reply"})
    assert complaint.jurisdictions == (Jurisdiction.GDPR,)
    assert complaint.language == "en"
    assert complaint.due == date(2026, 12, 15)


def test_nothing_is_done_for_an_unverified_request(engine: Engine, policy: Policy) -> None:
    found = _open(engine, policy)
    with pytest.raises(RequestError, match="is not verified: record the identity check first"):
        register.begin(engine, found.request_id, NOW)
    assert register.get(engine, found.request_id).status == "received"
    register.verify(engine, found.request_id, "photo ID checked", "J. Tremblay", NOW)
    started = register.begin(engine, found.request_id, NOW)
    assert started.status == "in_progress"
    assert started.verified_method == "photo ID checked" and started.verified_by == "J. Tremblay"


def test_unknown_request_ids_are_refused(engine: Engine) -> None:
    acts: list[Callable[[], object]] = [
        lambda: register.get(engine, "2026-0042"),
        lambda: register.verify(engine, "2026-0042", "m", "b", NOW),
        lambda: register.begin(engine, "2026-0042", NOW),
        lambda: register.refuse(engine, "2026-0042", "r", "p", NOW),
    ]
    for act in acts:
        with pytest.raises(RequestError, match="no request '2026-0042' in the register"):
            act()


def test_a_refusal_needs_reasons_and_provision_and_records_the_recourse(
    engine: Engine, policy: Policy
) -> None:
    found = _open(engine, policy)
    with pytest.raises(RequestError, match="needs its reasons"):
        register.refuse(engine, found.request_id, " ", "s. 39", NOW)
    with pytest.raises(RequestError, match="provision relied on"):
        register.refuse(engine, found.request_id, "litigation", "", NOW)
    refused = register.refuse(engine, found.request_id, "would reveal a third party", "s. 40", NOW)
    assert refused.status == "refused" and refused.closed_at == NOW
    assert refused.provision == "s. 40"
    assert refused.recourse is not None
    assert "Commission d'accès à l'information" in refused.recourse
    assert "Privacy Commissioner of Canada" in refused.recourse
    with pytest.raises(RequestError, match="is closed \\(refused on 2026-12-05\\)"):
        register.verify(engine, found.request_id, "m", "b", NOW)


def test_quebec_forbids_an_extension_pipeda_alone_allows_one_by_its_notice_date(
    engine: Engine, policy: Policy
) -> None:
    quebec = _open(engine, policy)
    with pytest.raises(RequestError, match=r"s\. 32 allows no extension"):
        register.extend(engine, quebec.request_id, "many stores", NOW)
    assert register.get(engine, quebec.request_id).extended_due is None
    pipeda = register.open_request(
        engine,
        policy.model_copy(
            update={
                "requests": policy.requests.model_copy(
                    update={"jurisdictions": [Jurisdiction.PIPEDA]}
                )
            }
        ),
        "access",
        date(2026, 11, 10),
        {"email": ["a@b.ca"]},
        now=NOW,
    )
    assert pipeda.due == date(2026, 12, 10)
    late = NOW.replace(day=11)
    with pytest.raises(RequestError, match="the notice was due by 2026-12-10"):
        register.extend(engine, pipeda.request_id, "records in storage", late)
    with pytest.raises(RequestError, match="no later than 2027-01-09"):
        register.extend(engine, pipeda.request_id, "records", NOW, date(2027, 2, 1))
    extended = register.extend(engine, pipeda.request_id, "records in off-site storage", NOW)
    assert extended.extended_due == date(2027, 1, 9) and extended.current_due == date(2027, 1, 9)
    with pytest.raises(RequestError, match="extended already"):
        register.extend(engine, pipeda.request_id, "again", NOW)
    notice = register.events(engine, pipeda.request_id)[-1]
    assert notice.event == "extended"
    assert notice.detail == {
        "new_due": "2027-01-09",
        "reasons": "records in off-site storage",
        "status": "received",
    }


def test_a_complaint_is_received_acknowledged_extended_then_answered(
    engine: Engine, policy: Policy
) -> None:
    complaint = _open(engine, policy, kind="complaint", details={"subject": "marketing e-mails"})
    assert complaint.due == date(2026, 12, 31)
    with pytest.raises(RequestError, match="is a complaint: it is acknowledged and answered"):
        register.begin(engine, complaint.request_id, NOW)
    register.acknowledge(engine, complaint.request_id, NOW)
    with pytest.raises(RequestError, match="new date of the answer"):
        register.extend(engine, complaint.request_id, "waiting for the vendor", NOW)
    extended = register.extend(
        engine, complaint.request_id, "waiting for the vendor", NOW, date(2027, 1, 20)
    )
    assert extended.status == "acknowledged" and extended.current_due == date(2027, 1, 20)
    with pytest.raises(RequestError, match="reasoned response"):
        register.answer(engine, complaint.request_id, "", NOW)
    answered = register.answer(engine, complaint.request_id, "Your address was removed.", NOW)
    assert answered.status == "answered" and answered.decision == "Your address was removed."
    assert [e.event for e in register.events(engine, complaint.request_id)] == [
        "opened",
        "acknowledged",
        "extended",
        "answered",
    ]
    access = _open(engine, policy)
    with pytest.raises(RequestError, match="is a access request, not a complaint"):
        register.acknowledge(engine, access.request_id, NOW)


def test_a_partial_outcome_is_open_and_a_rerun_fulfils_it(engine: Engine, policy: Policy) -> None:
    found = _verified(engine, policy, kind="erasure")
    with pytest.raises(RequestError, match="not in progress: begin it first"):
        register.record_outcome(
            engine, found.request_id, status="fulfilled", counts={}, failed_stores=[], now=NOW
        )
    register.begin(engine, found.request_id, NOW)
    with pytest.raises(RequestError, match="names the stores that failed"):
        register.record_outcome(
            engine, found.request_id, status="partial", counts={}, failed_stores=[], now=NOW
        )
    partial = register.record_outcome(
        engine,
        found.request_id,
        status="partial",
        counts={"invoices": 3},
        failed_stores=["mail"],
        now=NOW,
    )
    assert partial.is_open and partial.failed_stores == ["mail"] and partial.closed_at is None
    assert [r.request_id for r in register.listing(engine, date(2026, 12, 5))] == [found.request_id]
    register.begin(engine, found.request_id, NOW)
    done = register.record_outcome(
        engine,
        found.request_id,
        status="fulfilled",
        counts={"invoices": 3, "mail": 2},
        failed_stores=[],
        package_sha256="ab" * 32,
        now=NOW,
    )
    assert done.status == "fulfilled" and done.closed_at == NOW and not done.is_open
    assert done.counts == {"invoices": 3, "mail": 2}
    assert register.listing(engine, date(2026, 12, 5)) == []


def test_no_identifier_or_value_reaches_the_events_or_the_audit_log(
    engine: Engine, policy: Policy
) -> None:
    found = _verified(
        engine,
        policy,
        kind="correction",
        identifiers={"email": ["secret.person@example.org"]},
        details={"category": "contact.email", "value": "new.address@example.org"},
    )
    register.begin(engine, found.request_id, NOW)
    register.record_outcome(
        engine,
        found.request_id,
        status="fulfilled",
        counts={"customers": 1},
        failed_stores=[],
        now=NOW,
    )
    with engine.connect() as connection:
        details = [*connection.scalars(select(request_events.c.detail))]
        entries = [*connection.scalars(select(audit_table.c.entry))]
    text = "\n".join(details + entries)
    for value in ("secret.person", "new.address", "J. Tremblay"):
        assert value not in text
    assert "customers" in text  # counts are there
    assert len(entries) == len(details) == 4  # opened, verified, begun, fulfilled
    assert {json.loads(e)["request_id"] for e in entries} == {found.request_id}


def test_audit_verify_vouches_for_the_register(engine: Engine, policy: Policy) -> None:
    _verified(engine, policy)
    _open(engine, policy, kind="complaint", details={"subject": "s"})
    result = _verify_log(engine)
    assert result.ok, result.problems
    assert "register of requests: 2 requests, 3 events" in result.checked


def _tamper_status(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(update(requests).values(status="fulfilled"))


def _tamper_remove_event(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(delete(request_events).where(request_events.c.seq == 2))


def _tamper_forge_event(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(request_events).values(
                request_id="2026-0001", seq=9, at=NOW, event="verified", detail="{}"
            )
        )


def _tamper_remove_request(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(delete(request_events))
        connection.execute(delete(requests))


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (_tamper_status, "request 2026-0001 says status fulfilled, due 2026-12-31; its latest "
         "audit entry says verified"),
        (_tamper_remove_event, "request 2026-0001, event 2 (verified) is in the audit log but "
         "not in the register (removed)"),
        (_tamper_forge_event, "request 2026-0001, event 9 (verified) has no audit entry"),
        (_tamper_remove_request, "request 2026-0001, event 1 (opened) is in the audit log but "
         "not in the register"),
    ],
)  # fmt: skip
def test_audit_verify_sees_the_register_edited_behind_tenures_back(
    engine: Engine, policy: Policy, tamper: object, problem: str
) -> None:
    _verified(engine, policy)
    assert _verify_log(engine).ok
    tamper(engine)  # type: ignore[operator]
    result = _verify_log(engine)
    assert not result.ok
    assert any(problem in line for line in result.problems), result.problems


def test_the_register_keeps_proof_and_drops_identifiers_then_everything(
    engine: Engine, policy: Policy, tmp_path: Path
) -> None:
    package = tmp_path / "2026-0001.zip"
    package.write_bytes(b"zip")
    found = _verified(engine, policy)
    register.begin(engine, found.request_id, NOW)
    register.record_outcome(
        engine,
        found.request_id,
        status="fulfilled",
        counts={"invoices": 2},
        failed_stores=[],
        package_sha256="cd" * 32,
        package_path=package,
        now=NOW,
    )
    still_open = _open(engine, policy, kind="erasure")
    # Within the purpose's minimum retention (1 year) nothing is dropped.
    assert register.purge(engine, policy, NOW + timedelta(days=300)) == 0
    assert package.exists()
    dropped = register.purge_register(engine, policy, NOW + timedelta(days=370))
    assert dropped.purged == (found.request_id,) and dropped.deleted == ()
    kept = register.get(engine, found.request_id)
    assert kept.identifiers is None and kept.details is None and kept.package_path is None
    assert kept.package_sha256 == "cd" * 32 and kept.counts == {"invoices": 2}
    assert kept.purged_at is not None and kept.status == "fulfilled"
    assert not package.exists()
    assert register.purge(engine, policy, NOW + timedelta(days=371)) == 0  # done once
    assert _verify_log(engine).ok
    # After the maximum (3 years) the record goes, events and all; open requests stay.
    gone = register.purge_register(engine, policy, NOW + timedelta(days=3 * 366))
    assert gone.deleted == (found.request_id,)
    with pytest.raises(RequestError, match="no request"):
        register.get(engine, found.request_id)
    assert register.events(engine, found.request_id) == []
    assert register.get(engine, still_open.request_id).identifiers is not None
    result = _verify_log(engine)
    assert result.ok, result.problems
    deleted = [e for e in audit.entries(engine) if e.get("request_event") == "deleted"]
    assert [e["request_id"] for e in deleted] == [found.request_id]
    # A later request of the same year never gets the deleted one's id.
    assert _open(engine, policy, received=date(2026, 12, 2)).request_id == "2026-0003"


def test_purge_needs_a_purpose_for_the_register(tmp_path: Path, engine: Engine) -> None:
    text = (FIXTURES / "minimal.yaml").read_text()
    path = tmp_path / "bare.yaml"
    path.write_text(text)
    with pytest.raises(RequestError, match=r"name one in requests\.purpose"):
        register.purge(engine, load_policy(path).policy, NOW)


@settings(max_examples=60, deadline=None)
@given(
    received=st.dates(date(2025, 1, 1), date(2026, 12, 5)),
    today=st.dates(date(2025, 1, 1), date(2027, 6, 30)),
    kind=st.sampled_from([k for k in RequestKind if k is not RequestKind.COMPLAINT]),
)
def test_days_left_is_calendar_days_to_the_due_date(
    received: date, today: date, kind: RequestKind, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("days")
    policy = load_policy(write_request_policy(folder)).policy
    state = open_state(f"sqlite:///{folder / 'state.sqlite'}")
    try:
        details = {
            RequestKind.CORRECTION: {"category": "contact.email", "value": "x"},
            RequestKind.CONSENT_WITHDRAWAL: {"purpose": "website_analytics"},
        }.get(kind)
        found = _open(state, policy, kind=kind.value, received=received, details=details)
        assert found.days_left(today) == (found.due - today).days
        assert found.due >= received
        listed = register.listing(state, today)
        assert [r.request_id for r in listed] == [found.request_id]
    finally:
        state.dispose()


def test_the_register_on_a_postgresql_state_database(pg_url: str, policy: Policy) -> None:
    """Dates, zoned timestamps and the audit chain read back the same from a server."""
    state = open_state(pg_url)
    try:
        found = _verified(state, policy, received=date(2026, 11, 30))
        register.begin(state, found.request_id, NOW)
        done = register.record_outcome(
            state,
            found.request_id,
            status="partial",
            counts={"invoices": 1},
            failed_stores=["mail"],
            now=NOW,
        )
        assert done.received == date(2026, 11, 30) and done.due == date(2026, 12, 30)
        assert done.verified_at == NOW and done.failed_stores == ["mail"]
        assert [r.request_id for r in register.listing(state, date(2026, 12, 5))] == ["2026-0001"]
        result = audit.verify(state)
        assert result.ok, result.problems
        assert "register of requests: 1 requests, 4 events" in result.checked
    finally:
        state.dispose()


def test_instants_given_in_the_policys_zone_are_kept_as_the_same_instants(
    engine: Engine, policy: Policy
) -> None:
    """The CLI passes "now" in the policy's zone; SQLite keeps no offset, so a wall time
    stored as given read back five hours off (opened 23:49, begun 04:49 the same night)."""
    from zoneinfo import ZoneInfo

    evening = datetime(2026, 12, 4, 23, 30, tzinfo=ZoneInfo("America/Montreal"))
    found = _open(engine, policy, now=evening)
    checked = register.verify(engine, found.request_id, "photo ID", "J. Tremblay", evening)
    assert checked.verified_at == evening
    (opened, verified) = register.events(engine, found.request_id)
    assert opened.at == evening and verified.at == evening
