"""A small policy for the register of requests: the minimal fixture with the purpose the
register's records are kept for, and optionally a ``subjects:`` section."""

from __future__ import annotations

from pathlib import Path

from tests.support.paths import FIXTURES

REGISTER_PURPOSE = """\
  manage_choices_and_rights:
    description: Answer requests.
    legal_basis: legal_obligation
    min_retention: 1 year
    max_retention: 3 years
"""
SUBJECTS = """\
subjects:
  person: customer_id
  identifiers:
    customer_id: {category: identity.name}
    email: {category: contact.email}
"""


def write_request_policy(folder: Path, *, subjects: bool = False, requests: str = "") -> Path:
    """``folder/policy.yaml``: the minimal fixture with ``REGISTER_PURPOSE``, ``SUBJECTS``
    when asked, and ``requests`` (a ``requests:`` section) appended."""
    text = (FIXTURES / "minimal.yaml").read_text()
    text = text.replace("purposes:\n", "purposes:\n" + REGISTER_PURPOSE, 1)
    path = folder / "policy.yaml"
    path.write_text(text + (SUBJECTS if subjects else "") + requests)
    return path
