"""An audit log that proves something: each tampering the issue lists makes
`tenure audit verify` fail with a line naming what is wrong, a run whose state database
was lost is audited from the store's journal, and read-only commands never create a state
database."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, delete, func, select, text, update
from typer.testing import CliRunner

from flows import audit
from flows.cli import app
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.state.tables import audit as audit_table
from flows.state.tables import chunks, runs
from tests.support.crash_runner import kill_after
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.paths import FIXTURES

RUN_POLICY = FIXTURES / "run_policy.yaml"
CHUNK = 40
runner = CliRunner()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit") / "pristine.sqlite"
    build_demo(f"sqlite:///{path}", customers=120)
    return path


@pytest.fixture
def store(
    pseudonym_keys: dict[str, str], pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A fresh copy of the demo store, named by the run policy; keys set."""
    path = tmp_path / "crm.sqlite"
    shutil.copy(pristine, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("TENURE_CRM_URL", url)
    monkeypatch.delenv("TENURE_STATE_URL", raising=False)
    return url


def _state(tmp_path: Path) -> Path:
    return tmp_path / "state" / "tenure-state.sqlite"


def _run(store: str, tmp_path: Path, **kw: object):  # type: ignore[no-untyped-def]
    options = RunOptions(
        now=DEMO_AS_OF,
        chunk_size=CHUNK,
        state_url=f"sqlite:///{_state(tmp_path)}",
        coverage_gate=False,
        **kw,  # type: ignore[arg-type]
    )
    return run_policy(RUN_POLICY, options, environ={"TENURE_CRM_URL": store})


@pytest.fixture
def audited(store: str, tmp_path: Path) -> Iterator[Engine]:
    """Two real runs (the second finds nothing left to do), their state database open."""
    _state(tmp_path).parent.mkdir()
    assert not _run(store, tmp_path).failed
    assert not _run(store, tmp_path).failed
    engine = create_engine(f"sqlite:///{_state(tmp_path)}")
    yield engine
    engine.dispose()


def _verify(tmp_path: Path) -> tuple[int, str, str]:
    result = runner.invoke(
        app, ["audit", "verify", str(RUN_POLICY), "--state", f"sqlite:///{_state(tmp_path)}"]
    )
    return result.exit_code, result.stdout, result.stderr


def _rows(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as c:
        rows = c.execute(select(audit_table).order_by(audit_table.c.seq)).mappings()
        return [dict(r) for r in rows]


def test_an_untouched_log_verifies(audited: Engine, tmp_path: Path) -> None:
    code, out, err = _verify(tmp_path)
    assert code == 0, err
    assert "audit log intact: 10 entries" in out
    assert "journal" in out  # the store's journal was cross-checked, and it says so


@pytest.mark.parametrize("removed", [2, 7])
def test_deleting_the_last_entries_is_detected(
    audited: Engine, tmp_path: Path, removed: int
) -> None:
    """Five entries per run: two removed leave a run short (its entries say how many it
    wrote); seven remove the second run whole (the ledger knows it) and two of the first."""
    last = max(int(r["seq"]) for r in _rows(audited))  # type: ignore[call-overload]
    with audited.begin() as c:
        c.execute(delete(audit_table).where(audit_table.c.seq > last - removed))
    code, _, err = _verify(tmp_path)
    assert code == 1 and "audit log BROKEN" in err
    assert "2 of its 5 audit entries are missing" in err
    if removed == 7:
        assert "ledger: run" in err and "has no audit entry" in err


def test_emptying_the_audit_table_is_detected(audited: Engine, tmp_path: Path) -> None:
    with audited.begin() as c:
        c.execute(text("DELETE FROM tenure_audit"))
    code, _, err = _verify(tmp_path)
    assert code == 1
    # Both witnesses speak: the ledger's runs and the store's journal.
    assert "ledger" in err and "journal of store 'crm'" in err


def test_emptying_the_log_and_the_ledger_leaves_the_store_journal_to_tell(
    audited: Engine, tmp_path: Path
) -> None:
    with audited.begin() as c:
        for table in (audit_table, runs, chunks):
            c.execute(delete(table))
    code, _, err = _verify(tmp_path)
    assert code == 1
    assert "journal of store 'crm'" in err and "neither in the audit log nor in the ledger" in err


def test_a_deleted_state_database_is_a_failure_and_is_not_recreated(
    audited: Engine, tmp_path: Path
) -> None:
    audited.dispose()
    for path in _state(tmp_path).parent.iterdir():
        path.unlink()
    code, out, err = _verify(tmp_path)
    assert code == 1
    assert "no state database at" in err and "intact" not in out
    assert not _state(tmp_path).exists()


def test_editing_recorded_at_is_detected(audited: Engine, tmp_path: Path) -> None:
    with audited.begin() as c:
        when = c.execute(select(audit_table.c.recorded_at).where(audit_table.c.seq == 2)).scalar()
        assert when is not None
        c.execute(
            update(audit_table)
            .where(audit_table.c.seq == 2)
            .values(recorded_at=when - timedelta(days=30))
        )
    code, _, err = _verify(tmp_path)
    assert code == 1
    assert "entry 2: does not match its HMAC" in err


def _rewrite_and_rechain(engine: Engine, seq: int, rehash) -> None:  # type: ignore[no-untyped-def]
    """Change entry ``seq`` (its deleted count to 0) and recompute its hash and every later
    one with ``rehash(prev_hash, row) -> hash``, as a forger with database access would."""
    rows = _rows(engine)
    prev = audit.GENESIS
    with engine.begin() as c:
        for row in rows:
            if int(row["seq"]) < seq:  # type: ignore[call-overload]
                prev = row["hash"]
                continue
            entry = str(row["entry"])
            if row["seq"] == seq:
                content = json.loads(entry)
                counter = next(k for k in ("deleted", "anonymized", "aggregated") if k in content)
                content[counter] = 0
                entry = audit.canonical(content)
            row = {**row, "entry": entry, "prev_hash": prev}
            digest = rehash(prev, row)
            c.execute(
                update(audit_table)
                .where(audit_table.c.seq == row["seq"])
                .values(entry=entry, prev_hash=prev, hash=digest)
            )
            prev = digest


def _processing_entry(engine: Engine) -> int:
    for row in _rows(engine):
        content = json.loads(str(row["entry"]))
        if any(content.get(k) for k in ("deleted", "anonymized", "aggregated")):
            return int(row["seq"])  # type: ignore[call-overload]
    raise AssertionError("no entry did anything")


def test_a_rewrite_rechained_with_plain_sha256_is_detected(audited: Engine, tmp_path: Path) -> None:
    def sha256(prev: str, row: dict[str, object]) -> str:
        return hashlib.sha256(f"{prev}\n{row['entry']}".encode()).hexdigest()

    seq = _processing_entry(audited)
    _rewrite_and_rechain(audited, seq, sha256)
    code, _, err = _verify(tmp_path)
    assert code == 1
    assert f"entry {seq}:" in err and "does not match its HMAC" in err


def test_a_rewrite_rechained_with_hmac_under_a_wrong_key_is_detected(
    audited: Engine, tmp_path: Path
) -> None:
    wrong = b"not-the-audit-key-but-long-enough"

    def forged(prev: str, row: dict[str, object]) -> str:
        return audit.entry_hash(
            wrong,
            seq=int(row["seq"]),  # type: ignore[call-overload]
            recorded_at=row["recorded_at"],  # type: ignore[arg-type]
            entry=str(row["entry"]),
            prev_hash=prev,
            key_id=str(row["key_id"]),
        )

    seq = _processing_entry(audited)
    _rewrite_and_rechain(audited, seq, forged)
    code, _, err = _verify(tmp_path)
    assert code == 1
    assert f"entry {seq}:" in err and "does not match its HMAC" in err
    # and the row totals no longer match the store's journal
    assert "row totals" in err


def test_verify_without_the_audit_key_is_one_line_and_exit_2(
    audited: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TENURE_AUDIT_KEY")
    code, _, err = _verify(tmp_path)
    assert code == 2
    assert err.strip().count("\n") == 0 and "TENURE_AUDIT_KEY" in err


def test_a_run_without_the_audit_key_touches_nothing(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anonymizers.secrets import MissingSecret

    monkeypatch.delenv("TENURE_AUDIT_KEY")
    before = hashlib.sha256(Path(store.removeprefix("sqlite:///")).read_bytes()).hexdigest()
    with pytest.raises(MissingSecret, match="TENURE_AUDIT_KEY"):
        _run(store, tmp_path)
    assert not _state(tmp_path).parent.exists()
    after = hashlib.sha256(Path(store.removeprefix("sqlite:///")).read_bytes()).hexdigest()
    assert after == before


def test_a_killed_run_whose_state_database_was_lost_is_audited_from_the_journal(
    store: str, tmp_path: Path
) -> None:
    state = _state(tmp_path)
    state.parent.mkdir()
    assert kill_after(RUN_POLICY, store, state, CHUNK, DEMO_AS_OF, after_chunks=6), (
        "the run must be killed"
    )
    for path in state.parent.iterdir():  # the state database is lost
        path.unlink()
    engine = create_engine(store)
    with engine.connect() as c:
        (killed,) = c.execute(text("SELECT DISTINCT run_id FROM tenure_journal")).scalars()
        journaled = {
            label: int(rows)
            for label, rows in c.execute(
                text("SELECT label, SUM(rows) FROM tenure_journal GROUP BY label")
            )
        }
    engine.dispose()
    assert sum(journaled.values()) > 0

    rerun = _run(store, tmp_path)
    assert not rerun.failed
    assert rerun.reconciled_runs == [killed]
    state_engine = create_engine(f"sqlite:///{state}")
    entries = audit.entries(state_engine, killed)
    with state_engine.connect() as c:
        status = c.execute(select(runs.c.status).where(runs.c.run_id == killed)).scalar_one()
        ledger_rows = c.execute(
            select(func.sum(chunks.c.rows)).where(chunks.c.run_id == killed)
        ).scalar_one()
    state_engine.dispose()
    assert status == "interrupted" and ledger_rows == sum(journaled.values())
    assert {e["status"] for e in entries} == {"interrupted"}
    audited = {
        e["dataset"]: e.get("deleted", 0) + e.get("anonymized", 0) + e.get("aggregated", 0)
        for e in entries
    }
    assert audited == journaled
    code, _, err = _verify(tmp_path)
    assert code == 0, err


READ_ONLY_COMMANDS = [
    ["plan", str(RUN_POLICY), "--now", "2026-11-24T00:00"],
    ["validate", str(RUN_POLICY)],
    ["risk", str(RUN_POLICY)],
    ["aggregates", str(RUN_POLICY)],
    ["register", "export", str(RUN_POLICY)],
    ["audit", "show", str(RUN_POLICY)],
    ["audit", "verify", str(RUN_POLICY)],
]


@pytest.mark.parametrize("args", READ_ONLY_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_read_only_commands_create_no_state_database(
    args: list[str], store: str, tmp_path: Path
) -> None:
    default_state = tmp_path / "tenure-state.sqlite"  # beside the SQLite store
    result = runner.invoke(app, args)
    assert not default_state.exists(), f"{args[0]} created {default_state}"
    assert not list(tmp_path.glob("tenure-state.sqlite*"))
    assert "Traceback" not in result.output
    if result.exit_code not in (0,):  # when it needs the state database, it says so
        assert "no state database at" in result.stderr, result.output


def test_a_dry_run_creates_no_state_database(store: str, tmp_path: Path) -> None:
    report = run_policy(
        RUN_POLICY, RunOptions(now=DEMO_AS_OF, dry_run=True), environ={"TENURE_CRM_URL": store}
    )
    assert report.dry_run and sum(o.expired for o in report.outcomes) > 0
    assert not list(tmp_path.glob("tenure-state.sqlite*"))


def test_policy_errors_still_come_first(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: x\n")
    result = runner.invoke(app, ["audit", "verify", str(broken)])
    assert result.exit_code == 2 and "broken.yaml:1:" in result.stderr
    assert not list(tmp_path.glob("tenure-state.sqlite*"))


def test_tenure_run_without_the_audit_key_is_one_line_and_exit_2(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TENURE_AUDIT_KEY")
    state = f"sqlite:///{_state(tmp_path)}"
    result = runner.invoke(app, ["run", str(RUN_POLICY), "--state", state])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "TENURE_AUDIT_KEY" in result.stderr
    assert "tenure-audit-key" in result.stderr  # or the Prefect Secret block
    assert not list(tmp_path.rglob("tenure-state.sqlite*"))


def test_a_state_database_of_an_earlier_version_stops_the_run_untouched(
    store: str, tmp_path: Path
) -> None:
    """A state database made before the keyed log (no key id column): the run would
    delete, then fail to audit; instead it stops in one line, the store untouched."""
    _state(tmp_path).parent.mkdir()
    old = create_engine(f"sqlite:///{_state(tmp_path)}")
    with old.begin() as c:
        c.execute(
            text(
                "create table tenure_audit (seq integer primary key, recorded_at timestamp, "
                "entry text, prev_hash varchar(64), hash varchar(64))"
            )
        )
    old.dispose()
    before = hashlib.sha256(Path(store.removeprefix("sqlite:///")).read_bytes()).hexdigest()
    state = f"sqlite:///{_state(tmp_path)}"
    result = runner.invoke(app, ["run", str(RUN_POLICY), "--state", state])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "made by an earlier Tenure (tenure_audit has no key_id)" in line
    after = hashlib.sha256(Path(store.removeprefix("sqlite:///")).read_bytes()).hexdigest()
    assert after == before
    code, _, err = _verify(tmp_path)
    assert code == 2 and "made by an earlier Tenure" in err


def test_a_killed_runs_lock_does_not_hide_its_unaudited_chunks(store: str, tmp_path: Path) -> None:
    """A run killed after committing chunks leaves its lock row; its process is gone, so
    verify does not treat it as in progress: its chunks are not yet audited, and it says so
    (the next run's reconcile audits them)."""
    state = _state(tmp_path)
    state.parent.mkdir()
    assert kill_after(RUN_POLICY, store, state, CHUNK, DEMO_AS_OF, after_chunks=3), (
        "the run must be killed"
    )
    engine = create_engine(f"sqlite:///{state}")
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM tenure_locks")).scalar_one() == 1
    engine.dispose()
    code, _, err = _verify(tmp_path)
    assert code == 1 and "audit log INCOMPLETE: 1 interrupted run(s)" in err
    assert _run(store, tmp_path).reconciled_runs  # the next run audits what it did
    code, _, err = _verify(tmp_path)
    assert code == 0, err
