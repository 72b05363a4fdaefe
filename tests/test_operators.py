"""The anonymization operators: parameters, nulls, determinism, irreversibility, idempotence."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import string
import subprocess
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

import anonymizers.keyed
import anonymizers.secrets
from anonymizers.keyed import POOL_SIZE, surrogate_pool
from anonymizers.operators import Operator, OperatorError
from anonymizers.registry import OPERATORS, create_operator
from anonymizers.secrets import MissingSecret, pseudonym_key
from tests.support.keys import PSEUDONYM_KEYS
from tests.support.paths import REPO

KEY = PSEUDONYM_KEYS["TENURE_PSEUDONYM_KEY"]
OTHER_KEY = "another-test-key-fedcba9876543210"
ARCHIVE_KEY = "archive-key-material-000000000000"
TORONTO = ZoneInfo("America/Toronto")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
SURROGATE_PHONE = re.compile(r"\d{3}-555-01\d{2}")


@pytest.fixture(autouse=True, scope="module")
def _keys(pseudonym_keys: dict[str, str]) -> Iterator[None]:
    """Known keys for the whole module, whatever the machine's environment holds: the
    suite's, and the archive's of this module's policies."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TENURE_PSEUDONYM_KEY_ARCHIVE", ARCHIVE_KEY)
        yield


def op(name: str, **params: object) -> Operator:
    return create_operator(name, params)


def run(operator: Operator, values: list[Any]) -> list[Any]:
    return list(operator.operate(pd.Series(values, dtype=object)))


# Strategies: Faker-like e-mails, phones and names.
names = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(string.ascii_uppercase),
    st.text(string.ascii_lowercase, min_size=3, max_size=12),
)
phone_digits = st.from_regex(r"[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True)
phones = st.builds(
    lambda digits, layout: layout.format(a=digits[:3], b=digits[3:6], c=digits[6:]),
    phone_digits,
    st.sampled_from(["{a}-{b}-{c}", "({a}) {b}-{c}", "+1 {a} {b} {c}", "{a}.{b}.{c}"]),
)
personal = st.one_of(st.emails(), phones, names)
texts = st.text(max_size=30)
optional_texts = st.lists(st.one_of(st.none(), texts), max_size=12)


# Registry and parameters.


def test_every_operator_is_registered() -> None:
    names = ["null", "redact", "replace", "mask", "pseudonym", "surrogate", "generalize"]
    assert [*names, "age_band", "redact_text"] == list(OPERATORS)


def test_unknown_operator_lists_the_known_ones() -> None:
    with pytest.raises(OperatorError, match=r"unknown operator 'hash'.*mask.*pseudonym"):
        create_operator("hash", {})


@pytest.mark.parametrize(
    ("name", "params", "param"),
    [
        ("null", {"value": 1}, "value"),
        ("replace", {"new_value": 3}, "new_value"),
        ("mask", {"masking_char": "**"}, "masking_char"),
        ("mask", {"masking_char": ""}, "masking_char"),
        ("mask", {"chars_to_mask": -1}, "chars_to_mask"),
        ("mask", {"chars_to_mask": "4"}, "chars_to_mask"),
        ("mask", {"chars_to_mask": True}, "chars_to_mask"),
        ("mask", {"from_end": "yes"}, "from_end"),
        ("pseudonym", {"key_id": "Prod-Key"}, "key_id"),
        ("pseudonym", {"key_id": 7}, "key_id"),
        ("surrogate", {}, "kind"),
        ("surrogate", {"kind": "ssn"}, "kind"),
        ("surrogate", {"kind": "email", "locale": "de_DE"}, "locale"),
        ("generalize", {}, "to"),
        ("generalize", {"to": "week"}, "to"),
        ("generalize", {"to": "month", "tz": "UTC"}, "tz"),
        ("redact_text", {"entities": "PERSON"}, "entities"),
        ("redact_text", {"entities": []}, "entities"),
        ("redact_text", {"score_threshold": 2}, "score_threshold"),
        ("redact_text", {"score_threshold": "high"}, "score_threshold"),
    ],
)
def test_bad_parameters_name_the_operator_and_parameter(
    name: str, params: dict[str, object], param: str
) -> None:
    with pytest.raises(OperatorError) as raised:
        create_operator(name, params)
    assert f"'{name}'" in str(raised.value)
    assert f"'{param}'" in str(raised.value)


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        (op("redact"), ""),
        (op("replace"), "<REDACTED>"),
        (op("replace", new_value="[gone]"), "[gone]"),
    ],
)
def test_constant_operators_have_an_sql_constant(operator: Operator, expected: str) -> None:
    column = sa.column("c", sa.String())
    for dialect in ("sqlite", "postgresql", "mysql"):
        expression = operator.sql_expression(column, dialect)
        assert isinstance(expression, sa.BindParameter) and expression.value == expected


