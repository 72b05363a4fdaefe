"""Benchmarks of Tenure against the hand-written code and the tools it replaces.

Every script here runs as ``python -m bench.<name>``, measures through ``bench.harness``
and writes its figures to ``bench/results/<name>.json``; shared data comes from
``bench.data``, the peers Tenure is compared with from ``bench.peers``.

Importing the package sets, before any Tenure or Presidio module is imported, what every
benchmark needs and that the caller has not set: tldextract reads its bundled suffix
list (no download), and the keys for the throwaway audit logs and pseudonyms the
benchmarks make (benchmark-only values, never a real key).
"""

import os

BENCH_ENVIRONMENT = {
    "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    "TENURE_AUDIT_KEY": "bench-audit-key-0123456789",
    "TENURE_PSEUDONYM_KEY": "bench-only-pseudonym-key-2026",
}
for _name, _value in BENCH_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)
