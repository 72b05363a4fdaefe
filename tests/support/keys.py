"""The keys a run needs, as the tests set them (never real keys)."""

from __future__ import annotations

#: The audit log's HMAC key (``flows.audit``): a real run refuses to start without one.
AUDIT_KEY = "test-audit-key-0123456789abcdef"
#: The pseudonym keys of the shipped and test policies, by environment variable:
#: `validate`, `plan` and dry runs check that every keyed operator's key can be found
#: (``flows.preflight``), as the real run needs them.
PSEUDONYM_KEYS = {
    "TENURE_PSEUDONYM_KEY": "test-key-0123456789abcdef",
    "TENURE_PSEUDONYM_KEY_ACCOUNTS": "test-accounts-key-0123456789",
}