# Properties every operator shares.

ALL_TEXT_OPERATORS = [
    op("null"),
    op("redact"),
    op("replace"),
    op("mask"),
    op("mask", chars_to_mask=2, from_end=True),
    op("pseudonym"),
    op("surrogate", kind="name"),
    op("generalize", to="fsa"),
    op("generalize", to="ip_prefix"),
]


@pytest.mark.parametrize("operator", ALL_TEXT_OPERATORS, ids=repr)
@settings(max_examples=30, deadline=None)
@given(values=optional_texts, start=st.integers(-5, 5))
def test_nulls_stay_null_and_the_index_is_kept(
    operator: Operator, values: list[str | None], start: int
) -> None:
    index = pd.Index([start + 2 * i for i in range(len(values))][::-1])
    series = pd.Series(values, index=index, dtype=object)
    series[series.index[::3]] = float("nan")  # a NaN is null too
    result = operator.operate(series)
    assert result.index.equals(series.index)
    assert all(value is None for value in result[series.isna()])
    if operator.name not in ("null", "generalize"):  # those may null a value on purpose
        assert not result[series.notna()].isna().any()


@pytest.mark.parametrize(
    "operator",
    [op("null"), op("redact"), op("replace"), op("mask"), op("pseudonym")]
    + [op("surrogate", kind=kind) for kind in ("name", "email", "phone")],
    ids=repr,
)
@settings(max_examples=40, deadline=None)
@given(value=personal)
def test_no_personal_value_survives(operator: Operator, value: str) -> None:
    (result,) = run(operator, [value])
    assert result is None or value.lower() not in str(result).lower()


@pytest.mark.parametrize(
    ("operator", "value"),
    [
        (op("null"), "Marie Tremblay"),
        (op("redact"), "Marie Tremblay"),
        (op("replace", new_value="<NAME>"), "Marie Tremblay"),
        (op("mask", masking_char="#"), "Marie Tremblay"),
    ],
)
def test_constant_operators_follow_presidio(operator: Operator, value: str) -> None:
    expected = {"null": None, "redact": "", "replace": "<NAME>", "mask": "#" * len(value)}
    assert run(operator, [value, value]) == [expected[operator.name]] * 2


# mask


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"chars_to_mask": 12}, "************1111"),
        ({"chars_to_mask": 12, "from_end": True}, "4111************"),
        ({"chars_to_mask": 40}, "*" * 16),
        ({"chars_to_mask": 0}, "4111111111111111"),
        ({"masking_char": "\\", "chars_to_mask": 2, "from_end": True}, "41111111111111\\\\"),
    ],
)
def test_mask_like_presidio(params: dict[str, object], expected: str) -> None:
    assert run(op("mask", **params), ["4111111111111111"]) == [expected]


@settings(max_examples=60, deadline=None)
@given(
    value=st.text(min_size=1, max_size=40),
    count=st.none() | st.integers(0, 50),
    from_end=st.booleans(),
    char=st.characters(exclude_categories=["Cs"]),
)
def test_mask_hides_exactly_the_requested_characters(
    value: str, count: int | None, from_end: bool, char: str
) -> None:
    operator = op("mask", masking_char=char, from_end=from_end, chars_to_mask=count)
    (masked,) = run(operator, [value])
    hidden = len(value) if count is None else min(count, len(value))
    kept = len(value) - hidden
    assert len(masked) == len(value)
    if from_end:
        assert masked[:kept] == value[:kept] and masked[kept:] == char * hidden
    else:
        assert masked[hidden:] == value[hidden:] and masked[:hidden] == char * hidden


@settings(max_examples=30, deadline=None)
@given(values=optional_texts)
def test_masking_everything_is_idempotent(values: list[str | None]) -> None:
    operator = op("mask")
    once = operator.operate(pd.Series(values, dtype=object))
    assert list(operator.operate(once)) == list(once)


def test_mask_turns_numbers_into_masked_text() -> None:
    assert run(op("mask", chars_to_mask=3), [12345, None]) == ["***45", None]


# pseudonym


def expected_pseudonym(value: str, key: str = KEY, key_id: str = "default") -> str:
    digest = hmac.new(key.encode(), value.encode(), hashlib.sha256).digest()
    return f"psn_{key_id}_{base64.b32encode(digest).decode().lower()[:20]}"


