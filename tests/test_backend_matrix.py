"""The suite's own structure: the backend matrix marks its server cases, the conformance
suite gates checks by the capabilities a connector declares, and a test module imports
helpers from ``tests/support/`` only (an import-linter contract)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support.paths import REPO

#: Modules whose tests ask for ``store_url`` or ``demo_url``, or run the conformance suite
#: on the SQL backends.
MATRIX_MODULES = (
    "tests/test_sql_connector.py",
    "tests/test_nightly.py",
    "tests/test_planner.py",
    "tests/test_conformance.py",
)
SERVER_CASE = re.compile(r"\[(postgresql|mariadb|mariadb-as-mysql)\]")


def _pytest(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _collected(marks: str) -> list[str]:
    result = _pytest("--collect-only", "-q", "-m", marks, *MATRIX_MODULES)
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_the_fast_loop_collects_no_case_that_needs_a_server() -> None:
    table_info = "tests/test_sql_connector.py::test_table_info_reflects_types_keys_and_foreign_keys"
    counts = "tests/test_conformance.py::TestSQL::test_counts_expired_and_held_records"
    fast = _collected("not servers")
    assert [case for case in fast if SERVER_CASE.search(case)] == []
    assert {f"{table_info}[sqlite]", f"{counts}[sqlite]"} <= set(fast)
    servers = _collected("servers")
    for backend in ("postgresql", "mariadb"):
        assert {f"{table_info}[{backend}]", f"{counts}[{backend}]"} <= set(servers)
    assert not [case for case in servers if case.endswith("[sqlite]")]


SUITE = """
import json

import pytest

from connectors.conformance import ConformanceFixture, ConnectorConformance
from connectors.examples.jsonl_log import connector
from connectors.protocol import Capabilities, ConnectorOptions


class TestTransactional(ConnectorConformance):
    CAPABILITIES = Capabilities(transactions=True, pushdown=True, partitions=False)

    @pytest.fixture
    def make_store(self):
        raise RuntimeError("a store was built for a check the connector cannot do")


class TestUndeclared(ConnectorConformance):
    @pytest.fixture
    def make_store(self, tmp_path):
        def make(records):
            (tmp_path / "logs").mkdir()
            with (tmp_path / "logs" / "events.jsonl").open("w") as out:
                for i, r in enumerate(records):
                    event = {"id": f"e{i:03d}", "at": r.clock.isoformat(),
                             "msg": r.text, "team": r.group}
                    out.write(json.dumps(event) + "\\n")
            url = f"jsonlog:///{tmp_path / 'logs'}"
            options = ConnectorOptions(read_only=False, bookkeeping_dir=tmp_path / "books")
            return ConformanceFixture(
                open=lambda read_only: connector("log", url, options),
                collection="events", key=("id",), clock="at", text="msg", group="team",
            )

        return make
"""


def _run_suite(folder: Path, selected: str, *, returncode: int) -> subprocess.CompletedProcess[str]:
    """Run the ``selected`` checks of ``SUITE`` in a pytest of their own; no store may be
    built for a check that is skipped."""
    (folder / "test_suite.py").write_text(SUITE)
    result = _pytest("-rs", "-k", selected, cwd=folder)
    assert result.returncode == returncode, result.stdout + result.stderr
    assert "a store was built" not in result.stdout
    return result


def test_a_check_the_connector_cannot_do_is_skipped_from_collection_with_its_reason(
    tmp_path: Path,
) -> None:
    result = _run_suite(tmp_path, "TestTransactional and crash_inside", returncode=0)
    assert "1 skipped" in result.stdout and "passed" not in result.stdout
    assert re.search(
        r"SKIPPED \[1\] .*TestTransactional declares transactions=True; "
        r"this check needs transactions=False: a transactional store rolls a failed chunk back",
        result.stdout,
    ), result.stdout


def test_a_class_that_declares_no_capabilities_fails_once_and_skips_the_gated_checks(
    tmp_path: Path,
) -> None:
    result = _run_suite(tmp_path, "TestUndeclared and (crash_inside or declares)", returncode=1)
    assert "1 failed, 1 skipped" in result.stdout, result.stdout
    assert "TestUndeclared declares no CAPABILITIES" in result.stdout


def _tests_contract() -> str:
    """The repository's import-linter contract for test modules, alone in a config."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c.get("id") == "tests"]
    lines = [
        "[tool.importlinter]",
        'root_packages = ["tests"]',
        "",
        "[[tool.importlinter.contracts]]",
    ]
    for key, value in contract.items():
        rendered = (
            "[" + ", ".join(f'"{v}"' for v in value) + "]"
            if isinstance(value, list)
            else f'"{value}"'
        )
        lines.append(f"{key} = {rendered}")
    return "\n".join(lines) + "\n"


def _lint(root: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    for name, text in {"__init__.py": "", "support/__init__.py": "", **files}.items():
        (root / "tests" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "tests" / name).write_text(text)
    (root / "pyproject.toml").write_text(_tests_contract())
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache", "--no-logo"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_test_module_that_imports_another_or_conftest_breaks_the_contract(
    tmp_path: Path,
) -> None:
    clean = {
        "conftest.py": "from tests.support.helpers import HELP\n",
        "support/helpers.py": "HELP = 1\n",
        "test_a.py": "from tests.support.helpers import HELP\n",
        "test_b.py": "B = 2\n",
    }
    assert _lint(tmp_path / "clean", clean).returncode == 0
    for number, (importer, imported) in enumerate(
        [("test_a.py", "tests.test_b"), ("test_a.py", "tests.conftest"),
         ("support/helpers.py", "tests.test_b")]
    ):  # fmt: skip
        bad = {importer: f"import {imported}\nHELP = 1\n"}
        result = _lint(tmp_path / f"bad{number}", {**clean, **bad})
        assert result.returncode == 1, result.stdout + result.stderr
        assert "BROKEN" in result.stdout and imported in result.stdout, result.stdout
