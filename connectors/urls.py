"""Store and state URLs as they may be shown, logged, raised or stored: secrets masked.

A URL carries secrets in its password and in query parameters (``?password=``,
``?token=``, an fsspec ``?secret=``…). ``mask_url`` is the one place that knows which
parts those are; every display URL, error message and cache key goes through it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, quote_plus

from sqlalchemy import URL, make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
#: Query parameters whose value is a secret, compared case-insensitively ("-" as "_").
SECRET_PARAMETERS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "sslpassword",
        "secret",
        "token",
        "key",
        "apikey",
        "api_key",
        "auth",
        "authorization",
        "credentials",
        "sas",
        "sig",
        "signature",
    }
)
#: A parameter whose last ``_``-separated word is one of these is a secret too
#: (``client_secret``, ``access_token``, ``aws_secret_access_key``, ``account_key``).
_SECRET_WORDS = frozenset({"password", "passwd", "pwd", "passphrase", "secret", "token", "key"})


def is_secret_parameter(name: str) -> bool:
    """Whether a URL query parameter's value is a secret (``password_env``, which names
    an environment variable, is not)."""
    plain = name.lower().replace("-", "_")
    return plain in SECRET_PARAMETERS or plain.rsplit("_", 1)[-1] in _SECRET_WORDS


def mask_url(url: str | URL) -> str:
    """The URL with its password and every secret query parameter replaced by ``***``;
    a string that is not a URL shows only its scheme."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        scheme, separator, _ = str(url).partition("://")
        return f"{scheme}://..." if separator and scheme.isidentifier() else "..."
    shown = parsed.set(query={}).render_as_string(hide_password=True)
    pairs = [
        f"{quote_plus(name)}={MASK if is_secret_parameter(name) else quote_plus(value)}"
        for name, values in sorted(parsed.query.items())
        for value in ((values,) if isinstance(values, str) else values)
    ]
    return f"{shown}?{'&'.join(pairs)}" if pairs else shown


def secret_values(url: str | URL) -> tuple[str, ...]:
    """The secrets a URL holds (its password, its secret query values), as they are and
    percent-encoded as the URL's text carries them, longest first."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return ()
    found = [str(parsed.password)] if parsed.password else []
    for name, value in parsed.query.items():
        if is_secret_parameter(name):
            found += [value] if isinstance(value, str) else list(value)
    forms = {form for v in found if v for form in (v, quote(v, safe=""), quote_plus(v))}
    return tuple(sorted(forms, key=len, reverse=True))


def read_only_url(url: URL) -> URL:
    """SQLite opened through a ``file:`` URI with ``mode=ro`` fails instead of creating
    a missing file; other backends are only ever sent SELECTs by a read-only connector."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return url
    path = Path(url.database or "")
    return url.set(database=f"file:{path}", query={**url.query, "mode": "ro", "uri": "true"})


def hide_secrets(text: str, url: str | URL) -> str:
    """``text`` (a driver's error message) with every secret of ``url`` masked, should
    the driver have echoed one."""
    for value in secret_values(url):
        text = text.replace(value, MASK)
    return text