@settings(max_examples=40, deadline=None)
@given(value=personal)
def test_pseudonym_is_the_keyed_hmac_and_idempotent(value: str) -> None:
    operator = op("pseudonym")
    (once,) = run(operator, [value])
    assert once == expected_pseudonym(value)
    assert re.fullmatch(r"psn_default_[a-z2-7]{20}", once)
    assert run(operator, [once]) == [once]


@settings(max_examples=30, deadline=None)
@given(value=personal)
def test_pseudonyms_depend_on_the_key(value: str) -> None:
    (default,) = run(op("pseudonym"), [value])
    (archive,) = run(op("pseudonym", key_id="archive"), [value])
    assert archive == expected_pseudonym(value, ARCHIVE_KEY, "archive")
    assert default[-20:] != archive[-20:]


def test_a_new_key_gives_new_pseudonyms(monkeypatch: pytest.MonkeyPatch) -> None:
    values = ["Marie Tremblay", "marie@example.com", "514-555-0123"]
    before = run(op("pseudonym"), values)
    monkeypatch.setenv("TENURE_PSEUDONYM_KEY", OTHER_KEY)
    after = run(op("pseudonym"), values)
    assert all(old != new for old, new in zip(before, after, strict=True))
    assert after == [expected_pseudonym(value, OTHER_KEY) for value in values]


def test_another_key_ids_pseudonym_is_not_taken_as_done() -> None:
    (archived,) = run(op("pseudonym", key_id="archive"), ["Marie"])
    (again,) = run(op("pseudonym"), [archived])
    assert again == expected_pseudonym(archived)


def test_whole_floats_pseudonymize_like_integers() -> None:
    operator = op("pseudonym")
    as_floats = operator.operate(pd.Series([42.0, None, 7.0]))
    as_ints = operator.operate(pd.Series([42, 7]))
    expected = [expected_pseudonym("42"), expected_pseudonym("7")]
    assert [as_floats[0], as_floats[2]] == list(as_ints) == expected


def test_hmac_runs_once_per_distinct_value(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = anonymizers.keyed.hmac_sha256_many

    def counting(key: bytes, messages: Iterable[bytes]) -> list[bytes]:
        messages = list(messages)
        calls.extend(messages)
        return real(key, messages)

    monkeypatch.setattr(anonymizers.keyed, "hmac_sha256_many", counting)
    values = pd.Series(["a", "b", "c"] * 500 + [None] * 10, dtype=object)
    result = op("pseudonym").operate(values)
    assert sorted(calls) == [b"a", b"b", b"c"]
    assert result.nunique() == 3 and result.isna().sum() == 10


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=0, max_size=200), messages=st.lists(st.binary(max_size=300)))
def test_batched_hmac_equals_the_standard_library(key: bytes, messages: list[bytes]) -> None:
    # Keys longer than SHA-256's 64-byte block are hashed first (RFC 2104): both sides.
    expected = [hmac.new(key, message, hashlib.sha256).digest() for message in messages]
    assert anonymizers.keyed.hmac_sha256_many(key, messages) == expected


@settings(max_examples=60, deadline=None)
@given(digests=st.lists(st.binary(min_size=32, max_size=32), min_size=1), chars=st.integers(1, 51))
def test_vectorized_base32_equals_the_standard_library(digests: list[bytes], chars: int) -> None:
    encoded = anonymizers.keyed.base32_prefixes(digests, chars)
    got = [bytes(row).decode("ascii") for row in encoded]
    assert got == [base64.b32encode(digest).decode().lower()[:chars] for digest in digests]


# surrogate


@pytest.mark.parametrize("locale", ["en_CA", "fr_CA"])
@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("email", EMAIL),
        ("phone", SURROGATE_PHONE),
        ("first_name", re.compile(r"[^\W\d_][\w' -]*")),
        ("last_name", re.compile(r"[^\W\d_][\w' -]*")),
        ("name", re.compile(r"[^\W\d_][\w'-]* [^\W\d_][\w' -]*")),
        ("street_address", re.compile(r"\d+ .+")),
        ("city", re.compile(r"\S.*")),
    ],
)
def test_surrogates_are_well_formed(kind: str, pattern: re.Pattern[str], locale: str) -> None:
    pool = surrogate_pool(kind, locale)
    assert len(pool) == POOL_SIZE
    assert surrogate_pool(kind, locale) is pool  # built once per process
    bad = [value for value in pool if not pattern.fullmatch(value)]
    assert not bad, bad[:5]


