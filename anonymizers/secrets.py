"""Keys for keyed hashing (pseudonyms, surrogates), looked up where operators keep secrets.

A key comes from the environment first (``TENURE_PSEUDONYM_KEY`` or
``TENURE_PSEUDONYM_KEY_<KEY_ID>``), else from a Prefect Secret block
(``tenure-pseudonym-key`` or ``tenure-pseudonym-key-<key-id>``). Keys are returned as bytes
and never kept, logged, or quoted in an error: whoever holds a key can test guesses
against pseudonyms.
"""

from __future__ import annotations

import os
import re

from anonymizers.operators import OperatorError

#: Shorter keys make a brute force of the HMAC cheaper than it should be.
MIN_KEY_BYTES = 16
DEFAULT_KEY_ID = "default"
_KEY_ID = re.compile(r"[a-z][a-z0-9_]{0,31}")
KEY_ID_RULE = "1-32 lowercase letters, digits or '_', starting with a letter"


class MissingSecret(OperatorError):
    """No usable key: the message says where to put one, and never shows a value."""


def is_valid_key_id(key_id: str) -> bool:
    """Key ids appear in env var names, block names and pseudonyms, so keep them plain."""
    return _KEY_ID.fullmatch(key_id) is not None


def key_locations(key_id: str = DEFAULT_KEY_ID) -> tuple[str, str]:
    """The environment variable and the Prefect Secret block that may hold the key."""
    if not is_valid_key_id(key_id):
        raise OperatorError(f"parameter 'key_id' must be {KEY_ID_RULE}")
    if key_id == DEFAULT_KEY_ID:
        return "TENURE_PSEUDONYM_KEY", "tenure-pseudonym-key"
    # Block names allow only lowercase letters, digits and dashes.
    return f"TENURE_PSEUDONYM_KEY_{key_id.upper()}", f"tenure-pseudonym-key-{key_id}".replace(
        "_", "-"
    )


def pseudonym_key(key_id: str = DEFAULT_KEY_ID) -> bytes:
    """The key for ``key_id``, from the environment, else Prefect; ``MissingSecret`` if none."""
    env_var, block = key_locations(key_id)
    value = os.environ.get(env_var) or _prefect_secret(block)
    if not value:
        raise MissingSecret(
            f"no pseudonym key for key_id {key_id!r}: set the environment variable "
            f"{env_var} or create the Prefect Secret block {block!r}"
        )
    key = value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise MissingSecret(
            f"the pseudonym key for key_id {key_id!r} (from {env_var} or block {block!r}) "
            f"is shorter than {MIN_KEY_BYTES} bytes"
        )
    return key


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
