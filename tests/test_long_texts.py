"""Long texts and defects in one binding: retention goes on for every other binding.

A text over spaCy's million-character limit under ``redact_text`` used to abort the whole
nightly run (every night again), and a 720 KB note took minutes: texts are now analysed in
bounded pieces, and an unexpected error fails its binding alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

import anonymizers.text_redaction as text_redaction
from anonymizers.detection.text_engine import PIECE_CHARS, split_pieces, text_engine
from anonymizers.detection.value_scan import analyse_texts
from anonymizers.text_redaction import _redact_pieces, redact_texts
from flows import audit
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.state.tables import open_state

NOW = datetime(2026, 11, 24, tzinfo=UTC)


@given(st.text(alphabet=st.sampled_from("ab .\n!é"), max_size=400), st.integers(4, 60))
@settings(max_examples=300, deadline=None)
def test_pieces_join_back_and_stay_bounded(text_: str, limit: int) -> None:
    pieces = split_pieces(text_, limit)
    assert "".join(pieces) == text_
    assert all(len(piece) <= limit for piece in pieces)
    assert all(pieces[:-1]), "no empty piece before the last"


def test_pieces_end_at_the_best_boundary() -> None:
    sentence = "Call Marie Tremblay at 514-555-0199. "
    pieces = split_pieces(sentence * 400, 1_000)
    assert all(piece.endswith(". ") for piece in pieces[:-1])  # never inside a name
    lines = split_pieces("a line of words\n" * 300, 1_000)
    assert all(piece.endswith("\n") for piece in lines[:-1])


def _letter(i: int) -> str:
    return (
        f"Bonjour, merci de rappeler Marie Tremblay au 514-555-{i % 10_000:04d} "
        f"ou par courriel: client{i}@example.com. La commande est en retard.\n"
    )


@pytest.fixture
def short_spacy_limit() -> Iterator[int]:
    """spaCy's models with a 20,000-character limit, so that the limit is reached by a
    text a test can afford to analyse (the real limit is 1,000,000)."""
    models: dict[str, Any] = text_engine().analyzer.nlp_engine.nlp  # type: ignore[attr-defined]
    saved = {name: nlp.max_length for name, nlp in models.items()}
    for nlp in models.values():
        nlp.max_length = 20_000
    yield 20_000
    for name, nlp in models.items():
        nlp.max_length = saved[name]


def test_a_text_over_spacys_limit_is_redacted_in_pieces(short_spacy_limit: int) -> None:
    long_text = "".join(_letter(i) for i in range(400))
    assert len(long_text) > 2 * short_spacy_limit
    with pytest.raises(ValueError, match="E088"):  # what aborted the run: one analysis
        _redact_pieces([long_text], None, 0.0)
    (redacted,) = redact_texts([long_text])
    assert "@example.com" not in redacted
    assert "514-555-" not in redacted
    assert redacted.count("<EMAIL_ADDRESS>") == 400
    assert "La commande est en retard." in redacted  # the text stays readable


def test_the_scan_finds_entities_anywhere_in_a_long_text() -> None:
    filler = "Le client a appelé pour une question sur sa facture. " * 300
    long_text = filler + "Écrire à lointain@example.com svp. " + filler
    assert long_text.index("lointain@") > 3 * PIECE_CHARS
    (found,) = analyse_texts([long_text], ["EMAIL_ADDRESS"], free_text=True, batch_size=8)
    spans = {long_text[r.start : r.end] for r in found if r.entity_type == "EMAIL_ADDRESS"}
    assert spans == {"lointain@example.com"}


_POLICY = """\
version: 1
name: long_texts
categories:
  contact.free_text: {description: Notes, identifier: direct, entities: any}
  usage.ip_address: {description: IP, identifier: direct}
purposes:
  support:
    {description: Support., legal_basis: contract, min_retention: 30 days, max_retention: 2 years}
stores:
  crm: {url: "sqlite:///%(db)s"}
