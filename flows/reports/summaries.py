"""What the commands that print no table say: ``tenure validate``, ``tenure audit verify``
and ``tenure demo build``. The command line only prints these lines and sets the exit code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flows.audit import Verification
    from retention_rules.model import Policy


def validated_line(path: Path, policy: Policy, offline: bool) -> str:
    """A valid policy's size, and how many stores its live schema was checked in."""
    return (
        f"{path}: valid — {len(policy.purposes)} purposes, {len(policy.categories)} categories, "
        f"{len(policy.datasets)} datasets, {len(policy.holds)} holds"
        + ("" if offline else f", schema checked in {len(policy.stores)} store(s)")
    )


@dataclass(frozen=True)
class VerifyLines:
    """``tenure audit verify``'s verdict: ``problems`` for stderr, ``intact`` for stdout
    when the log holds up (empty when it does not)."""

    problems: list[str]
    intact: list[str]


def verify_lines(result: Verification, head_given: bool) -> VerifyLines:
    """What was not checked, each problem and the verdict; or, for an intact log, its
    head, each witness it matches, and (without ``--head``) where to keep the head."""
    problems = [f"not checked: {line}" for line in result.unchecked]
    problems += result.problems + result.unaudited
    if result.problems:
        problems.append(
            f"audit log BROKEN: {len(result.problems)} problem(s) in {result.entries} entries"
        )
    if result.interrupted:  # the log is not wrong, it is behind: say what brings it level
        problems.append(
            f"audit log INCOMPLETE: {len(result.interrupted)} interrupted run(s) committed "
            "chunks not yet audited; the next `tenure run` of this policy audits them from "
            "the stores' journals, once it can read every store they may have written"
        )
    if not result.ok:
        return VerifyLines(problems, [])
    intact = [f"audit log intact: {result.entries} entries, head {result.head}"]
    intact += [f"  matches {line}" for line in result.checked]
    if not head_given:
        intact.append(
            "  record the head outside the state database: --head HASH then shows that "
            "no entry up to it was removed"
        )
    return VerifyLines(problems, intact)


def demo_lines(
    store: str, tables: Mapping[str, int], folder: Path, files: Mapping[str, int]
) -> list[str]:
    """What ``tenure demo build`` made: rows per table of the store, items per kind of file."""
    return [
        f"demo store {store}: " + ", ".join(f"{t} {n:,}" for t, n in tables.items()),
        f"demo files {folder}: " + ", ".join(f"{t} {n:,}" for t, n in files.items()),
    ]
