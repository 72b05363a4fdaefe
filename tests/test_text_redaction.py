"""redact_text: Presidio over English and French free text, offline, idempotent."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import spacy.util
import sqlalchemy as sa
from faker import Faker
from faker.providers.person.en_US import Provider as EnglishNames
from faker.providers.person.fr_CA import Provider as QuebecNames
from hypothesis import given, settings
from hypothesis import strategies as st

from anonymizers.detection.text_engine import (
    MissingModel,
    TextEngine,
    detect_language,
    model_name,
    text_engine,
)
from anonymizers.registry import create_operator
from anonymizers.text_redaction import redact_texts, with_stand_ins

EXAMPLES = {
    "Call Marie Tremblay at 514-555-0123": "Call <PERSON> at <PHONE_NUMBER>",
    "Appelez Jean-François Gagnon au 438-555-0199": "Appelez <PERSON> au <PHONE_NUMBER>",
}
PHONE_LAYOUTS = ["(514) 555-0123", "514-555-0123", "+1 438 555 0199", "514.555.0123"]
ANY_EMAIL = re.compile(r"\S+@\S+\.\w+")
DIGIT_RUN = re.compile(r"\d{7,}")
EN_NOTES = [
    "{name} called about invoice {n}; reach them at {email} or {phone}.",
    "Left a voicemail for {name} ({phone}). Follow up by email: {email}.",
    "Customer {name} wants the address on file updated. Contact: {email}, tel. {phone}.",
]
FR_NOTES = [
    "{name} a appelé au sujet de la facture {n}; joindre au {phone} ou à {email}.",
    "Message laissé à {name} au {phone}. Relancer par courriel : {email}.",
    "Le client {name} demande la mise à jour de son dossier. Contact : {email}, tél. {phone}.",
]


class Connections:
    """Every outbound connection and name lookup attempted while it was installed."""

    def __init__(self) -> None:
        self.attempts: list[Any] = []


@pytest.fixture(scope="module")
def network() -> Iterator[Connections]:
    """Record (and refuse) non-loopback connects and DNS look-ups, on top of conftest's guard.

    Libraries catch connection errors (tldextract falls back to its snapshot), so a refused
    connection alone would go unnoticed: the record is what the test checks.
    """
    seen = Connections()
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def recording_connect(sock: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            seen.attempts.append(address)
        return connect(sock, address)

    def recording_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (None, "localhost", "127.0.0.1", "::1"):
            seen.attempts.append(host)
            raise socket.gaierror(f"no name look-ups in tests: {host!r}")
        return getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", recording_connect)
        patch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
        yield seen


@pytest.fixture(scope="module")
def engine(network: Connections) -> TextEngine:
    """Built once for the module, from scratch, while the network is watched."""
    text_engine.cache_clear()
    built = text_engine()
    redact_texts(["Write to marie.tremblay@example.com or call +1 438 555 0199."])
    return built


def faker_notes(count: int, seed: int) -> list[tuple[str, dict[str, str]]]:
    """Notes in both languages, each with a Faker name, e-mail and phone number."""
    notes = []
    for i in range(count):
        fake = Faker("en_CA" if i % 2 == 0 else "fr_CA")
        fake.seed_instance(seed + i)
        parts = {
            "name": f"{fake.first_name()} {fake.last_name()}",
            "email": fake.email(),
            "phone": fake.phone_number(),
            "n": str(fake.random_int(1000, 99999)),
        }
        template = (EN_NOTES if i % 2 == 0 else FR_NOTES)[i % 3]
        notes.append((template.format(**parts), parts))
    return notes


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def test_building_and_redacting_opens_no_connection(
    engine: TextEngine, network: Connections
) -> None:
    redact_texts(["Courriel : jf.gagnon@exemple.ca, site https://exemple.ca"])
    assert network.attempts == []


@pytest.mark.parametrize(("text", "expected"), EXAMPLES.items())
def test_the_example_sentences(engine: TextEngine, text: str, expected: str) -> None:
    assert redact_texts([text]) == [expected]


@pytest.mark.parametrize("phone", PHONE_LAYOUTS)
@pytest.mark.parametrize(
    "template", ["Please call me at {} tomorrow.", "Rappelez-moi au {} demain, merci."]
)
def test_phone_layouts(engine: TextEngine, phone: str, template: str) -> None:
    (redacted,) = redact_texts([template.format(phone)])
    assert "<PHONE_NUMBER>" in redacted
    assert "555" not in redacted


def test_emails_postal_codes_and_sins(engine: TextEngine) -> None:
    text = "Écrivez à jf.gagnon@exemple.ca, code postal H3C 2G9, NAS 130 692 544."
    (redacted,) = redact_texts([text])
    assert "<EMAIL_ADDRESS>" in redacted and "exemple" not in redacted
    assert "<CA_POSTAL_CODE>" in redacted and "2G9" not in redacted
    assert "<CA_SIN>" in redacted and "692" not in redacted


def test_faker_notes_keep_no_email_phone_or_name(engine: TextEngine) -> None:
    notes = faker_notes(12, seed=2024)
    redacted = redact_texts([note for note, _ in notes])
    for out, (note, parts) in zip(redacted, notes, strict=True):
        assert parts["email"] not in out and not ANY_EMAIL.search(out), (note, out)
        assert digits(parts["phone"])[-7:] not in digits(out), (note, out)
        assert not DIGIT_RUN.search(out.replace(parts["n"], "")), (note, out)
        assert parts["name"] not in out, (note, out)
        assert "<EMAIL_ADDRESS>" in out and "<PHONE_NUMBER>" in out


def test_redacting_again_changes_nothing(engine: TextEngine) -> None:
    once = redact_texts([note for note, _ in faker_notes(12, seed=7)] + list(EXAMPLES))
    assert redact_texts(once) == once


first_names = st.sampled_from(sorted(EnglishNames.first_names) + sorted(QuebecNames.first_names))
last_names = st.sampled_from(sorted(EnglishNames.last_names) + sorted(QuebecNames.last_names))
phones = st.builds(
    lambda digits, layout: layout.format(a=digits[:3], b=digits[3:6], c=digits[6:]),
    st.from_regex(r"[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True),
    st.sampled_from(["{a}-{b}-{c}", "({a}) {b}-{c}", "+1 {a} {b} {c}", "{a}.{b}.{c}"]),
)
sentences = st.sampled_from(
    [
        "{first} {last} asked for a refund. Email {email}, phone {phone}.",
        "Call {first} {last} at {phone} or write to {email}.",
        "Rappeler {first} {last} au {phone} ou écrire à {email}.",
        "Le dossier de {first} {last} est fermé; courriel {email}, tél. {phone}.",
    ]
)


@settings(max_examples=20, deadline=None)
@given(
    sentence=sentences,
    first=first_names,
    last=last_names,
    email=st.emails(),
    phone=phones,
)
def test_generated_notes_are_irreversible_and_idempotent(
    engine: TextEngine, sentence: str, first: str, last: str, email: str, phone: str
) -> None:
    text = sentence.format(first=first, last=last, email=email, phone=phone)
    (once,) = redact_texts([text])
    assert email not in once
    assert digits(phone) not in digits(once)
    assert f"{first} {last}" not in once
    assert redact_texts([once]) == [once]


def test_already_redacted_text_is_left_alone(engine: TextEngine) -> None:
    done = "Call <PERSON> at <PHONE_NUMBER> or write to <EMAIL_ADDRESS>."
    assert redact_texts([done]) == [done]


def test_stand_ins_keep_offsets() -> None:
    text = "<PERSON> <PHONE_NUMBER> <EMAIL_ADDRESS> <LOCATION> <DATE_TIME> <CUSTOM_TAG>."
    for language in ("en", "fr"):
        seen = with_stand_ins(text, language)
        assert len(seen) == len(text)
        assert "<" not in seen


def test_operator_keeps_nulls_index_and_restricts_entities(engine: TextEngine) -> None:
    values = pd.Series(
        ["Email marie@example.com or call 514-555-0123", None, "", float("nan")],
        index=[10, 11, 12, 13],
    )
    emails_only = create_operator("redact_text", {"entities": ["EMAIL_ADDRESS"]})
    result = emails_only.operate(values)
    assert list(result.index) == [10, 11, 12, 13]
    assert result[10] == "Email <EMAIL_ADDRESS> or call 514-555-0123"
    assert result[11] is None and result[13] is None and result[12] == ""
    column = sa.column("c", sa.String())
    assert create_operator("redact_text", {}).sql_expression(column, "sqlite") is None


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Call Marie Tremblay at 514-555-0123", "en"),
        ("Appelez Jean-François Gagnon au 438-555-0199", "fr"),
        ("Le client a payé sa facture.", "fr"),
        ("The customer paid the invoice.", "en"),
        ("", "en"),
    ],
)
def test_language_detection(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_a_missing_model_is_an_error_not_a_download(
    monkeypatch: pytest.MonkeyPatch, network: Connections
) -> None:
    monkeypatch.setenv("TENURE_SPACY_EN_MODEL", "en_core_web_sm_not_installed")
    with pytest.raises(MissingModel, match="TENURE_SPACY_EN_MODEL"):
        model_name("en")
    assert network.attempts == []


def test_models_can_be_named_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(spacy.util.get_package_path("fr_core_news_sm"))
    monkeypatch.setenv("TENURE_SPACY_FR_MODEL", path)
    assert model_name("fr") == path
    monkeypatch.delenv("TENURE_SPACY_FR_MODEL")
    assert model_name("fr") == "fr_core_news_sm"
