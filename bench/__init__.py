"""Benchmarks of Tenure against the hand-written code and the tools it replaces.

Every script here runs as ``python -m bench.<name>``, measures through ``bench.harness``
and writes its figures to ``bench/results/<name>.json``; shared data comes from
``bench.data``, the peers Tenure is compared with from ``bench.peers``.

Importing the package makes Tenure's offline defaults first (``anonymizers.offline``), then
sets what every benchmark needs and the caller has not set: the keys for the throwaway audit
logs and pseudonyms the benchmarks make (benchmark-only values, never a real key).
"""

import os

import anonymizers.offline  # noqa: F401  (the offline defaults, before anything else)

BENCH_ENVIRONMENT = {
    "TENURE_AUDIT_KEY": "bench-audit-key-0123456789",
    "TENURE_PSEUDONYM_KEY": "bench-only-pseudonym-key-2026",
}
for _name, _value in BENCH_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)
