"""Published statistics: `tenure publish` and the nightly run write the released rollups
to a folder of Parquet files or a SQL store, with a data dictionary, replaced whole, and
a release the destination already holds changes nothing.

The demo store of this module has the planted canaries in it: nothing published may
name them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from flows import audit
from flows.cli import app
from flows.publish import STAGING_SUFFIX, PublishError, publish_tables, release_content
from flows.releases import release_tables
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from retention_rules.loader import load_policy
from retention_rules.model import Publish
from tests.support.canaries import CANARIES, Needles, plant
from tests.support.demo import DEMO_AS_OF, build_demo, demo_files_environ
from tests.support.paths import REPO, SHIPPED_POLICY
from tests.support.ports import free_port
from tests.support.publish_child import PREFIX, tables

runner = CliRunner()
NOW = DEMO_AS_OF.replace(tzinfo=None).isoformat()
SECRET = "Pw-Sekr3t-4417"


@dataclass(frozen=True)
class Released:
    """The shipped policy run once on a demo store with the canaries planted."""

    root: Path
    state: str
    environ: dict[str, str]


def _policy(folder: Path, publish: str) -> Path:
    """The shipped policy with another ``publish:`` section (stores from the environment)."""
    text = SHIPPED_POLICY.read_text()
    head = text[: text.index("\npublish:\n")]
    path = folder / "policy.yaml"
    path.write_text(f"{head}\npublish:\n{publish}\n")
    return path


@pytest.fixture(scope="module")
def released(
    tmp_path_factory: pytest.TempPathFactory, demo_files_template: Path
) -> Iterator[Released]:
    root = tmp_path_factory.mktemp("publish")
    shutil.copytree(demo_files_template, root / "files")
    store = f"sqlite:///{root / 'crm.sqlite'}"
    build_demo(store, customers=100)  # enough for a few cells shown under suppression
    plant(store, CANARIES)
    environ = {"TENURE_CRM_URL": store, **demo_files_environ(root / "files")}
    state = f"sqlite:///{root / 'state.sqlite'}"
    options = RunOptions(now=DEMO_AS_OF, state_url=state, coverage_gate=False)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        report = run_policy(SHIPPED_POLICY, options, environ=environ)
        assert not report.failed, [(o.dataset, o.error) for o in report.outcomes if o.error]
        yield Released(root, state, environ)


def _publish(policy: Path, state: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["publish", str(policy), "--state", state, *args])
    return result.exit_code, result.stdout, result.stderr


def _expected(released: Released, policy: Path) -> dict[str, pd.DataFrame]:
    loaded = load_policy(policy)
    engine = sa.create_engine(released.state)
    try:
        return {t.rollup: t.frame for t in release_tables(engine, loaded.policy)}
    finally:
        engine.dispose()


def _is_count(column: str) -> bool:
    return column == "count" or column.startswith(("count_", "people"))


def _published_entries(state: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(state)
    try:
        return [e for e in audit.entries(engine) if e.get("event") == audit.PUBLISHED]
    finally:
        engine.dispose()


def _files(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


def test_publish_writes_each_rollup_as_a_typed_parquet_file_with_a_dictionary(
    released: Released, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, "  parquet: out/published")
    logged = len(_published_entries(released.state))
    code, out, err = _publish(policy, released.state)
    assert code == 0, err
    folder = tmp_path / "out" / "published"  # relative to the policy file
    assert f"to {folder}" in out
    entries_now = _published_entries(released.state)  # the privacy officer's proof
    assert len(entries_now) == logged + 1
    assert entries_now[-1]["destination"] == str(folder) and entries_now[-1]["changed"]
    assert entries_now[-1]["content_sha256"] in out
    expected = _expected(released, policy)
    assert {p.stem for p in folder.glob("*.parquet")} == set(expected)
    assert any(len(frame) for frame in expected.values()), "something was released"
    for rollup, frame in expected.items():
        read = pd.read_parquet(folder / f"{rollup}.parquet")
        assert list(read.columns) == list(frame.columns)
        assert read["period"].map(type).eq(type(DEMO_AS_OF.date())).all()
        counts = [c for c in read.columns if _is_count(c)]
        assert counts, rollup
        for column in counts:  # counts are integers, never floats
            assert pd.api.types.is_integer_dtype(read[column].dtype), (rollup, column)
        pd.testing.assert_frame_equal(read, frame.reset_index(drop=True), check_dtype=False)
    dictionary = json.loads((folder / "data_dictionary.json").read_text())
    assert dictionary["policy"] == "crm_pro"
    entries = {t["table"]: t for t in dictionary["tables"]}
    assert set(entries) == set(expected)
    private = entries["monthly_active_customers_by_feature"]
    assert private["disclosure"]["method"] == "differential_privacy"
    assert private["disclosure"]["epsilon"] == 1.0
    assert {c["name"] for c in private["columns"]} >= {"period", "people", "people_margin95"}
    assert all(c["description"] for c in private["columns"])
    suppressed = entries["page_views_by_feature"]
    assert suppressed["disclosure"]["method"] == "suppression"
    assert suppressed["released_at"] is not None
    assert (folder / "README.md").read_text().startswith("# Published statistics")

    # A second publish with no new release leaves every file as it was.
    before = _files(folder)
    code, out, err = _publish(policy, released.state)
    assert code == 0, err
    assert "unchanged" in out
    assert _files(folder) == before
    assert len(_published_entries(released.state)) == logged + 1  # nothing new to audit


def test_publish_to_sqlite_writes_one_transaction_of_typed_tables(
    released: Released, tmp_path: Path
) -> None:
    target = tmp_path / "bi.sqlite"
    policy = _policy(tmp_path, f"  sql: sqlite:///{target}\n  prefix: {PREFIX}")
    code, out, err = _publish(policy, released.state)
    assert code == 0, err
    expected = _expected(released, policy)
    engine = sa.create_engine(f"sqlite:///{target}")
    try:
        names = set(sa.inspect(engine).get_table_names())
        assert names == {f"{PREFIX}{r}" for r in expected} | {f"{PREFIX}data_dictionary"}
        for rollup, frame in expected.items():
            read = pd.read_sql_table(f"{PREFIX}{rollup}", engine)
            assert list(read.columns) == list(frame.columns)
            assert len(read) == len(frame)
            reflected = sa.inspect(engine).get_columns(f"{PREFIX}{rollup}")
            for column in reflected:
                if _is_count(column["name"]):  # counts are integer columns
                    assert isinstance(column["type"], sa.Integer), (rollup, column)
        dictionary = pd.read_sql_table(f"{PREFIX}data_dictionary", engine)
        assert dictionary["content_sha256"].nunique() == 1
        row = dictionary[
            (dictionary.table_name == f"{PREFIX}monthly_active_customers_by_feature")
            & (dictionary.column_name == "people")
        ].iloc[0]
        assert row.disclosure_method == "differential_privacy"
        assert json.loads(row.disclosure_parameters)["epsilon"] == 1.0
        assert row.data_type == "integer"
    finally:
        engine.dispose()
    before = (target.stat().st_mtime_ns, target.read_bytes())
    code, out, err = _publish(policy, released.state)
    assert code == 0 and "unchanged" in out, err
    assert (target.stat().st_mtime_ns, target.read_bytes()) == before


def test_no_canary_reaches_a_destination(released: Released, tmp_path: Path) -> None:
    needles = Needles(CANARIES)
    outputs = []
    (tmp_path / "p").mkdir()
    (tmp_path / "s").mkdir()
    folder_policy = _policy(tmp_path / "p", "  parquet: published")
    sql_policy = _policy(tmp_path / "s", f"  sql: sqlite:///{tmp_path / 's' / 'bi.sqlite'}")
    for policy in (folder_policy, sql_policy):
        code, out, err = _publish(policy, released.state)
        assert code == 0, err
        outputs.append(out + err)
    assert any((tmp_path / "p" / "published").glob("*.parquet"))
    hits = needles.in_files(tmp_path / "p" / "published")
    hits += needles.in_database(f"sqlite:///{tmp_path / 's' / 'bi.sqlite'}", "published")
    for text in outputs:
        hits += needles.in_text("output", text)
    assert not hits, "\n".join(map(str, hits[:20]))


def test_dry_run_says_what_would_be_written_and_writes_nothing(
    released: Released, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, "  parquet: published")
    code, out, err = _publish(policy, released.state, "--dry-run")
    assert code == 0, err
    assert out.startswith("would publish ") and "page_views_by_feature:" in out
    assert not (tmp_path / "published").exists()


def test_a_folder_that_cannot_be_written_is_one_line_and_leaves_it_as_it_was(
    released: Released, tmp_path: Path
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "published"
    policy = _policy(tmp_path, "  parquet: published")
    assert _publish(policy, released.state)[0] == 0
    (folder / "data_dictionary.json").write_text("{}")  # as if it held another release
    before = _files(folder)
    folder.chmod(0o555)
    try:
        for args in ((), ("--dry-run",)):
            code, out, err = _publish(policy, released.state, *args)
            assert code == 2, (args, out, err)
            lines = err.strip().splitlines()
            assert lines[-1].startswith(f"error: {policy}:") and "publish.parquet" in lines[-1]
            assert "Permission denied" in lines[-1]
    finally:
        folder.chmod(0o755)
    assert _files(folder) == before


def test_a_folder_under_a_file_is_one_line_and_nothing_is_written(
    released: Released, tmp_path: Path
) -> None:
    """What root (who writes into read-only folders) cannot write either."""
    (tmp_path / "blocker").write_text("a file")
    policy = _policy(tmp_path, "  parquet: blocker/published")
    for args in ((), ("--dry-run",)):
        code, out, err = _publish(policy, released.state, *args)
        assert code == 2, (args, out, err)
        line = err.strip().splitlines()[-1]
        assert line.startswith(f"error: {policy}:") and "publish.parquet: cannot write" in line
        assert "blocker" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "policy.yaml"]


def test_an_unwritable_folder_is_refused_and_nothing_half_written(tmp_path: Path) -> None:
    """The same as root can see it: a file where the folder should be."""
    (tmp_path / "published").write_text("not a folder")
    publish = Publish(parquet="published")
    with pytest.raises(PublishError) as caught:
        publish_tables(tables(1), publish, "demo", tmp_path)
    assert caught.value.field == "parquet"
    assert str(tmp_path / "published") in caught.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["published"]
    assert (tmp_path / "published").read_text() == "not a folder"


def test_a_sql_destination_that_refuses_is_one_line_without_its_password(
    released: Released, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://publisher:{SECRET}@127.0.0.1:{port}/bi"
    policy = _policy(tmp_path, f"  sql: {url}")
    for args in ((), ("--dry-run",)):
        code, out, err = _publish(policy, released.state, *args)
        assert code == 2, (out, err)
        assert len(err.strip().splitlines()) == 2, err  # the state line, then the error
        assert "publish.sql" in err and "publisher:***@127.0.0.1" in err
        assert SECRET not in out + err


def test_a_mariadb_destination_is_refused_in_one_line(released: Released, tmp_path: Path) -> None:
    policy = _policy(tmp_path, f"  sql: mysql+pymysql://u:{SECRET}@127.0.0.1:{free_port()}/bi")
    code, out, err = _publish(policy, released.state)
    assert code == 2 and "MySQL and MariaDB commit each CREATE" in err
    assert SECRET not in out + err


def test_a_policy_without_publish_section_is_refused(released: Released, tmp_path: Path) -> None:
    text = SHIPPED_POLICY.read_text()
    policy = tmp_path / "policy.yaml"
    policy.write_text(text[: text.index("\npublish:\n")] + "\n")
    code, _, err = _publish(policy, released.state)
    assert code == 2 and "no publish: section" in err


def test_a_rollup_gone_from_the_policy_is_removed_from_the_folder(tmp_path: Path) -> None:
    publish = Publish(parquet="out")
    publish_tables(tables(1), publish, "demo", tmp_path)
    done = publish_tables(tables(1)[:2], publish, "demo", tmp_path)
    assert done.removed == ("tickets_by_channel",)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.parquet")) == [
        "active_by_feature.parquet",
        "clicks_by_page.parquet",
    ]


def test_the_content_hash_changes_with_any_value() -> None:
    first, second = tables(1), tables(1)
    assert release_content("p", first).sha256 == release_content("p", second).sha256
    second[0].frame.loc[0, "people"] += 1
    assert release_content("p", first).sha256 != release_content("p", second).sha256


def _child(destination: str, version: int, action: str, after: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.publish_child", destination, str(version), action,
         str(after)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.mark.parametrize("after", [1, 4])  # the first staged, all but the dictionary
def test_a_killed_parquet_publish_leaves_the_previous_release_intact(
    tmp_path: Path, after: int
) -> None:
    """Killed after ``after`` of its five files (three tables, the README, the
    dictionary) were written under their staging names."""
    destination = f"parquet:{tmp_path / 'out'}"
    assert _child(destination, 1, "none", 0).wait() == 0
    before = _files(tmp_path / "out")
    child = _child(destination, 2, "kill", after)
    assert child.wait() == -signal.SIGKILL
    after_kill = _files(tmp_path / "out")
    left = [name for name in after_kill if name.endswith(STAGING_SUFFIX)]
    assert left, "the child was killed while staging"
    assert {n: v for n, v in after_kill.items() if n not in left} == before
    published = sorted(p.stem for p in (tmp_path / "out").glob("*.parquet"))
    assert published == ["active_by_feature", "clicks_by_page", "tickets_by_channel"]
    assert _child(destination, 2, "none", 0).wait() == 0  # and the next publish goes through
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(STAGING_SUFFIX)]
    read = pd.read_parquet(tmp_path / "out" / "active_by_feature.parquet")
    pd.testing.assert_frame_equal(read, tables(2)[1].frame)


def _run(state: str) -> tuple[int, dict[str, object], str]:
    args = ["run", str(SHIPPED_POLICY), "--now", NOW, "--state", state, "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout), result.stderr


@pytest.mark.usefixtures("prefect_api", "pseudonym_keys")
def test_the_nightly_run_publishes_and_a_failed_publish_undoes_nothing(
    tmp_path: Path, demo_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    build_demo(store)
    monkeypatch.setenv("TENURE_CRM_URL", store)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    monkeypatch.setenv("TENURE_PUBLISH_URL", str(blocker / "published"))
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"

    code, report, err = _run(state)
    assert code == 1, err
    assert report["failed"] is True and report["published"] is None
    error = str(report["publish_error"])
    assert error.startswith("publish.parquet: cannot write") and "blocker" in error
    done = {d["dataset"]: d for d in report["datasets"]}  # type: ignore[attr-defined]
    assert all(d["status"] == "ok" for d in done.values()), done
    assert done["web_clicks"]["processed"] > 0  # retention was done, and stays done

    folder = Path(demo_files["TENURE_PUBLISH_URL"])
    monkeypatch.setenv("TENURE_PUBLISH_URL", str(folder))
    text = runner.invoke(app, ["run", str(SHIPPED_POLICY), "--now", NOW, "--state", state])
    assert text.exit_code == 0, text.output  # nothing left to expire: the releases go out
    assert f"Published statistics: {len(list(folder.glob('*.parquet')))} table(s)" in text.stdout
    assert f"to {folder}" in text.stdout


def test_publish_waits_for_a_run_holding_the_policy_s_lock(
    released: Released, tmp_path: Path
) -> None:
    from flows.state.ledger import Ledger
    from flows.state.tables import open_state

    policy = _policy(tmp_path, "  parquet: out/locked")
    engine = open_state(released.state)
    try:
        with Ledger(engine).locked("crm_pro", "a-nightly-run"):
            code, _, err = _publish(policy, released.state)
    finally:
        engine.dispose()
    assert code == 3 and "publish once it is done" in err, err
    assert not (tmp_path / "out" / "locked").exists()
    code, _, err = _publish(policy, released.state)  # the lock is released with the run
    assert code == 0, err
