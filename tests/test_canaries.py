"""Planted canaries: after the nightly run, nothing Tenure keeps still names them.

Two made-up people (English and French) are planted in every table of a fresh demo
store, in rows the shipped policy must delete or anonymize: customer, account, invoice,
payment, logins, clicks, support tickets quoting their name, e-mail, phone, SIN and RAMQ
number, e-mail messages, withdrawn consents, a privacy request. The nightly run (coverage
gate on) then acts, and every byte it leaves is searched: each table of the store (the
anonymized rows, Tenure's journal, marks and rollups) and of the state database (runs,
chunks, audit log, register, releases, scan cache), the reports and the commands' output,
the scan's inventory files, and the raw files after ``VACUUM``. SQLite keeps deleted rows
in free pages until vacuumed and Tenure does not claim to scrub them, so the raw files are
searched vacuumed; their logical content is searched as Tenure leaves it.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from rich.console import Console
from typer.testing import CliRunner

from flows.cli import app
from flows.demo import schema
from flows.reports.run import render_run, report_json, report_markdown
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from tests.support.canaries import CANARIES, Hit, Needles, Planted, plant
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.paths import SHIPPED_POLICY

POLICY = str(SHIPPED_POLICY)
#: ``--now`` takes a naive instant in the policy's time zone.
NOW_OPTION = DEMO_AS_OF.astimezone(ZoneInfo("America/Montreal")).replace(tzinfo=None).isoformat()
runner = CliRunner()


def _cli(*args: str) -> str:
    """A ``tenure`` command's stdout and stderr; it must succeed."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.stdout + result.stderr


def _vacuum(url: str) -> None:
    """Drop free pages, which still hold deleted rows: the file then holds what is kept."""
    with sqlite3.connect(sa.make_url(url).database or "") as connection:
        connection.execute("VACUUM")
    connection.close()


def _assert_acted_on(store_url: str, planted: Planted) -> None:
    """The planted rows were all selected: deleted ones are gone, the others rewritten."""
    engine = sa.create_engine(store_url)
    tables = {t.name: t for t in schema.metadata.sorted_tables}
    try:
        with engine.connect() as c:
            for name, ids in planted.deleted.items():
                table = tables[name]
                left = c.scalars(sa.select(table.c.id).where(table.c.id.in_(ids))).all()
                assert not left, f"planted {name} rows {left} were not deleted"
            for name, rows in planted.rewritten.items():
                table = tables[name]
                for ident, before in rows.items():
                    after = c.execute(sa.select(table).where(table.c.id == ident)).one()
                    for column, value in before.items():
                        if column == "first_name":
                            continue  # a surrogate may be a common given name, like ours
                        assert getattr(after, column) != value, (name, ident, column)
    finally:
        engine.dispose()


def _failure(hits: list[Hit]) -> str:
    shown = "\n".join(map(str, hits[:60]))
    more = f"\n... and {len(hits) - 60} more" if len(hits) > 60 else ""
    return f"{len(hits)} canary hit(s) after the run:\n{shown}{more}"


@pytest.mark.usefixtures("pseudonym_keys")
def test_no_canary_survives_the_nightly_run(
    tmp_path: Path,
    demo_files: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    recwarn: pytest.WarningsRecorder,
) -> None:
    caplog.set_level(logging.INFO)  # what a production run would log
    store_url = f"sqlite:///{tmp_path / 'store' / 'crm.sqlite'}"
    state_url = f"sqlite:///{tmp_path / 'state' / 'tenure-state.sqlite'}"
    (tmp_path / "store").mkdir()
    (tmp_path / "state").mkdir()
    monkeypatch.setenv("TENURE_CRM_URL", store_url)
    needles = Needles(CANARIES)

    build_demo(store_url, customers=100)  # enough for a few published cells
    assert not needles.in_database(store_url, "store"), "canary values occur by chance"
    planted = plant(store_url, CANARIES)
    # The search must be able to fail: before the run it finds every value planted.
    before = {(h.canary, h.label) for h in needles.in_database(store_url, "store")}
    assert before == {(n.canary, n.label) for n in needles.items}

    # The scan (the gate reuses its findings) writes its inventory while canaries exist.
    outputs = {
        "tenure scan --json": _cli(
            "scan", POLICY, "--json", "--state", state_url, "--out", str(tmp_path / "inventory")
        )
    }
    options = RunOptions(now=DEMO_AS_OF, state_url=state_url)  # the coverage gate is on
    environ = {"TENURE_CRM_URL": store_url, **demo_files}
    report = run_policy(SHIPPED_POLICY, options, environ=environ)
    assert report.gate is not None and report.gate.status == "passed", report.gate
    assert not report.failed, [(o.dataset, o.error) for o in report.outcomes if o.error]
    _assert_acted_on(store_url, planted)

    table = io.StringIO()
    render_run(Console(file=table, width=200), report)
    outputs |= {
        "run report (JSON)": json.dumps(report_json(report), ensure_ascii=False),
        "run report (Markdown artifact)": report_markdown(report),
        "run report (table)": table.getvalue(),
        "tenure aggregates --json": _cli("aggregates", POLICY, "--json", "--state", state_url),
        "tenure register export": _cli("register", "export", POLICY, "--state", state_url),
        "tenure audit show": _cli("audit", "show", POLICY, "--state", state_url),
        "tenure audit verify": _cli("audit", "verify", POLICY, "--state", state_url),
        "tenure risk --json": _cli("risk", POLICY, "--json", "--state", state_url),
        "tenure plan --json": _cli("plan", POLICY, "--json", "--now", NOW_OPTION),
    }
    assert all(d["expired"] == 0 for d in json.loads(outputs["tenure plan --json"])["datasets"])
    assert outputs["tenure aggregates --json"].strip(), "something is published, and searched"
    register, _ = json.JSONDecoder().raw_decode(outputs["tenure register export"])  # then stderr
    assert register, "the register has entries"

    printed = capsys.readouterr()
    outputs |= {
        "log records": caplog.text,
        "warnings": "\n".join(str(warning.message) for warning in recwarn),
        "stdout and stderr": printed.out + printed.err,
    }
    hits = needles.in_database(store_url, "store") + needles.in_database(state_url, "state")
    for where, text in outputs.items():
        hits += needles.in_text(where, text)
    _vacuum(store_url)
    _vacuum(state_url)
    hits += needles.in_files(tmp_path)
    assert not hits, _failure(hits)


def test_the_search_finds_a_canary_however_it_is_spaced() -> None:
    """A phone, SIN or RAMQ number left behind with other separators still counts."""
    needles = Needles(CANARIES)
    for text in ("tél. 8193734419", "NAS 562-194-738", "quim54601734", "(819) 373 4419"):
        assert needles.in_text("text", text), text
    assert needles.in_bytes("bytes", b"\x00\x01Margaret.QUILLFEATHER@canary-test.CA\x02")
    assert needles.in_text("json", json.dumps({"n": 819373, "m": 4419})) == []
    assert not needles.in_text("text", f"born {date(1954, 1, 1).isoformat()}, J8Y, Gatineau")