datasets:
  - name: notes
    store: crm
    table: notes
    purpose: support
    primary_key: id
    subject_key: customer_id
    columns: {body: contact.free_text}
    clock: {column: written_at}
    retention: 1 year
    action: {type: anonymize, columns: {body: redact_text}}
  - name: logins
    store: crm
    table: logins
    purpose: support
    primary_key: id
    subject_key: customer_id
    columns: {ip_address: usage.ip_address}
    clock: {column: occurred_at}
    retention: 1 year
    action: delete
"""


def _store(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "crm.sqlite"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as connection:
        connection.execute(
            text(
                "create table notes (id integer primary key, customer_id integer, body text,"
                " written_at datetime)"
            )
        )
        connection.execute(
            text(
                "create table logins (id integer primary key, customer_id integer,"
                " ip_address varchar(45), occurred_at datetime)"
            )
        )
        connection.execute(
            text(
                "insert into notes values (1, 7, 'Call Marie Tremblay at 514-555-0199.',"
                " '2020-01-01 10:00:00')"
            )
        )
        for i in range(5):
            connection.execute(
                text("insert into logins values (:i, 7, '10.0.0.1', :at)"),
                {"i": i, "at": "2020-01-01 10:00:00" if i < 3 else "2026-11-01 10:00:00"},
            )
    engine.dispose()
    policy = tmp_path / "policy.yaml"
    policy.write_text(_POLICY % {"db": db})
    return policy, f"sqlite:///{db}"


def test_a_defect_in_one_binding_fails_that_binding_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENURE_AUDIT_KEY", "test-audit-key-0123456789abcdef")
    policy, url = _store(tmp_path)

    def broken(*_args: object, **_kwargs: object) -> list[str]:
        raise ValueError("[E088] Text of length 1200000 exceeds maximum of 1000000.")

    monkeypatch.setattr(text_redaction, "redact_texts", broken)
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    options = RunOptions(now=NOW, state_url=state, coverage_gate=False)
    report = run_policy(policy, options)
    outcome = {o.dataset: o for o in report.outcomes}
    assert report.failed
    assert outcome["notes"].error == (
        "unexpected ValueError: [E088] Text of length 1200000 exceeds maximum of 1000000."
    )
    assert outcome["logins"].error is None and outcome["logins"].processed == 3
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("select count(*) from logins")).scalar_one() == 2
        body = connection.execute(text("select body from notes")).scalar_one()
    assert "Marie Tremblay" in body  # untouched: its chunk rolled back
    audited = {e["dataset"]: e for e in audit.entries(open_state(state))}
    assert audited["notes"]["status"] == "error"
    assert audited["logins"]["deleted"] == 3


def test_a_chunk_committed_before_a_ledger_failure_is_still_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store commits a chunk, then the state database fails: the binding fails, and
    its audit entry still counts every row the store deleted."""
    from flows.state.ledger import ChunkRecord, Ledger

    policy, url = _store(tmp_path)
    record_chunk = Ledger.record_chunk

    def failing(self: Ledger, record: ChunkRecord, *args: Any, **kwargs: Any) -> bool:
        if (record.dataset, record.chunk_no) == ("logins", 2):
            raise OSError("database is locked")
        return record_chunk(self, record, *args, **kwargs)

    monkeypatch.setattr(Ledger, "record_chunk", failing)
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    options = RunOptions(now=NOW, state_url=state, coverage_gate=False, chunk_size=1)
    report = run_policy(policy, options)
    logins = next(o for o in report.outcomes if o.dataset == "logins")
    assert logins.error == "unexpected OSError: database is locked"
    engine = create_engine(url)
    with engine.connect() as connection:
        left = connection.execute(text("select count(*) from logins")).scalar_one()
    gone = 5 - left
    assert gone == 2  # two chunks committed before the failure stopped the binding
    audited = {e["dataset"]: e for e in audit.entries(open_state(state))}
    assert audited["logins"]["deleted"] == gone
