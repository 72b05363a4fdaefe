"""What a policy's disclosure settings promise, checked before any run."""

from __future__ import annotations

from retention_rules.issues import PolicyIssue
from retention_rules.model import AggregateThenDeleteAction, DifferentialPrivacy, Policy

#: How many periods of each kind a calendar year holds, at most.
PERIODS_PER_YEAR = {"day": 366, "week": 53, "month": 12, "quarter": 4, "year": 1}


def budget_warnings(policy: Policy) -> list[PolicyIssue]:
    """A rollup under differential privacy whose yearly budget cannot pay for a year of
    its periods: the periods past what it pays for are refused at their release. A
    warning, not a problem: a policy may mean to release only part of a year."""
    warnings = []
    for i, dataset in enumerate(policy.datasets):
        action = dataset.action
        if not isinstance(action, AggregateThenDeleteAction):
            continue
        for j, rollup in enumerate(action.rollups):
            method = rollup.disclosure
            if not isinstance(method, DifferentialPrivacy):
                continue
            periods = PERIODS_PER_YEAR[rollup.period]
            paid = int(method.budget.epsilon / method.epsilon + 1e-9)
            if paid < periods:
                warnings.append(
                    PolicyIssue(
                        ("datasets", i, "action", "rollups", j, "disclosure", "budget"),
                        f"epsilon {method.budget.epsilon:g} a year pays for {paid} of the "
                        f"{periods} {rollup.period}s a year at {method.epsilon:g} each: the "
                        "later ones of each year will not be released",
                    )
                )
    return warnings
