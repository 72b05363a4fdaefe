"""`tenure request …` and `tenure requests`, as a privacy officer types them: ids and due
dates printed, days left counted across a month end, overdue requests exit 1, and bad
input one line with exit code 2 and nothing written."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from flows.cli import app
from flows.state.tables import audit as audit_table
from flows.state.tables import requests
from tests.support.paths import FIXTURES
from tests.support.request_policy import write_request_policy

runner = CliRunner()


@pytest.fixture
def policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The minimal fixture with the register's purpose, its store an empty SQLite file."""
    path = write_request_policy(tmp_path)
    create_engine(f"sqlite:///{tmp_path / 'crm.sqlite'}").connect().close()
    monkeypatch.setenv("TENURE_CRM_URL", f"sqlite:///{tmp_path / 'crm.sqlite'}")
    monkeypatch.delenv("TENURE_STATE_URL", raising=False)
    return path


def _state(policy: Path) -> str:
    return str(policy.parent / "state.sqlite")


def tenure(policy: Path, *args: str) -> tuple[int, str, str]:
    """``tenure <args[0]> POLICY <args[1:]> --state …``; exit code, stdout, stderr."""
    command, *rest = args
    words = command.split()
    result = runner.invoke(app, [*words, str(policy), *rest, "--state", _state(policy)])
    return result.exit_code, result.stdout, result.stderr


def _open(policy: Path, *args: str) -> str:
    code, out, err = tenure(policy, "request open", *args)
    assert code == 0, err
    return out.split()[1]  # "request 2026-0001 opened: ..."


def _count(policy: Path, table: object) -> int:
    engine = create_engine(f"sqlite:///{_state(policy)}")
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_open_prints_the_id_and_the_due_date(policy: Path) -> None:
    code, out, err = tenure(
        policy,
        "request open",
        "--kind",
        "access",
        "--received",
        "2026-12-01",
        "--id",
        "email=a@b.ca",
        "--id",
        "customer_id=17",
    )
    assert code == 0, err
    assert out.startswith("request 2026-0001 opened: access, received 2026-12-01, due 2026-12-31")
    assert "s. 32" in out and "PIPEDA" in out
    assert "tenure request verify" in out
    assert "state:" in err  # where the register is, on stderr


def test_the_whole_life_of_an_access_request_shown(policy: Path) -> None:
    request_id = _open(
        policy, "--kind", "access", "--received", "2026-12-01", "--id", "email=a@b.ca"
    )
    code, out, err = tenure(
        policy, "request verify", request_id, "--method", "photo ID checked", "--by", "J. Tremblay"
    )
    assert code == 0, err
    assert f"request {request_id} verified: verified, due 2026-12-31" in out
    code, out, err = tenure(policy, "request show", request_id, "--today", "2026-12-29")
    assert code == 0, err
    for shown in (
        "photo ID checked (by J. Tremblay)",
        "email: a@b.ca",
        "2 (due soon)",
        "deemed a refusal (s. 32)",
        "Commission d'accès à",
        "opened",
        "verified",
    ):
        assert shown in out, shown
    code, out, err = tenure(policy, "request show", request_id, "--json", "--today", "2027-01-02")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["days_left"] == -2 and shown["flag"] == "OVERDUE"
    assert [e["event"] for e in shown["events"]] == ["opened", "verified"]


def test_requests_counts_days_across_a_month_end_and_exits_1_when_overdue(
    policy: Path,
) -> None:
    # Received 2026-11-20: 30 calendar days is 2026-12-20 (November has 30 days).
    first = _open(policy, "--kind", "erasure", "--received", "2026-11-20", "--id", "email=a@b.ca")
    second = _open(policy, "--kind", "access", "--received", "2026-12-01", "--id", "email=c@d.ca")
    code, out, err = tenure(policy, "requests", "--today", "2026-11-30", "--json")
    assert code == 0, err
    listed = {r["request_id"]: (r["due"], r["days_left"], r["flag"]) for r in json.loads(out)}
    assert listed == {first: ("2026-12-20", 20, ""), second: ("2026-12-31", 31, "")}
    code, out, err = tenure(policy, "requests", "--today", "2026-12-16")
    assert code == 0, err
    assert "due soon" in out and "OVERDUE" not in out
    assert "2 open request(s): 0 overdue, 1 due within 5 days" in out
    # Across the year's end: 2027-01-01 is 12 days past the first, 1 past the second.
    code, out, err = tenure(policy, "requests", "--today", "2027-01-01", "--json")
    assert code == 1
    overdue = {r["request_id"]: (r["days_left"], r["flag"]) for r in json.loads(out)}
    assert overdue == {first: (-12, "OVERDUE"), second: (-1, "OVERDUE")}
    code, out, _ = tenure(policy, "requests", "--today", "2027-01-01")
    assert code == 1 and "OVERDUE" in out and "2 open request(s): 2 overdue" in out


def test_closed_requests_are_not_listed(policy: Path) -> None:
    request_id = _open(
        policy, "--kind", "access", "--received", "2026-12-01", "--id", "email=a@b.ca"
    )
    code, out, err = tenure(
        policy, "request refuse", request_id, "--reason", "a third party", "--provision", "s. 40"
    )
    assert code == 0, err
    assert "recourse: Commission d'accès à l'information du Québec (s. 42)" in out
    code, out, _ = tenure(policy, "requests", "--today", "2027-06-01")
    assert code == 0 and "0 open request(s)" in out


