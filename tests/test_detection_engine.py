"""One detection engine: named recognizers, one registry, one overlap rule, offline set-up.

The scan (``anonymizers.detection.value_scan``) and the ``redact_text`` operator analyse
with the one analyzer of ``text_engine()``, whose registry ``recognizers.recognizer_registry``
builds; nested findings are settled by one rule (``text_engine.settle_nested``), so what the
scan finds is what gets redacted. The offline defaults (tldextract's suffix list, Prefect's
analytics) are made by ``anonymizers.offline`` before anything that reads them is imported.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    LocalRecognizer,
    PatternRecognizer,
    RecognizerResult,
)
from presidio_anonymizer.entities import OperatorConfig

from anonymizers.detection import classify_column, recognizers
from anonymizers.detection import text_engine as engine_module
from anonymizers.detection.entities import NAME_ONLY_ENTITIES, SCANNED_ENTITIES
from anonymizers.detection.text_engine import BATCH_SIZE, text_engine
from anonymizers.detection.value_scan import analyse_texts, entities_hit
from anonymizers.text_redaction import redact_once, redact_texts

REPO = Path(__file__).resolve().parents[1]
ENTITIES = [e for e in SCANNED_ENTITIES if e not in NAME_ONLY_ENTITIES]
TAG = re.compile(r"<([A-Z][A-Z_]*)>")

# ---------------------------------------------------------------------------------------
# Named recognizers, one registry
# ---------------------------------------------------------------------------------------


def test_every_recognizer_of_the_engine_is_a_named_class() -> None:
    """No recognizer is a bare Presidio base class configured in place: each one is a class
    whose name is the recognizer's name, and Tenure's live in ``recognizers``."""
    registry = text_engine().analyzer.registry
    bare = (PatternRecognizer, LocalRecognizer, EntityRecognizer)
    assert [_name(r) for r in registry.recognizers if type(r) in bare] == []
    assert [_name(r) for r in registry.recognizers if _name(r) != type(r).__name__] == []
    for language in ("en", "fr"):
        for recognizer in recognizers.tenure_recognizers(language):
            module = type(recognizer).__module__
            assert module == recognizers.__name__ or module.startswith("presidio_analyzer.")
            assert recognizer in registry.get_recognizers(language=language, all_fields=True)
    named = {type(r).__name__ for r in recognizers.tenure_recognizers("fr")}
    assert {"NanpPhoneRecognizer", "LooseEmailRecognizer", "GivenNameRecognizer"} <= named


def _name(recognizer: EntityRecognizer) -> str:
    """A recognizer's name (Presidio leaves the attribute's type to inference)."""
    return str(recognizer.to_dict()["name"])


def _signature(recognizer: EntityRecognizer) -> tuple[object, ...]:
    patterns = tuple(
        (p.name, p.regex, p.score) for p in getattr(recognizer, "patterns", None) or ()
    )
    return (
        type(recognizer),
        _name(recognizer),
        recognizer.supported_language,
        tuple(recognizer.supported_entities),
        patterns,
    )


def test_the_scan_and_redact_text_analyse_with_the_one_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every analysis the scan and ``redact_text`` make goes to the same registry object,
    with no recognizer passed on the side, and that registry is what the one function builds."""
    engine = text_engine()
    seen: list[tuple[int, bool]] = []
    analyze = AnalyzerEngine.analyze

    def recording(self: AnalyzerEngine, *args: Any, **kwargs: Any) -> Any:
        seen.append((id(self.registry), bool(kwargs.get("ad_hoc_recognizers"))))
        return analyze(self, *args, **kwargs)

    monkeypatch.setattr(AnalyzerEngine, "analyze", recording)
    notes = [
        f"Rappeler Marie Tremblay au 514-555-01{i:02d} ou écrire à client{i}@example.com, merci."
        for i in range(12)
    ]
    classify_column("notes", "text", notes)  # free text: spaCy in batches, every entity
    classify_column("contact", "text", ["Marie Tremblay", "TREM 8501 0112", "H2X 2T1"])
    scanned = len(seen)
    redact_texts(["Call Jean Gagnon at (438) 555-0199 or write j.gagnon@example.org."])
    assert 0 < scanned < len(seen)
    assert set(seen) == {(id(engine.analyzer.registry), False)}
    rebuilt = recognizers.recognizer_registry(engine.analyzer.nlp_engine, ["en", "fr"])
    assert [_signature(r) for r in engine.analyzer.registry.recognizers] == [
        _signature(r) for r in rebuilt.recognizers
    ]