@settings(max_examples=40, deadline=None)
@given(value=personal, kind=st.sampled_from(["email", "phone", "name"]))
def test_surrogates_are_deterministic_and_formatted(value: str, kind: str) -> None:
    operator = op("surrogate", kind=kind, locale="fr_CA")
    first, second = run(operator, [value, value])
    assert first == second == run(op("surrogate", kind=kind, locale="fr_CA"), [value])[0]
    assert first != value
    if kind == "email":
        assert EMAIL.fullmatch(first)
    if kind == "phone":
        assert SURROGATE_PHONE.fullmatch(first)


def test_surrogates_depend_on_the_key() -> None:
    values = [f"person-{number}" for number in range(40)]
    default = run(op("surrogate", kind="email"), values)
    archive = run(op("surrogate", kind="email", key_id="archive"), values)
    assert default != archive
    assert len(set(default)) > 30  # spread over the pool, not a few values


def test_a_surrogate_never_returns_its_input(monkeypatch: pytest.MonkeyPatch) -> None:
    crowded = ("Marie",) * (POOL_SIZE - 1) + ("Luc",)
    monkeypatch.setattr(anonymizers.keyed, "surrogate_pool", lambda kind, locale: crowded)
    assert run(op("surrogate", kind="first_name"), ["Marie", "MARIE", "Jean"]) == [
        "Luc",
        "Luc",
        "Marie",
    ]


def test_same_output_in_another_process() -> None:
    """Pseudonyms and surrogates must not depend on hash randomization or process state."""
    script = (
        "import json, pandas as pd\n"
        "from anonymizers.registry import create_operator\n"
        "values = pd.Series(['Marie Tremblay', 'jean@example.com'])\n"
        "print(json.dumps([list(create_operator(n, p).operate(values)) for n, p in ("
        "('pseudonym', {}), ('surrogate', {'kind': 'name', 'locale': 'fr_CA'}))]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "TENURE_PSEUDONYM_KEY": KEY}
    child = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert child.returncode == 0, child.stderr
    values = ["Marie Tremblay", "jean@example.com"]
    here = [run(op("pseudonym"), values), run(op("surrogate", kind="name", locale="fr_CA"), values)]
    assert json.loads(child.stdout) == here


# keys


def test_a_missing_key_says_where_to_put_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENURE_PSEUDONYM_KEY")
    monkeypatch.setattr(anonymizers.secrets, "_prefect_secret", lambda block: None)
    with pytest.raises(MissingSecret) as raised:
        op("pseudonym").operate(pd.Series(["Marie"]))
    message = str(raised.value)
    assert "TENURE_PSEUDONYM_KEY" in message and "tenure-pseudonym-key" in message
    assert ARCHIVE_KEY not in message and KEY not in message
    assert isinstance(raised.value, OperatorError)


def test_a_short_key_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENURE_PSEUDONYM_KEY", "tooshort-secret")
    with pytest.raises(MissingSecret) as raised:
        pseudonym_key()
    assert "16 bytes" in str(raised.value)
    assert "tooshort" not in str(raised.value)
    assert "tooshort" not in repr(raised.value)


def test_keys_never_appear_in_operator_reprs() -> None:
    operator = op("pseudonym", key_id="archive")
    run(operator, ["Marie"])
    assert ARCHIVE_KEY not in repr(operator) and ARCHIVE_KEY not in str(vars(operator))


def test_a_prefect_secret_block_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, temporary_settings

    asked: list[str] = []

    def load(name: str, **_: object) -> Any:
        asked.append(name)
        return Secret(value="block-key-material-0123456789")

    monkeypatch.delenv("TENURE_PSEUDONYM_KEY_ARCHIVE")
    monkeypatch.setattr(Secret, "load", load)
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert pseudonym_key("archive") == b"block-key-material-0123456789"
    assert asked == ["tenure-pseudonym-key-archive"]


def test_without_a_prefect_api_no_block_is_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def load(name: str, **_: object) -> Any:
        raise AssertionError("would start a temporary Prefect server")

    monkeypatch.delenv("TENURE_PSEUDONYM_KEY")
    monkeypatch.setattr(Secret, "load", load)
    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(MissingSecret):
        pseudonym_key()


# generalize

zones: st.SearchStrategy[Any] = st.sampled_from([None, UTC, TORONTO])
moments = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=zones
)
LEVELS = ["day", "month", "year", "decade"]


