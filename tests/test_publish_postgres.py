"""Publishing to a real PostgreSQL: into a schema, in one transaction that a reader sees
whole or not at all, unchanged when the release is, and a killed publish leaves the
previous release as it was."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from flows.cli import app
from flows.publish import publish_tables
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.paths import REPO, SHIPPED_POLICY
from tests.support.publish_child import PREFIX, SCHEMA, publish_model, tables

pytestmark = pytest.mark.servers
runner = CliRunner()
ROLLUPS = ("active_by_feature", "clicks_by_page", "tickets_by_channel")


def _published(url: str) -> tuple[object, ...]:
    """In ONE statement (one snapshot): the dictionary's hash, then each table's rows and
    total of people."""
    metadata = sa.MetaData(schema=SCHEMA)
    dictionary = sa.Table(f"{PREFIX}data_dictionary", metadata, sa.Column("content_sha256"))
    parts: list[sa.ScalarSelect[object]] = [
        sa.select(sa.func.min(dictionary.c.content_sha256)).scalar_subquery()
    ]
    for rollup in ROLLUPS:
        table = sa.Table(f"{PREFIX}{rollup}", metadata, sa.Column("people"))
        parts.append(sa.select(sa.func.count()).select_from(table).scalar_subquery())
        parts.append(sa.select(sa.func.sum(table.c.people)).scalar_subquery())
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return tuple(connection.execute(sa.select(*parts)).one())
    finally:
        engine.dispose()


def _child(url: str, version: int, action: str, after: int = 0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.publish_child", f"sql:{url}", str(version), action,
         str(after)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _row_versions(url: str) -> dict[str, list[str]]:
    """Each published table's rows' ``xmin``: the transaction that wrote them."""
    engine = sa.create_engine(url)
    names = [f"{PREFIX}{r}" for r in ROLLUPS] + [f"{PREFIX}data_dictionary"]
    try:
        with engine.connect() as connection:
            return {
                name: sorted(
                    connection.execute(
                        sa.select(sa.literal_column("xmin::text")).select_from(
                            sa.table(name, schema=SCHEMA)
                        )
                    ).scalars()
                )
                for name in names
            }
    finally:
        engine.dispose()


def test_publish_into_a_schema_typed_and_unchanged_the_second_time(
    pg_url: str, tmp_path: Path
) -> None:
    done = publish_tables(tables(1), publish_model(f"sql:{pg_url}"), "demo", tmp_path)
    assert done.changed and done.destination == pg_url  # no password on the test server
    engine = sa.create_engine(pg_url)
    try:
        inspector = sa.inspect(engine)
        assert set(inspector.get_table_names(schema=SCHEMA)) == {
            *(f"{PREFIX}{r}" for r in ROLLUPS),
            f"{PREFIX}data_dictionary",
        }
        types = {
            c["name"]: c["type"] for c in inspector.get_columns(f"{PREFIX}clicks_by_page", SCHEMA)
        }
        assert isinstance(types["people"], sa.BigInteger)
        assert isinstance(types["period"], sa.Date)
        assert isinstance(types["mean_ms"], sa.Float)
        read = pd.read_sql_table(f"{PREFIX}active_by_feature", engine, schema=SCHEMA)
        assert read["people"].tolist() == tables(1)[1].frame["people"].tolist()
        dictionary = pd.read_sql_table(f"{PREFIX}data_dictionary", engine, schema=SCHEMA)
        table_rows = dictionary[dictionary.column_name.isna()]
        assert set(table_rows.table_name) == {f"{PREFIX}{r}" for r in ROLLUPS}
        assert json.loads(table_rows.iloc[0].disclosure_parameters) == {
            "epsilon": 1.0,
            "per": "month",
        }
        assert dictionary.content_sha256.nunique() == 1
    finally:
        engine.dispose()
    before = _row_versions(pg_url)
    again = publish_tables(tables(1), publish_model(f"sql:{pg_url}"), "demo", tmp_path)
    assert not again.changed
    assert _row_versions(pg_url) == before  # not one row rewritten


def test_a_reader_sees_the_previous_release_or_the_new_one_never_half(pg_url: str) -> None:
    assert _child(pg_url, 1, "none").wait() == 0
    old = _published(pg_url)
    child = _child(pg_url, 2, "sleep")  # a second's pause after each table, in its transaction
    seen = set()
    engine = sa.create_engine(pg_url, isolation_level="REPEATABLE READ")
    torn = []
    try:
        while child.poll() is None:
            seen.add(_published(pg_url))
            with engine.connect() as connection:  # one transaction, reading table by table
                firsts = []
                for rollup in ROLLUPS:
                    table = sa.table(f"{PREFIX}{rollup}", sa.column("people"), schema=SCHEMA)
                    firsts.append(
                        connection.execute(
                            sa.select(sa.func.count()).select_from(table)
                        ).scalar_one()
                    )
                    time.sleep(0.1)
                if len(set(firsts)) != 1:
                    torn.append(firsts)
            time.sleep(0.05)
    finally:
        engine.dispose()
    assert child.wait() == 0, child.stderr.read() if child.stderr else ""
    new = _published(pg_url)
    assert new != old
    assert seen <= {old, new}, seen - {old, new}
    assert old in seen, "the reader ran while the publish was under way"
    assert not torn, torn


@pytest.mark.parametrize("after", [1, 2, 3])
def test_a_killed_publish_leaves_the_previous_release_intact(pg_url: str, after: int) -> None:
    assert _child(pg_url, 1, "none").wait() == 0
    old = _published(pg_url)
    versions = _row_versions(pg_url)
    child = _child(pg_url, 2, "kill", after)
    assert child.wait() == -signal.SIGKILL
    assert _published(pg_url) == old
    assert _row_versions(pg_url) == versions
    assert _child(pg_url, 2, "none").wait() == 0  # the next publish goes through
    assert _published(pg_url) != old


@pytest.mark.usefixtures("pseudonym_keys")
def test_tenure_publish_writes_the_demo_release_to_postgresql(
    pg_url: str, tmp_path: Path, demo_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    build_demo(store)
    monkeypatch.setenv("TENURE_CRM_URL", store)
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    options = RunOptions(now=DEMO_AS_OF, state_url=state, coverage_gate=False)
    report = run_policy(SHIPPED_POLICY, options, environ={"TENURE_CRM_URL": store, **demo_files})
    assert not report.failed
    text = SHIPPED_POLICY.read_text()
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        text[: text.index("\npublish:\n")]
        + f"\npublish:\n  sql: {pg_url}\n  schema: analytics\n  prefix: tenure_\n"
    )
    result = runner.invoke(app, ["publish", str(policy), "--state", state])
    assert result.exit_code == 0, result.output
    engine = sa.create_engine(pg_url)
    try:
        names = set(sa.inspect(engine).get_table_names(schema="analytics"))
        assert "tenure_data_dictionary" in names
        assert "tenure_monthly_active_customers_by_feature" in names
        frame = pd.read_sql_table(
            "tenure_monthly_active_customers_by_feature", engine, schema="analytics"
        )
        assert pd.api.types.is_integer_dtype(frame["people"].dtype)
        assert (frame["people"] >= 0).all()
    finally:
        engine.dispose()
    again = runner.invoke(app, ["publish", str(policy), "--state", state])
    assert again.exit_code == 0 and "unchanged" in again.stdout