# Planted values of each kind and the words between them: street names after people
# ("Saint-Laurent Ouest") make a place enclose a surer name, an e-mail encloses a URL.
PLANTED = [
    "Marie Tremblay",
    "Jean-François Gagnon",
    "Paul Roy",
    "marie.tremblay@example.com",
    "j.gagnon+crm@exemple.qc.ca",
    "514-555-0123",
    "(438) 555-0199",
    "+1 418 555 0100",
    "H2X 2T1",
    "046 454 286",
    "TREM 8501 0112",
    "4111 1111 1111 1111",
    "https://www.example.com/contact",
    "192.0.2.17",
    "boulevard Saint-Laurent Ouest",
    "Montréal",
    "Sherbrooke",
]
WORDS = [
    "Call",
    "Appelez",
    "Livraison au 1234",
    "about the invoice",
    "au sujet de la facture",
    "tél.",
    "or write",
    "Carte RAMQ",
    ",",
    ".",
]
planted_texts = st.lists(
    st.sampled_from(PLANTED) | st.sampled_from(WORDS), min_size=1, max_size=8
).map(" ".join)


def _redacted_from(text: str, findings: Sequence[RecognizerResult]) -> str:
    """``text`` with ``findings`` replaced by their tags, as the text engine's anonymizer
    replaces them."""
    if not findings:
        return text
    anonymized = text_engine().anonymizer.anonymize(
        text=text,
        analyzer_results=list(findings),  # type: ignore[arg-type]
        operators={"DEFAULT": OperatorConfig("replace")},
    )
    return str(anonymized.text)


@settings(max_examples=30, deadline=None)
@given(planted_texts)
@example("Livraison au 1234 boulevard Saint-Laurent Ouest , Montréal H2X 2T1")
@example("Visit https://www.example.com/contact or write marie@example.com")
def test_what_the_scan_finds_is_what_redact_text_redacts(text: str) -> None:
    """One pass of ``redact_text`` over a text replaces exactly the findings the scan keeps
    for it, and no other: each entity the scan reports is redacted, and each tag of the
    redaction is an entity the scan reports."""
    engine = text_engine()
    (found,) = analyse_texts([text], ENTITIES, free_text=True, batch_size=BATCH_SIZE)
    kept = engine_module.settle_nested(found)
    (redacted,) = redact_once(engine, [text], ENTITIES, 0.0)
    assert redacted == _redacted_from(text, kept)
    assert set(TAG.findall(redacted)) <= {result.entity_type for result in kept}
    assert entities_hit(text, found) <= {result.entity_type for result in kept}


def test_a_street_named_after_a_person_is_counted_as_it_is_redacted() -> None:
    """The street (a place) encloses a surer given name: the redaction hides the name and
    never the place, and the scan now counts the name alone (before, it also counted the
    place the redaction never hid)."""
    text = "Le bureau est au 455 rue Saint-Laurent Ouest."
    (found,) = analyse_texts([text], ENTITIES, free_text=True, batch_size=BATCH_SIZE)
    assert {(r.entity_type, text[r.start : r.end]) for r in found} == {
        ("LOCATION", "rue Saint-Laurent Ouest"),
        ("PERSON", "Laurent Ouest"),
    }
    assert entities_hit(text, found) == {"PERSON"}
    (redacted,) = redact_texts([text])
    assert set(TAG.findall(redacted)) == {"PERSON"}


# ---------------------------------------------------------------------------------------
# One overlap rule for nested findings
# ---------------------------------------------------------------------------------------

findings = st.lists(
    st.builds(
        lambda entity, start, length, score: RecognizerResult(entity, start, start + length, score),
        st.sampled_from(["PERSON", "LOCATION", "ORGANIZATION", "URL", "EMAIL_ADDRESS"]),
        st.integers(0, 30),
        st.integers(1, 30),
        st.sampled_from([0.0, 0.3, 0.4, 0.5, 0.85, 0.9, 1.0]),
    ),
    max_size=12,
)


def _nested(a: RecognizerResult, b: RecognizerResult) -> bool:
    return (a.start <= b.start and b.end <= a.end) or (b.start <= a.start and a.end <= b.end)