def check_truncated(original: date, result: date, level: str) -> None:
    assert type(result) is type(original)
    if isinstance(original, datetime) and isinstance(result, datetime):
        assert result.tzinfo == original.tzinfo
        assert (result.hour, result.minute, result.second, result.microsecond) == (0, 0, 0, 0)
        original, result = original.date(), result.date()
    assert result <= original
    expected = {
        "day": original,
        "month": original.replace(day=1),
        "year": original.replace(month=1, day=1),
        "decade": date(original.year - original.year % 10, 1, 1),
    }[level]
    assert result == expected


@settings(max_examples=40, deadline=None)
@given(moment=moments, level=st.sampled_from(LEVELS), as_date=st.booleans())
def test_python_dates_are_truncated_keeping_type_and_zone(
    moment: datetime, level: str, as_date: bool
) -> None:
    value: date = moment.date() if as_date else moment
    operator = op("generalize", to=level)
    (once,) = run(operator, [value])
    check_truncated(value, once, level)
    assert run(operator, [once]) == [once]


@settings(max_examples=30, deadline=None)
@given(
    stamps=st.lists(st.datetimes(datetime(1970, 1, 1), datetime(2080, 1, 1)), max_size=8),
    level=st.sampled_from(LEVELS),
    zone=st.sampled_from([None, "UTC", "America/Toronto"]),
)
def test_timestamp_columns_are_truncated_vectorized(
    stamps: list[datetime], level: str, zone: str | None
) -> None:
    series = pd.Series(pd.to_datetime([*stamps, None]), dtype="datetime64[us]")
    if zone:
        series = series.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    operator = op("generalize", to=level)
    once = operator.operate(series)
    assert once.dtype == series.dtype
    assert list(once.isna()) == list(series.isna())
    for original, result in zip(series.dropna(), once.dropna(), strict=True):
        check_truncated(original, result, level)
    assert operator.operate(once).equals(once)


def test_aware_timestamps_stay_in_their_zone() -> None:
    series = pd.Series([pd.Timestamp("2024-11-03 23:30", tz=TORONTO)])
    (result,) = op("generalize", to="day").operate(series)
    assert result == pd.Timestamp("2024-11-03", tz=TORONTO)
    (month,) = run(op("generalize", to="month"), [datetime(2024, 3, 10, 5, tzinfo=TORONTO)])
    assert month == datetime(2024, 3, 1, tzinfo=TORONTO)


def test_non_dates_cannot_be_generalized_to_a_month() -> None:
    with pytest.raises(OperatorError, match=r"'to'.*str") as raised:
        run(op("generalize", to="month"), ["2024-05-17 Marie"])
    assert "Marie" not in str(raised.value)


postal_codes = st.from_regex(r"[A-Za-z][0-9][A-Za-z] ?[0-9][A-Za-z][0-9]", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(code=postal_codes, padding=st.sampled_from(["", " ", "  "]))
def test_postal_codes_keep_their_forward_sortation_area(code: str, padding: str) -> None:
    operator = op("generalize", to="fsa")
    (area,) = run(operator, [padding + code])
    assert area == code[:3].upper()
    assert run(operator, [area]) == [area]


def test_fsa_examples() -> None:
    assert run(op("generalize", to="fsa"), ["H3C 2G9", "h2x1y4", "12345", "", None]) == [
        "H3C",
        "H2X",
        None,
        None,
        None,
    ]


@settings(max_examples=40, deadline=None)
@given(address=st.ip_addresses())
def test_ip_addresses_keep_their_network(address: ipaddress.IPv4Address) -> None:
    operator = op("generalize", to="ip_prefix")
    (prefix,) = run(operator, [str(address)])
    bits = 24 if address.version == 4 else 48
    network = ipaddress.ip_network(f"{address}/{bits}", strict=False)
    assert prefix == str(network.network_address)
    assert address in network
    assert run(operator, [prefix]) == [prefix]


def test_ip_prefix_examples() -> None:
    values = ["192.0.2.77", "2001:db8:abcd:12::1", "10.1.2.3/8", "not an ip", "999.1.1.1"]
    assert run(op("generalize", to="ip_prefix"), values) == [
        "192.0.2.0",
        "2001:db8:abcd::",
        "10.1.2.0",
        None,
        None,
    ]


def test_generalize_keeps_dates_as_dates() -> None:
    values = [date(2024, 5, 17), None, datetime(2019, 3, 4, 5, 6, tzinfo=UTC)]
    assert run(op("generalize", to="decade"), values) == [
        date(2020, 1, 1),
        None,
        datetime(2010, 1, 1, tzinfo=UTC),
    ]
    late = datetime(2024, 12, 31, 23, 59) + timedelta(microseconds=999_999)
    assert run(op("generalize", to="year"), [late]) == [datetime(2024, 1, 1)]
