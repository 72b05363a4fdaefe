"""Property tests over every registered operator, on whole columns.

Complements ``test_operators.py``, ``test_regions.py`` and ``test_text_redaction.py`` (which
check single values and exact outputs) with what a run relies on: outputs that do not
depend on how a table is chunked, ordered or indexed; no personal value surviving the
operators that remove information; well-formed surrogates; idempotence where documented;
nulls and the index kept by every operator.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import phonenumbers
import pytest
from faker.providers.person.en_US import Provider as EnglishNames
from faker.providers.person.fr_CA import Provider as QuebecNames
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.testing import assert_series_equal

from anonymizers.detection.text_engine import detect_language
from anonymizers.keyed import SURROGATE_KINDS, SURROGATE_LOCALES, surrogate_pool
from anonymizers.regions import PROVINCES, REGIONS, gazetteer
from anonymizers.registry import OPERATORS, create_operator

KEYS = {
    "TENURE_PSEUDONYM_KEY": "property-test-key-0123456789",
    "TENURE_PSEUDONYM_KEY_ARCHIVE": "property-archive-key-9876543210",
}
TORONTO = ZoneInfo("America/Toronto")
LOCALES = sorted(SURROGATE_LOCALES)
DATE_LEVELS = ["day", "month", "year", "decade"]
RESERVED_EMAIL_DOMAINS = {"example.com", "example.net", "example.org"}
RESERVED_TLDS = {"example", "test", "invalid", "localhost"}
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
POSTAL_CODE = re.compile(r"[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] \d[ABCEGHJ-NPRSTV-Z]\d")
ADDRESS = re.compile(
    rf"(?P<street>[^,]+), (?P<city>[^,]+), (?P<province>[A-Z]{{2}}) (?P<code>{POSTAL_CODE.pattern})"
)
PERSON_NAME = re.compile(r"[^\W\d_]+(?:[ '\u2019-][^\W\d_]+)*")
AGE_BAND = re.compile(r"\d+-\d+|\d+\+")
#: The first letters of each province's postal codes (Canada Post).
POSTAL_LETTERS = {
    "NL": "A", "NS": "B", "PE": "C", "NB": "E", "QC": "GHJ", "ON": "KLMNP", "MB": "R",
    "SK": "S", "AB": "T", "BC": "V", "NT": "X", "NU": "X", "YT": "Y",
}  # fmt: skip
#: The surrogate kind ``redact_text`` fills each tag with; other tags stay.
TAG_KINDS = {
    "<PERSON>": "name",
    "<EMAIL_ADDRESS>": "email",
    "<PHONE_NUMBER>": "phone",
    "<LOCATION>": "city",
    "<CA_POSTAL_CODE>": "postal_code",
}
TAG_SPLIT = re.compile(r"(<[A-Z][A-Z_]*>)")


@pytest.fixture(autouse=True, scope="module")
def _keys() -> Iterator[None]:
    """Known keys for the keyed operators, whatever the machine's environment holds."""
    with pytest.MonkeyPatch.context() as patch:
        for variable, key in KEYS.items():
            patch.setenv(variable, key)
        yield


def digits(text: str) -> str:
    """The digits of ``text``, so that a number is found in any layout."""
    return re.sub(r"\D", "", text)


def ascii_word(name: str) -> str:
    """A name as it would appear in an e-mail address: no accents, lower case letters."""
    bare = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", bare.lower()) or "x"


def luhn_completed(body: str) -> str:
    """``body`` followed by the check digit that makes it pass the Luhn test (as SINs do)."""
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str(-total % 10)


# Strategies: realistic personal values (Faker's name lists), dates, locations, notes.

