"""Cheap per-value shapes: a value that could be a person's name, and nothing else.

A shape alone proves nothing ("Montréal" is shaped like a surname), so it only narrows
what else is asked: a column called ``nom`` whose values nearly all look like people's
names holds people's names (a ``nom`` column of "Chaise de bureau" does not), and only
name-shaped short values are worth the NER pass that tells "Eloy Zayas" from "Canada".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from anonymizers.detection.entities import PERSON

MAX_NAME_WORDS: Final = 5
_PARTICLES: Final = frozenset(
    {"de", "du", "des", "la", "le", "van", "von", "der", "den", "da", "di", "del", "della",
     "dos", "das", "do", "bin", "ben", "al", "el", "y", "e"}
)  # fmt: skip
_PARTS = re.compile(r"['\u2019-]")


def looks_like_person_name(value: str) -> bool:
    """One to five capitalised words, particles allowed, no digits: ``Marie de la Roche``.

    Any alphabet's letters count (``Nguyễn``, ``Pędzik``); an initial may end with a
    period and a surname with a comma (``Tremblay, M.``).
    """
    words = [word.rstrip(".,") for word in value.split()]
    named = [word for word in words if word not in _PARTICLES]
    return 0 < len(named) <= MAX_NAME_WORDS and all(map(_capitalised, named))


def _capitalised(word: str) -> bool:
    """``Tremblay``, ``McDonald``, ``O'Brien``, ``Jean-François``, ``TREMBLAY``, ``d'Amours``."""
    parts = _PARTS.split(word)
    if len(parts) > 1 and parts[0] in ("d", "l"):  # d'Amours, l'Heureux
        parts = parts[1:]
    return all(part.isalpha() and part[0].isupper() for part in parts)


#: The shape that confirms a weak name rule, per entity.
SHAPES: Final[dict[str, Callable[[str], bool]]] = {PERSON: looks_like_person_name}
