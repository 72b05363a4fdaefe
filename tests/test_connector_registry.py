"""A separate package adds a connector through the ``tenure.connectors`` entry points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import make_url

from connectors.errors import UnknownStoreScheme
from connectors.records.connector import RecordConnector
from connectors.registry import available_schemes, open_connector
from tests.support.distributions import install_distribution


def test_a_separate_distribution_adds_a_scheme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "events.jsonl").write_text(
        json.dumps({"id": "e1", "at": "2024-01-01T00:00:00+00:00"}) + "\n"
    )
    with pytest.raises(UnknownStoreScheme, match="no connector for scheme 'jsonlog'"):
        open_connector("log", f"jsonlog:///{logs}")
    install_distribution(tmp_path / "site", "jsonlog", "connectors.examples.jsonl_log:connector")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert "jsonlog" in available_schemes()
    connector = open_connector("log", f"jsonlog:///{logs}")
    assert isinstance(connector, RecordConnector)
    assert connector.table_names() == ["events"]
    info = connector.table_info("events")
    assert info is not None and info.primary_key == ("id",)
    connector.close()


BUILT_IN_URLS = [
    "files:///x",
    "files+memory://bucket/x",
    "maildir:///m",
    "mbox:///m.mbox",
    "imap://u@127.0.0.1:1/",
    "imaps://u@127.0.0.1:1/",
    "mysql+pymysql://u@h/db",
    "mariadb+pymysql://u@h/db",
]


@pytest.mark.parametrize("url", BUILT_IN_URLS)
def test_the_scheme_without_its_driver_picks_a_built_in(url: str) -> None:
    assert make_url(url).get_backend_name() in available_schemes()
