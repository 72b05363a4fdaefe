"""The operators of an anonymize binding, with each purpose's own pseudonym key.

A keyed operator (pseudonym, surrogate, redact_text's surrogates) that names no
``key_id`` uses its purpose's ``pseudonym_key``: pseudonyms made for one purpose then
cannot be joined with another's, and rotating one purpose's key touches no other.
"""

from __future__ import annotations

from anonymizers.operators import Operator
from anonymizers.registry import OPERATORS, create_operator
from retention_rules.model import AnonymizeAction, ColumnOperator, Dataset, Policy


def binding_operators(policy: Policy, dataset: Dataset) -> dict[str, Operator]:
    """Column → operator for an anonymize binding (empty for other actions)."""
    if not isinstance(dataset.action, AnonymizeAction):
        return {}
    return {
        column: create_operator(spec.operator, operator_params(policy, dataset, spec))
        for column, spec in dataset.action.columns.items()
    }


def operator_params(policy: Policy, dataset: Dataset, spec: ColumnOperator) -> dict[str, object]:
    """The spec's parameters, with the purpose's key id where the operator takes one."""
    params: dict[str, object] = dict(spec.params)
    takes_key = "key_id" in OPERATORS[spec.operator].allowed_params
    purpose = policy.purposes.get(dataset.purpose)
    if takes_key and "key_id" not in params and purpose is not None:
        params["key_id"] = purpose.pseudonym_key
    return params
