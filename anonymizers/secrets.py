"""Keys for keyed hashing (pseudonyms, surrogates, the audit log's chain), looked up
where operators keep secrets.

A pseudonym key comes from the environment first (``TENURE_PSEUDONYM_KEY`` or
``TENURE_PSEUDONYM_KEY_<KEY_ID>``), else from a Prefect Secret block
(``tenure-pseudonym-key`` or ``tenure-pseudonym-key-<key-id>``); an audit key likewise
from ``TENURE_AUDIT_KEY[_<KEY_ID>]`` or the block ``tenure-audit-key[-<key-id>]``. Keys
are returned as bytes and never kept, logged, or quoted in an error: whoever holds a
pseudonym key can test guesses against pseudonyms, and whoever holds the audit key can
rewrite the audit log undetected.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from anonymizers.operators import OperatorError

#: Shorter keys make a brute force of the HMAC cheaper than it should be.
MIN_KEY_BYTES = 16
DEFAULT_KEY_ID = "default"
_KEY_ID = re.compile(r"[a-z][a-z0-9_]{0,31}")
KEY_ID_RULE = "1-32 lowercase letters, digits or '_', starting with a letter"
#: What a key is for: where it is looked up (environment variable, Secret block prefix).
KeyKind = Literal["pseudonym", "audit"]
_PREFIXES: dict[str, tuple[str, str]] = {
    "pseudonym": ("TENURE_PSEUDONYM_KEY", "tenure-pseudonym-key"),
    "audit": ("TENURE_AUDIT_KEY", "tenure-audit-key"),
}


class MissingSecret(OperatorError):
    """No usable key: the message says where to put one, and never shows a value."""


def is_valid_key_id(key_id: str) -> bool:
    """Key ids appear in env var names, block names and pseudonyms, so keep them plain."""
    return _KEY_ID.fullmatch(key_id) is not None


def key_locations(key_id: str = DEFAULT_KEY_ID, kind: KeyKind = "pseudonym") -> tuple[str, str]:
    """The environment variable and the Prefect Secret block that may hold the key."""
    if not is_valid_key_id(key_id):
        raise OperatorError(f"parameter 'key_id' must be {KEY_ID_RULE}")
    env_var, block = _PREFIXES[kind]
    if key_id == DEFAULT_KEY_ID:
        return env_var, block
    # Block names allow only lowercase letters, digits and dashes.
    return f"{env_var}_{key_id.upper()}", f"{block}-{key_id}".replace("_", "-")


def pseudonym_key(key_id: str = DEFAULT_KEY_ID) -> bytes:
    """The key for ``key_id``, from the environment, else Prefect; ``MissingSecret`` if none."""
    return secret_key(key_id, "pseudonym")


def audit_key(key_id: str = DEFAULT_KEY_ID) -> bytes:
    """The audit log's HMAC key for ``key_id`` (``flows.audit``); ``MissingSecret`` if none."""
    return secret_key(key_id, "audit")


def secret_key(key_id: str, kind: KeyKind) -> bytes:
    """A key of ``kind`` from the environment, else Prefect; ``MissingSecret`` if none."""
    env_var, block = key_locations(key_id, kind)
    value = os.environ.get(env_var) or _prefect_secret(block)
    if not value:
        raise MissingSecret(
            f"no {kind} key for key_id {key_id!r}: set the environment variable "
            f"{env_var} or create the Prefect Secret block {block!r}"
        )
    key = value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise MissingSecret(
            f"the {kind} key for key_id {key_id!r} (from {env_var} or block {block!r}) "
            f"is shorter than {MIN_KEY_BYTES} bytes"
        )
    return key


def prefect_secret(block: str) -> str | None:
    """The value of the Prefect Secret block ``block``, or None (see ``_prefect_secret``)."""
    return _prefect_secret(block)


def _prefect_secret(block: str) -> str | None:
    """The block's value, or None when there is no block or no Prefect API to ask.

    Prefect is imported only here: it is slow to import, and without an API URL (outside a
    flow run) asking would start a temporary server just to find nothing.
    """
    try:
        from prefect.blocks.system import Secret
        from prefect.context import FlowRunContext, TaskRunContext
        from prefect.settings import get_current_settings
    except ImportError:
        return None
    in_run = FlowRunContext.get() is not None or TaskRunContext.get() is not None
    if get_current_settings().api.url is None and not in_run:
        return None
    try:
        # _sync: from async code Prefect would otherwise hand back a coroutine.
        secret = Secret.load(block, _sync=True)  # type: ignore[call-arg]
        value = secret.get() if isinstance(secret, Secret) else None
    except Exception:  # no such block, API unreachable: both mean "not here"
        return None
    return value if isinstance(value, str) else None