first_names = st.sampled_from(sorted({*EnglishNames.first_names, *QuebecNames.first_names}))
last_names = st.sampled_from(sorted({*EnglishNames.last_names, *QuebecNames.last_names}))
names = st.builds("{} {}".format, first_names, last_names)
realistic_emails = st.builds(
    lambda first, last, separator, number, domain: (
        f"{ascii_word(first)}{separator}{ascii_word(last)}{number}@{domain}"
    ),
    first_names,
    last_names,
    st.sampled_from(["", ".", "_", "-"]),
    st.sampled_from(["", "7", "84", "1990"]),
    st.sampled_from(["gmail.com", "videotron.ca", "sympatico.ca", "hotmail.fr", "ulaval.ca"]),
)
emails = realistic_emails | st.emails()
phones = st.builds(
    lambda number, layout: layout.format(a=number[:3], b=number[3:6], c=number[6:]),
    st.from_regex(r"[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True),
    st.sampled_from(
        ["{a}-{b}-{c}", "({a}) {b}-{c}", "+1 {a} {b} {c}", "{a}.{b}.{c}", "1-{a}-{b}-{c}"]
    ),
)
sins = st.builds(
    lambda body, layout: layout.format(a=body[:3], b=body[3:6], c=body[6:]),
    st.from_regex(r"[1-79][0-9]{7}", fullmatch=True).map(luhn_completed),
    st.sampled_from(["{a} {b} {c}", "{a}-{b}-{c}", "{a}{b}{c}"]),
)
postal_codes = st.from_regex(POSTAL_CODE, fullmatch=True)
addresses = st.builds(
    "{} rue {}, {}, {} {}".format,
    st.integers(1, 99_999),
    last_names,
    st.sampled_from(sorted({name for name, _ in gazetteer()})),
    st.sampled_from(sorted(PROVINCES)),
    postal_codes,
)
personal = st.one_of(names, emails, phones, sins, addresses)
locations = addresses | st.sampled_from(sorted(REGIONS)) | st.text(max_size=30)
dates = st.dates(date(1900, 1, 1), date(2100, 12, 31))
datetimes = st.datetimes(datetime(1900, 1, 1), datetime(2100, 1, 1))
aware_datetimes = st.datetimes(
    datetime(1900, 1, 1), datetime(2100, 1, 1), timezones=st.just(TORONTO), allow_imaginary=False
)
#: How a birth date may be stored: as a date, a timestamp, or ISO text.
BIRTH_FORMS: dict[str, Callable[[date], object]] = {
    "date": lambda day: day,
    "datetime": lambda day: datetime(day.year, day.month, day.day, 13, 45),
    "timestamp": pd.Timestamp,
    "iso": date.isoformat,
    "iso with time": lambda day: f"{day.isoformat()} 23:59:59",
}
births = st.builds(
    lambda day, form: BIRTH_FORMS[form](day), dates, st.sampled_from(list(BIRTH_FORMS))
)
key_ids = st.sampled_from(["default", "archive"])
age_band_params = st.integers(1, 50).flatmap(
    lambda width: st.fixed_dictionaries(
        {
            "width": st.just(width),
            "top": st.integers(1, max(1, 130 // width)).map(lambda times: times * width),
            "as_of": st.one_of(dates, dates.map(date.isoformat)),
        }
    )
)


@dataclass(frozen=True)
class Person:
    """One person's identifiers, as a column or a free-text note holds them."""

    name: str
    email: str
    phone: str
    sin: str


NOTE_TEMPLATES = [
    "{name} called about a refund; email {email}, phone {phone}, SIN {sin}.",
    "Please call {name} at {phone} or write to {email}. SIN: {sin}",
    "{name} a appelé au sujet du dossier; courriel {email}, tél. {phone}, NAS {sin}.",
    "Rappeler {name} au {phone} ou écrire à {email}. NAS : {sin}",
]
people = st.builds(Person, names, emails, phones, sins)
notes_about = st.builds(
    lambda template, person: (template.format(**asdict(person)), person),
    st.sampled_from(NOTE_TEMPLATES),
    people,
)
notes = notes_about.map(lambda note: note[0])


def indexes(size: int) -> st.SearchStrategy[pd.Index]:
    """Any index a chunk may carry: positions, shuffled labels, repeated labels, text."""
    return st.one_of(
        st.just(pd.RangeIndex(size)),
        st.permutations(range(100, 100 + size)).map(pd.Index),
        st.lists(st.integers(-3, 3), min_size=size, max_size=size).map(pd.Index),
        st.lists(st.text(string.ascii_lowercase, max_size=2), min_size=size, max_size=size).map(
            pd.Index
        ),
    )


@dataclass(frozen=True)
class Case:
    """An operator, a strategy for its parameters, and the column values it is meant for."""

    label: str
    name: str
    params: st.SearchStrategy[dict[str, Any]]
    values: st.SearchStrategy[Any]
    dtype: str = "object"

    def series(self, values: list[Any], index: pd.Index | None = None) -> pd.Series:
        """The column of ``values``, of this case's dtype."""
        return pd.Series(values, index=index, dtype=self.dtype)


def fixed(**params: object) -> st.SearchStrategy[dict[str, Any]]:
    """Always the same parameters."""
    return st.just(params)


mask_params = st.fixed_dictionaries(
    {},
    optional={
        "masking_char": st.characters(exclude_categories=["Cs"]),
        "chars_to_mask": st.none() | st.integers(0, 12),
        "from_end": st.booleans(),
    },
)
date_levels = st.fixed_dictionaries({"to": st.sampled_from(DATE_LEVELS)})
floats = st.one_of(st.integers(-(10**6), 10**6).map(float), st.floats(allow_nan=False))
# Operators meant to be idempotent, each on the values it is meant for (all deterministic).
IDEMPOTENT_CASES = [
    Case("null", "null", fixed(), personal),
    Case("redact", "redact", fixed(), personal),
    Case("replace", "replace", st.fixed_dictionaries({"new_value": st.text(max_size=8)}), personal),
    Case("mask", "mask", mask_params, personal | st.integers()),
    Case("generalize-fsa", "generalize", fixed(to="fsa"), postal_codes | personal),
    Case(
        "generalize-ip_prefix",
        "generalize",
        fixed(to="ip_prefix"),
        st.ip_addresses().map(str) | personal,
    ),
    Case("generalize-region", "generalize", fixed(to="region"), locations | personal),
    Case("generalize-dates", "generalize", date_levels, dates | datetimes),
    Case(
        "generalize-datetime64",
        "generalize",
        date_levels,
        datetimes,
        "datetime64[us]",
    ),
    Case(
        "generalize-datetime64-tz",
        "generalize",
        date_levels,
        aware_datetimes,
        "datetime64[us, America/Toronto]",
    ),
    Case("age_band", "age_band", age_band_params, births | st.sampled_from(["30-39", "90+"])),
    Case("age_band-datetime64", "age_band", age_band_params, datetimes, "datetime64[us]"),
    Case("pseudonym", "pseudonym", st.fixed_dictionaries({"key_id": key_ids}), personal),
    Case(
        "pseudonym-float64",
        "pseudonym",
        st.fixed_dictionaries({"key_id": key_ids}),
        floats,
        "float64",
    ),
]
surrogate_params = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(sorted(SURROGATE_KINDS)),
        "locale": st.sampled_from(LOCALES),
        "key_id": key_ids,
    }
)
STRUCTURED_CASES = [
    *IDEMPOTENT_CASES,
    Case("surrogate", "surrogate", surrogate_params, personal),
    Case("surrogate-float64", "surrogate", surrogate_params, floats, "float64"),
]
TAG_CASE = Case("redact_text-tag", "redact_text", fixed(), notes | st.text(max_size=20))
TEXT_CASES = [
    TAG_CASE,
    Case(
        "redact_text-surrogate",
        "redact_text",
        st.fixed_dictionaries({"replace_with": st.just("surrogate"), "key_id": key_ids}),
        notes,
    ),
]


def cases(selected: list[Case]) -> list[Any]:
    """The cases as pytest parameters, named by their labels."""
    return [pytest.param(case, id=case.label) for case in selected]


def run(name: str, values: list[Any], **params: object) -> list[Any]:
    """The operator's output for ``values``, as a list."""
    return list(create_operator(name, params).operate(pd.Series(values, dtype=object)))


def check_deterministic(case: Case, data: st.DataObject, max_size: int) -> None:
    """The output of each row depends on that row's value (and the key) only."""
    params = data.draw(case.params, label="params")
    values = data.draw(st.lists(st.none() | case.values, max_size=max_size), label="values")
    if values:
        values += data.draw(st.lists(st.sampled_from(values), max_size=3), label="repeats")
    order = data.draw(st.permutations(range(len(values))), label="order")
    split = data.draw(st.integers(0, len(values)), label="split")
    index = data.draw(indexes(len(values)), label="index")
    operator = create_operator(case.name, params)
    series = case.series(values)

    whole = operator.operate(series)
    assert_series_equal(create_operator(case.name, params).operate(series), whole)
    halves = [operator.operate(series.iloc[:split]), operator.operate(series.iloc[split:])]
    assert_series_equal(pd.concat(halves), whole)
    moved = operator.operate(case.series([values[i] for i in order], index))
    assert_series_equal(moved, whole.iloc[list(order)].set_axis(index))
    first_seen: dict[tuple[str, str], Any] = {}
    for value, result in zip(values, whole, strict=True):
        if value is not None:
            assert first_seen.setdefault((type(value).__name__, repr(value)), result) == result


@pytest.mark.parametrize("case", cases(STRUCTURED_CASES))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_structured_operators_are_deterministic(case: Case, data: st.DataObject) -> None:
    """Same value and key, same output: in a fresh operator, whether the column is done
    whole or in two chunks, whatever its order and index. Runs chunk tables, so a value
    must not get another pseudonym because of its neighbours."""
    check_deterministic(case, data, max_size=8)


@pytest.mark.parametrize("case", cases(TEXT_CASES))
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_text_redaction_is_deterministic(case: Case, data: st.DataObject) -> None:
    """As above for ``redact_text``: spaCy batches texts, and the batch must not matter."""
    check_deterministic(case, data, max_size=3)


def test_every_operator_has_a_determinism_case() -> None:
    """A newly registered operator must be added to the cases above."""
    assert {case.name for case in [*STRUCTURED_CASES, *TEXT_CASES]} == set(OPERATORS)


# Irreversible: no personal value survives the operators that remove information.

REMOVING_OPERATORS = [
    ("null", {}),
    ("redact", {}),
    ("replace", {}),
    ("mask", {}),
    ("generalize", {"to": "fsa"}),
    ("generalize", {"to": "ip_prefix"}),
    ("generalize", {"to": "region"}),
    ("age_band", {"as_of": "2026-01-01"}),
    ("pseudonym", {}),
    ("pseudonym", {"key_id": "archive"}),
]


@pytest.mark.parametrize(("name", "params"), REMOVING_OPERATORS, ids=repr)
@settings(max_examples=40, deadline=None)
@given(values=st.lists(personal, min_size=1, max_size=8))
def test_no_personal_value_appears_anywhere_in_the_output(
    name: str, params: dict[str, object], values: list[str]
) -> None:
    """No input name, e-mail, phone, SIN or address is in any output cell, even as a
    substring or (for numbers) as the same digits in another layout."""
    outputs = [str(result) for result in run(name, values, **params) if result is not None]
    for value in values:
        for output in outputs:
            assert value.casefold() not in output.casefold()
            if len(digits(value)) >= 9:  # a phone number or a SIN
                assert digits(value)[-9:] not in digits(output)


def pool_variants(kind: str, locale: str) -> st.SearchStrategy[str]:
    """Values of the surrogate pool itself, as typed or in capitals: the likeliest inputs
    to collide with their own surrogate."""
    pool = st.sampled_from(surrogate_pool(kind, locale))
    return pool | pool.map(str.upper)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", sorted(SURROGATE_KINDS))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_surrogates_come_from_the_pool_and_never_echo_their_input(
    kind: str, locale: str, data: st.DataObject
) -> None:
    """Surrogates are not idempotent (they look real), but each is a pool value, and never
    its own input, whatever the case. (Another row's input it may be: pools are finite.)"""
    values = data.draw(st.lists(personal | pool_variants(kind, locale), min_size=1, max_size=8))
    key_id = data.draw(key_ids)
    pool = set(surrogate_pool(kind, locale))
    results = run("surrogate", values, kind=kind, locale=locale, key_id=key_id)
    for value, result in zip(values, results, strict=True):
        assert result in pool
        assert result.casefold() != value.casefold()


