"""Keyed operators: stable pseudonyms and realistic surrogates from HMAC-SHA256.

Both hash ``str(value)`` with a secret key, so the same person gets the same pseudonym in
every table and every run (joins keep working), while without the key nobody can recompute
or reverse the mapping.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from anonymizers.operators import Operator, map_distinct, map_non_null
from anonymizers.secrets import DEFAULT_KEY_ID, KEY_ID_RULE, is_valid_key_id, pseudonym_key
from connectors.values import canonical_text

#: Surrogates are drawn from pools this big; a power of two keeps the modulo unbiased.
POOL_SIZE = 4096
#: Fixed so that every process builds the same pools (for a given Faker version).
POOL_SEED = 20_240_917
SURROGATE_KINDS = frozenset(
    {
        "first_name", "last_name", "name", "email", "phone",
        "street_address", "city", "postal_code", "address",
    }
)  # fmt: skip
SURROGATE_LOCALES = frozenset({"en_CA", "fr_CA"})
# Canadian area codes; the 555-01xx exchange is reserved for fiction, so no surrogate
# phone number rings anybody.
# fmt: off
_AREA_CODES = (
    "204", "226", "236", "249", "250", "289", "306", "343", "365", "403", "416", "418", "431",
    "437", "438", "450", "506", "514", "519", "548", "579", "581", "587", "604", "613", "639",
    "647", "705", "709", "778", "780", "782", "807", "819", "825", "867", "873", "902", "905",
)
# fmt: on


def hmac_sha256_many(key: bytes, messages: Iterable[bytes]) -> list[bytes]:
    """HMAC-SHA256 (RFC 2104) of each message under one key.

    The same digests as ``hmac.new(key, message, sha256)`` at 40 % of its cost: the
    keyed inner and outer states are hashed once and copied per message, where
    ``hmac.new`` rebuilds them (two extra blocks and a Python object) every time.
    """
    block = hashlib.sha256().block_size
    padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in padded))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in padded))
    digests = []
    for message in messages:
        first = inner.copy()
        first.update(message)
        second = outer.copy()
        second.update(first.digest())
        digests.append(second.digest())
    return digests


_BASE32 = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)
_FIVE_BITS = np.array([16, 8, 4, 2, 1], dtype=np.uint8)


def base32_prefixes(digests: list[bytes], chars: int) -> np.ndarray:
    """The first ``chars`` characters of each digest's lower-case base32 (RFC 4648), as
    an ``(n, chars)`` array of ASCII codes; ten times faster than ``base64.b32encode``,
    which is pure Python."""
    if not digests:
        return np.empty((0, chars), dtype=np.uint8)
    width, needed = len(digests[0]), -(-chars * 5 // 8)
    if needed > width:
        raise ValueError(f"{chars} base32 characters need {needed} bytes of digest")
    raw = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), width)
    bits = np.unpackbits(raw[:, :needed], axis=1)[:, : chars * 5]
    return np.take(_BASE32, bits.reshape(len(digests), chars, 5) @ _FIVE_BITS)


class _Keyed(Operator):
    """Reads and checks ``key_id``; the key itself is fetched per call and never stored."""

    key_id: str

    def writes_text(self) -> bool:
        return True

    def identifies(self) -> bool:
        return True

    def validate(self) -> None:
        super().validate()
        self.key_id = key_id_param(self)

    def required_keys(self) -> tuple[str, ...]:
        return (self.key_id,)


def key_id_param(operator: Operator) -> str:
    """An operator's ``key_id`` parameter, checked (it names env vars and Secret blocks)."""
    key_id = operator._param("key_id", str, DEFAULT_KEY_ID)
    if not is_valid_key_id(key_id):
        raise operator._error("key_id", f"must be {KEY_ID_RULE}")
    return key_id


def pool_index(digest: bytes, size: int) -> int:
    """Where a keyed digest points into a surrogate pool of ``size`` values."""
    return int.from_bytes(digest[:8], "big") % size