def _encloses_a_surer_one(result: RecognizerResult, results: list[RecognizerResult]) -> bool:
    """Why the redaction dropped a finding before the one rule (``_prefer_inner``)."""
    return any(
        other is not result
        and other.entity_type != result.entity_type
        and other.score > result.score
        and result.start <= other.start
        and other.end <= result.end
        for other in results
    )


def _inside_a_surer_one(result: RecognizerResult, results: list[RecognizerResult]) -> bool:
    """Why the scan dropped a finding before the one rule (``counted_results``)."""
    return any(
        other.entity_type != result.entity_type
        and other.score > result.score
        and other.start <= result.start
        and result.end <= other.end
        for other in results
    )


@settings(max_examples=500)
@given(findings)
def test_the_overlap_rule_leaves_no_nested_conflict_and_keeps_what_both_rules_kept(
    results: list[RecognizerResult],
) -> None:
    settled = engine_module.settle_nested(results)
    positions = [next(i for i, r in enumerate(results) if r is kept) for kept in settled]
    assert positions == sorted(set(positions)), "a sub-list of the findings, in their order"
    assert not [
        (a, b)
        for a in settled
        for b in settled
        if a.entity_type != b.entity_type and a.score > b.score and _nested(a, b)
    ], "no kept finding is nested with a surer kept finding of another type"
    for result in results:
        if not _encloses_a_surer_one(result, results) and not _inside_a_surer_one(result, results):
            assert any(kept is result for kept in settled), "kept by both old rules"
        if not _encloses_a_surer_one(result, results):  # the redaction hid it before
            assert any(kept.start <= result.start and result.end <= kept.end for kept in settled), (
                "the redaction hides no less than before"
            )
    assert engine_module.settle_nested(settled) == settled


def test_the_overlap_rule_on_findings_seen_in_real_text() -> None:
    organisation = RecognizerResult("ORGANIZATION", 0, 19, 0.34)  # "Call Marie Tremblay"
    person = RecognizerResult("PERSON", 5, 19, 0.9)
    email = RecognizerResult("EMAIL_ADDRESS", 30, 47, 1.0)  # "marie@example.com"
    domain = RecognizerResult("URL", 36, 47, 0.5)
    assert engine_module.settle_nested([organisation, person, email, domain]) == [person, email]
    # A finding beaten by a surer one beats no weaker one: the weak name inside the
    # street the given name beat is still hidden.
    street = RecognizerResult("LOCATION", 0, 30, 0.85)
    given = RecognizerResult("PERSON", 16, 30, 0.9)
    weak = RecognizerResult("PERSON", 0, 8, 0.4)
    assert engine_module.settle_nested([street, given, weak]) == [given, weak]


# ---------------------------------------------------------------------------------------
# Offline, from the first import
# ---------------------------------------------------------------------------------------

_PROBE = (
    "import json, sys\n"
    "{before}"
    "import {module}\n"
    "{after}"
    "import tldextract.tldextract\n"
    "from prefect.settings import get_current_settings\n"
    "print(json.dumps([list(tldextract.tldextract.TLD_EXTRACTOR.suffix_list_urls),\n"
    "                  get_current_settings().server.analytics_enabled]))\n"
)


def _probe(module: str, *, environ: dict[str, str], before: str = "", after: str = "") -> Any:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TLDEXTRACT_", "PREFECT_SERVER_ANALYTICS"))
    }
    env.update(environ, PYTHONPATH=str(REPO))
    code = _PROBE.format(module=module, before=before, after=after)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("module", ["flows.cli", "anonymizers.detection.text_engine"])
def test_importing_tenure_leaves_tldextract_offline_and_prefect_analytics_off(
    module: str,
) -> None:
    assert _probe(module, environ={}) == [[], False]


def test_a_users_own_prefect_analytics_setting_wins() -> None:
    environ = {"PREFECT_SERVER_ANALYTICS_ENABLED": "true"}
    assert _probe("flows.cli", environ=environ) == [[], True]


def test_tldextract_imported_first_is_taken_offline_by_the_engine() -> None:
    """A program that imported tldextract before Tenure still never fetches the list."""
    before = "import tldextract.tldextract as early\nassert early.TLD_EXTRACTOR.suffix_list_urls\n"
    after = "anonymizers.detection.text_engine.text_engine()\n"
    urls, _ = _probe("anonymizers.detection.text_engine", environ={}, before=before, after=after)
    assert urls == []