@settings(max_examples=20, deadline=None)
@given(note=notes_about, replace_with=st.sampled_from(["tag", "surrogate"]))
def test_redacted_notes_keep_no_personal_value(note: tuple[str, Person], replace_with: str) -> None:
    """Neither tags nor surrogates let the note's name, e-mail, phone or SIN through."""
    text, person = note
    (redacted,) = run("redact_text", [text], replace_with=replace_with)
    assert person.name not in redacted
    assert person.email.casefold() not in redacted.casefold()
    assert digits(person.phone)[-7:] not in digits(redacted)
    assert digits(person.sin) not in digits(redacted)


# Format-valid surrogates. Every output is a pool value (see above), so checking each pool
# entry checks every surrogate the operator can ever write.


def is_well_formed(kind: str, value: str) -> bool:
    """Whether ``value`` is a plausible, harmless surrogate of ``kind``."""
    if kind == "email":
        match = EMAIL.fullmatch(value)
        return match is not None and (
            match["domain"] in RESERVED_EMAIL_DOMAINS
            or match["domain"].rsplit(".", 1)[-1] in RESERVED_TLDS
        )
    if kind == "phone":
        number = phonenumbers.parse(value, "CA")
        return phonenumbers.is_valid_number_for_region(number, "CA")
    if kind == "postal_code":
        return POSTAL_CODE.fullmatch(value) is not None
    if kind == "address":
        match = ADDRESS.fullmatch(value)
        return match is not None and match["code"][0] in POSTAL_LETTERS[match["province"]]
    return PERSON_NAME.fullmatch(value) is not None  # first_name, last_name, name


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(
    "kind", ["email", "phone", "postal_code", "address", "name", "first_name", "last_name"]
)
def test_every_surrogate_is_well_formed(kind: str, locale: str) -> None:
    """E-mails at reserved domains, phones valid in Canada, postal codes in Canada Post's
    format, addresses ``street, city, PROV A1A 1A1`` whose code's first letter is the
    province's, names of letters, spaces, hyphens and apostrophes."""
    bad = [value for value in surrogate_pool(kind, locale) if not is_well_formed(kind, value)]
    assert not bad, bad[:5]


