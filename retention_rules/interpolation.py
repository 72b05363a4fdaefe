"""``${VAR}`` and ``${VAR:-default}`` in store URLs, so passwords stay in the environment.

In a URL a value is percent-encoded where the URL's syntax would otherwise read its
characters as structure: in the user-info (``user:${PASSWORD}@host``) and in a query
value (``?password=${TOKEN}``), so that a password holding ``@``, ``:``, ``/`` or ``#``
reaches the database whole instead of splitting the URL (its tail would become a host,
shown in errors and sent to the resolver). Everywhere else a value is the URL's own text:
a whole URL (``${DATABASE_URL}``), a scheme, a host (``db:5433``, ``[::1]``), a path
(``sqlite:///${DIR}/crm.sqlite``), a query name or a whole query string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Replace each reference by the variable's value, or its default when unset or empty,
    as they are: for a setting that is not a URL (see `interpolate_url`).

    The error names the variable, never a value: values are often secrets.
    """
    _check_references(text)
    return _REFERENCE.sub(lambda match: _value(match, environ), text)


def interpolate_url(text: str, environ: Mapping[str, str]) -> str:
    """`interpolate` for a URL: a value in the user-info or in a query value is
    percent-encoded (see the module docstring); a user-info that is one reference
    (``${CREDENTIALS}@host``) is read as ``user:password``, split at its first colon.
    Text without ``://`` (a path, or one reference naming a whole URL) is not encoded."""
    _check_references(text)
    # The URL's structure is read from the policy's own text, each reference standing
    # for one character that is no delimiter: a value can never change it.
    skeleton, spots, last = "", [], 0
    for match in _REFERENCE.finditer(text):
        skeleton += text[last : match.start()]
        spots.append((len(skeleton), match))
        skeleton += "\0"
        last = match.end()
    skeleton += text[last:]
    parts = _UrlParts(skeleton)
    out, last = [], 0
    for at, match in spots:
        out += [text[last : match.start()], parts.encode(at, _value(match, environ))]
        last = match.end()
    return "".join([*out, text[last:]])


def _check_references(text: str) -> None:
    if "${" in _REFERENCE.sub("", text):
        raise ValueError("malformed ${...} reference (expected ${NAME} or ${NAME:-default})")


def _value(match: re.Match[str], environ: Mapping[str, str]) -> str:
    name, default = match.group("name"), match.group("default")
    value = environ.get(name)
    if value:
        return value
    if default is not None:
        return default
    raise ValueError(f"environment variable {name} is not set and has no default")


class _UrlParts:
    """Where the user-info and the query of a URL's text lie (RFC 3986 section 3)."""

    def __init__(self, skeleton: str) -> None:
        self._skeleton = skeleton
        scheme = skeleton.find("://")
        self._authority = -1 if scheme < 0 else scheme + 3
        if self._authority < 0:
            self._at = self._query = self._fragment = -1
            return
        ends = [i for i in (skeleton.find(c, self._authority) for c in "/?#") if i >= 0]
        end = min(ends, default=len(skeleton))
        self._at = skeleton.rfind("@", self._authority, end)  # the user-info ends there
        fragment = skeleton.find("#", end)
        self._fragment = len(skeleton) if fragment < 0 else fragment
        self._query = skeleton.find("?", end, self._fragment)

    def encode(self, at: int, value: str) -> str:
        """``value``, standing at ``at`` in the skeleton, as the URL must carry it."""
        skeleton = self._skeleton
        if self._authority <= at < self._at:  # user-info
            if ":" in skeleton[self._authority : self._at]:
                return quote(value, safe="")  # the user or the password, by the policy
            user, colon, password = value.partition(":")
            return quote(user, safe="") + colon + quote(password, safe="")
        if 0 <= self._query < at < self._fragment:
            pair = skeleton.rfind("&", self._query, at) + 1 or self._query + 1
            if "=" in skeleton[pair:at]:  # a value, not a name or a whole query string
                return quote(value, safe="")
        return value