def test_a_complaint_from_received_to_answered(policy: Path) -> None:
    request_id = _open(
        policy, "--kind", "complaint", "--id", "email=a@b.ca", "--detail", "subject=spam"
    )
    code, out, err = tenure(policy, "request acknowledge", request_id)
    assert code == 0 and "acknowledged: acknowledged" in out, err
    code, out, err = tenure(
        policy,
        "request extend",
        request_id,
        "--reason",
        "the vendor has not answered",
        "--new-due",
        "2027-02-15",
    )
    assert code == 0, err
    assert "due 2027-02-15" in out
    code, out, err = tenure(
        policy, "request answer", request_id, "--response", "We removed your address."
    )
    assert code == 0 and "answered: answered, closed" in out, err


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("request open", "--kind", "delete", "--id", "email=a"), "error: --kind: unknown kind"),
        (("request open", "--kind", "access", "--id", "email"), "error: --id: expected name=value"),
        (
            ("request open", "--kind", "access", "--id", "email=a", "--jurisdiction", "mars"),
            "error: --jurisdiction: unknown jurisdiction 'mars'",
        ),
        (
            ("request open", "--kind", "access", "--id", "email=a", "--received", "2099-01-01"),
            "error: --received: 2099-01-01 is after today",
        ),
        (
            ("request open", "--kind", "correction", "--id", "email=a"),
            "error: --detail: a correction request needs --detail category=... --detail value=...",
        ),
    ],
)
def test_bad_input_to_open_is_one_line_exit_2_nothing_written(
    policy: Path, args: tuple[str, ...], line: str
) -> None:
    code, _, err = tenure(policy, *args)
    assert code == 2
    assert err.splitlines()[-1].startswith(line), err
    assert len(err.strip().splitlines()) <= 2  # the state line, if any, and the error
    assert not Path(_state(policy)).exists() or _count(policy, requests) == 0


def test_bad_input_to_a_request_is_one_line_exit_2_nothing_written(policy: Path) -> None:
    code, _, err = tenure(policy, "request verify", "2026-0001", "--method", "m", "--by", "b")
    assert code == 2 and "no state database" in err
    assert not Path(_state(policy)).exists()  # nothing created for a request that is not there
    request_id = _open(
        policy, "--kind", "access", "--received", "2026-12-01", "--id", "email=a@b.ca"
    )
    entries = _count(policy, audit_table)
    for args, line in [
        (
            ("request verify", "2026-0042", "--method", "m", "--by", "b"),
            "error: no request '2026-0042' in the register",
        ),
        (("request show", "2026-0042"), "error: no request '2026-0042' in the register"),
        (
            ("request refuse", request_id, "--reason", "r"),
            "error: a refusal needs its reasons (--reason) and the provision relied on",
        ),
        (
            ("request extend", request_id, "--reason", "busy"),
            f"error: request {request_id} cannot be extended: Act respecting the protection of "
            "personal information in the private sector, s. 32 allows no extension",
        ),
        (
            ("request acknowledge", request_id),
            f"error: request {request_id} is a access request, not a complaint",
        ),
    ]:
        code, _, err = tenure(policy, *args)
        assert code == 2, (args, err)
        assert err.splitlines()[-1].startswith(line), err
    assert _count(policy, audit_table) == entries


def test_no_audit_key_no_request(policy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENURE_AUDIT_KEY")
    code, _, err = tenure(policy, "request open", "--kind", "access", "--id", "email=a@b.ca")
    assert code == 2 and "TENURE_AUDIT_KEY" in err
    assert not Path(_state(policy)).exists()


def test_audit_verify_passes_with_requests_and_names_the_register(policy: Path) -> None:
    request_id = _open(
        policy, "--kind", "access", "--received", "2026-12-01", "--id", "email=a@b.ca"
    )
    tenure(policy, "request verify", request_id, "--method", "m", "--by", "b")
    code, out, err = tenure(policy, "audit verify")
    assert code == 0, err
    assert "audit log intact: 2 entries" in out
    assert "matches register of requests: 1 requests, 2 events" in out


def test_purge_reports_what_it_did(policy: Path) -> None:
    _open(policy, "--kind", "access", "--id", "email=a@b.ca")
    code, out, err = tenure(policy, "request purge")
    assert code == 0, err
    assert out.strip() == (
        "register purged under purpose manage_choices_and_rights: 0 request(s) lost their "
        "identifiers and package, 0 deleted"
    )


def test_today_is_the_policys_day() -> None:
    """The default day of `--received` and `--today` is the policy's, not UTC's."""
    from flows.rights.cli import _now
    from retention_rules.loader import load_policy

    loaded = load_policy(FIXTURES / "minimal.yaml")
    now = _now(loaded)
    assert str(now.tzinfo) == "America/Montreal"
    assert abs((now - datetime.now(UTC)).total_seconds()) < 60
    assert now.date() in {
        datetime.now(UTC).date(),
        date.fromordinal(datetime.now(UTC).toordinal() - 1),
    }