@pytest.mark.parametrize("locale", LOCALES)
def test_surrogate_addresses_generalize_to_their_own_province(locale: str) -> None:
    """A surrogate address is consistent: ``generalize to: region`` reads the province it
    names from its postal code (Nunavut's codes are X0A to X0C, other X ones are the
    Northwest Territories')."""
    pool = surrogate_pool("address", locale)
    regions = run("generalize", list(pool), to="region")
    bad = [
        (address, region)
        for address, region in zip(pool, regions, strict=True)
        if not (match := ADDRESS.fullmatch(address)) or region != PROVINCES[match["province"]]
    ]
    assert not bad, (len(bad), bad[:3])


def filled_from_pools(parts: list[str], text: str, locale: str) -> bool:
    """Whether ``text`` is ``parts`` (a tagged text split at its tags) with each tag of
    ``TAG_KINDS`` replaced by a value of its pool, and every other part kept."""
    if not parts:
        return not text
    head, rest = parts[0], parts[1:]
    kind = TAG_KINDS.get(head)
    candidates = [head] if kind is None else surrogate_pool(kind, locale)
    return any(
        text.startswith(candidate) and filled_from_pools(rest, text[len(candidate) :], locale)
        for candidate in candidates
    )


@settings(max_examples=15, deadline=None)
@given(note=notes_about, key_id=key_ids)
def test_text_surrogates_fill_the_tags_from_their_pools(
    note: tuple[str, Person], key_id: str
) -> None:
    """Surrogate mode is not idempotent; instead, it writes what tag mode writes, with
    each person, e-mail, phone, place and postal code tag replaced by a (well-formed) pool
    value in the note's language."""
    text, _ = note
    (tagged,) = run("redact_text", [text])
    (filled,) = run("redact_text", [text], replace_with="surrogate", key_id=key_id)
    parts = TAG_SPLIT.split(tagged)
    assert any(part in TAG_KINDS for part in parts)  # the note's name, e-mail, phone
    locale = "fr_CA" if detect_language(text) == "fr" else "en_CA"
    assert filled_from_pools(parts, filled, locale), (tagged, filled)


