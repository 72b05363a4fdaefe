"""``${VAR}`` and ``${VAR:-default}`` in store URLs, so passwords stay in the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping

_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Replace each reference by the variable's value, or its default when unset or empty.

    The error names the variable, never a value: values are often secrets.
    """

    def replace(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        value = environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        raise ValueError(f"environment variable {name} is not set and has no default")

    if "${" in _REFERENCE.sub("", text):
        raise ValueError("malformed ${...} reference (expected ${NAME} or ${NAME:-default})")
    return _REFERENCE.sub(replace, text)
