"""A plug-in written for an older factory signature, and IMAP refusals, each in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from imapclient.exceptions import IMAPClientError

from connectors.errors import StoreError
from connectors.mail.imap import reason
from connectors.registry import open_connector
from tests.support.distributions import install_distribution


def test_a_factory_without_the_options_argument_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    install_distribution(site, "oldstyle", "oldstyle_connector:connector")
    (site / "oldstyle_connector.py").write_text(
        "def connector(name, url, **options):\n    raise AssertionError('never called')\n"
    )
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(StoreError) as caught:
        open_connector("logs", "oldstyle://u:s3cret@127.0.0.1/x")
    message = str(caught.value)
    assert "\n" not in message and "s3cret" not in message
    assert "'oldstyle' (oldstyle_connector:connector) is not a factory(name, url, options)" in (
        message
    )


@pytest.mark.parametrize(
    ("raised", "shown"),
    [
        (
            "select failed: [NONEXISTENT] Mailbox doesn't exist",
            "[NONEXISTENT] Mailbox doesn't exist",
        ),
        ("EXPUNGE failed: [SERVERBUG] x", "[SERVERBUG] x"),
        ("SEARCH failed: BAD  criteria", "BAD criteria"),
    ],
)
def test_imap_refusals_lose_the_librarys_command_prefix(raised: str, shown: str) -> None:
    assert reason(IMAPClientError(raised)) == shown