# Idempotent: applying twice is applying once, on the values each operator is meant for.


def check_idempotent(case: Case, data: st.DataObject, max_size: int) -> None:
    """Applying the operator to its own output changes nothing."""
    operator = create_operator(case.name, data.draw(case.params, label="params"))
    values = data.draw(st.lists(st.none() | case.values, max_size=max_size), label="values")
    once = operator.operate(case.series(values))
    assert_series_equal(operator.operate(once), once)


@pytest.mark.parametrize("case", cases(IDEMPOTENT_CASES))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_structured_operators_are_idempotent(case: Case, data: st.DataObject) -> None:
    """A rerun after a crash may see rows already anonymized: it must leave them alone."""
    check_idempotent(case, data, max_size=8)


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_tag_redaction_is_idempotent(data: st.DataObject) -> None:
    """Tags are recognised as done, even in the text around them."""
    check_idempotent(TAG_CASE, data, max_size=3)


# age_band


def expected_band(birth: date, as_of: date, width: int, top: int) -> str | None:
    """The band of the age reached on ``as_of``; None for a birth after ``as_of``."""
    age = as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))
    if age < 0:
        return None
    start = age // width * width
    return f"{top}+" if start >= top else f"{start}-{start + width - 1}"


@settings(max_examples=60, deadline=None)
@given(
    params=age_band_params,
    days=st.lists(st.tuples(dates, st.sampled_from(list(BIRTH_FORMS))), min_size=1, max_size=8),
    as_datetime64=st.booleans(),
)
def test_age_bands_hold_the_age_on_as_of_and_nothing_more(
    params: dict[str, Any], days: list[tuple[date, str]], as_datetime64: bool
) -> None:
    """Each birth date, however stored (in an object or a ``datetime64`` column), becomes
    the band of its age on ``as_of``: a label that holds no part of the date."""
    as_of = date.fromisoformat(str(params["as_of"]))
    if as_datetime64:
        values = pd.Series([pd.Timestamp(day) for day, _ in days], dtype="datetime64[us]")
    else:
        values = pd.Series([BIRTH_FORMS[form](day) for day, form in days], dtype=object)
    results = create_operator("age_band", params).operate(values)
    for (day, _), result in zip(days, results, strict=True):
        assert result == expected_band(day, as_of, params["width"], params["top"])
        assert result is None or AGE_BAND.fullmatch(result)


# Every operator: nulls stay null, the index is kept.

#: The fewest parameters each operator accepts; an operator not listed needs none.
MINIMAL_PARAMS: dict[str, dict[str, object]] = {
    "generalize": {"to": "fsa"},
    "surrogate": {"kind": "name"},
}
nulls = st.sampled_from([None, float("nan"), pd.NA, pd.NaT])


@pytest.mark.parametrize("name", sorted(OPERATORS))
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_nulls_stay_null_and_the_index_is_kept(name: str, data: st.DataObject) -> None:
    """Whatever the values and the index (repeated labels too), null cells come out
    ``None`` (NULL for every driver) and the index is unchanged."""
    anything = st.one_of(personal, st.text(max_size=12), dates, st.integers())
    values = data.draw(st.lists(nulls | anything, max_size=6), label="values")
    index = data.draw(indexes(len(values)), label="index")
    series = pd.Series(values, index=index, dtype=object)
    result = create_operator(name, MINIMAL_PARAMS.get(name, {})).operate(series)
    assert result.index.equals(series.index)
    assert len(result) == len(series)
    assert all(result.iloc[i] is None for i, value in enumerate(values) if pd.isna(value))