class Pseudonym(_Keyed):
    """``psn_<key_id>_<20 base32 chars>``; values already in that form pass unchanged."""

    name: ClassVar[str] = "pseudonym"
    allowed_params: ClassVar[frozenset[str]] = frozenset({"key_id"})
    DIGEST_CHARS: ClassVar[int] = 20
    _done: re.Pattern[str]

    def validate(self) -> None:
        super().validate()
        self._done = re.compile(rf"psn_{re.escape(self.key_id)}_[a-z2-7]{{{self.DIGEST_CHARS}}}")

    def operate(self, values: pd.Series) -> pd.Series:
        return map_non_null(values, self._pseudonymize)

    def _pseudonymize(self, present: pd.Series) -> pd.Series:
        key = pseudonym_key(self.key_id)
        return map_distinct(canonical_text(present), lambda texts: self._format(texts, key))

    def _format(self, texts: np.ndarray, key: bytes) -> np.ndarray:
        result = texts.copy()
        todo = np.fromiter((self._done.fullmatch(text) is None for text in texts), bool, len(texts))
        if not todo.any():
            return result
        digests = hmac_sha256_many(key, (text.encode("utf-8") for text in texts[todo]))
        prefix = np.frombuffer(f"psn_{self.key_id}_".encode("ascii"), dtype=np.uint8)
        width = len(prefix) + self.DIGEST_CHARS
        ascii_codes = np.empty((len(digests), width), dtype=np.uint8)
        ascii_codes[:, : len(prefix)] = prefix
        ascii_codes[:, len(prefix) :] = base32_prefixes(digests, self.DIGEST_CHARS)
        result[todo] = ascii_codes.view(f"S{width}").ravel().astype(f"U{width}")
        return result


class Surrogate(_Keyed):
    """A realistic fake value (Faker), chosen by the keyed hash of the real one.

    The same input and key give the same surrogate in every process, as long as the Faker
    version is the same (the pools are generated from a fixed seed). Surrogates are not
    recognisable as such, so the operator is not idempotent: callers mark anonymized rows
    and never apply it twice. A surrogate never equals its input.
    """

    name: ClassVar[str] = "surrogate"
    allowed_params: ClassVar[frozenset[str]] = frozenset({"kind", "locale", "key_id"})
    kind: str
    locale: str

    def validate(self) -> None:
        super().validate()
        self.kind = self._choice("kind", SURROGATE_KINDS)
        self.locale = self._choice("locale", SURROGATE_LOCALES, "en_CA")

    def operate(self, values: pd.Series) -> pd.Series:
        return map_non_null(values, self._substitute)

    def _substitute(self, present: pd.Series) -> pd.Series:
        pool = surrogate_pool(self.kind, self.locale)

        def pick(text: str, digest: bytes) -> str:
            index = pool_index(digest, POOL_SIZE)
            for step in range(POOL_SIZE):  # skip the (rare) pool entries equal to the input
                candidate = pool[(index + step) % POOL_SIZE]
                if candidate.casefold() != text.casefold():
                    return candidate
            raise AssertionError("surrogate pool holds a single value")

        def pick_all(texts: np.ndarray, key: bytes) -> list[str]:
            digests = hmac_sha256_many(key, (text.encode("utf-8") for text in texts))
            return [pick(text, digest) for text, digest in zip(texts, digests, strict=True)]

        key = pseudonym_key(self.key_id)
        return map_distinct(canonical_text(present), lambda texts: pick_all(texts, key))


@cache
def surrogate_pool(kind: str, locale: str) -> tuple[str, ...]:
    """``POOL_SIZE`` fake values of one kind, built once per process from a fixed seed."""
    from faker import Faker

    fake = Faker(locale)
    fake.seed_instance(POOL_SEED)
    make: dict[str, Callable[[], str]] = {
        "first_name": fake.first_name,
        "last_name": fake.last_name,
        "name": lambda: f"{fake.first_name()} {fake.last_name()}",
        "email": fake.email,  # example.com/.net/.org: deliverable to nobody
        "phone": lambda: f"{fake.random_element(_AREA_CODES)}-555-01{fake.random_int(0, 99):02d}",
        "street_address": fake.street_address,
        "city": fake.city,
        "postal_code": lambda: _postal_code(fake, fake.province_abbr()),
        "address": lambda: _address(fake),
    }
    generate = make[kind]
    return tuple(str(generate()) for _ in range(POOL_SIZE))


def _postal_code(fake: Any, province: str) -> str:
    """A postal code whose first letter belongs to ``province`` (Faker's plain
    ``postcode`` ignores the province), written ``A1A 1A1``."""
    code = str(fake.postcode_in_province(province)).replace(" ", "")
    if province == "NU":  # X0A-X0C are Nunavut's; Faker draws from every X code
        code = fake.random_element(("X0A", "X0B", "X0C")) + code[3:]
    return f"{code[:3]} {code[3:]}"


def _address(fake: Any) -> str:
    """One line, as address columns hold it: street, city, province, postal code."""
    province = fake.province_abbr()
    return f"{fake.street_address()}, {fake.city()}, {province} {_postal_code(fake, province)}"
