"""The operators of an anonymize binding, with each purpose's own pseudonym key.

A keyed operator (pseudonym, surrogate, redact_text's surrogates) that names no
``key_id`` uses its purpose's ``pseudonym_key``: pseudonyms made for one purpose then
cannot be joined with another's, and rotating one purpose's key touches no other.
"""

from __future__ import annotations

from dataclasses import replace

from anonymizers.operators import Operator
from anonymizers.registry import OPERATORS, create_operator
from anonymizers.secrets import DEFAULT_KEY_ID, pseudonym_key
from connectors.protocol import RollupSink
from connectors.sketches import PeopleKey
from retention_rules.model import AnonymizeAction, ColumnOperator, Dataset, Policy
from retention_rules.planner import rollup_sinks


def binding_operators(policy: Policy, dataset: Dataset) -> dict[str, Operator]:
    """Column → operator for an anonymize binding (empty for other actions)."""
    if not isinstance(dataset.action, AnonymizeAction):
        return {}
    return {
        column: create_operator(spec.operator, operator_params(policy, dataset, spec))
        for column, spec in dataset.action.columns.items()
    }


def keyed_rollup_sinks(policy: Policy, dataset: Dataset) -> tuple[RollupSink, ...]:
    """The binding's rollups, each that counts distinct values (people included) with its
    purpose's pseudonym key, so that no sketch holds an identifier anyone without the key
    can test for (`connectors.sketches`). Looked up before any write: a missing key stops
    the binding with nothing touched (`MissingSecret`)."""
    sinks = rollup_sinks(dataset)
    if not any(sink.distinct or sink.subject for sink in sinks):
        return sinks
    purpose = policy.purposes.get(dataset.purpose)
    key = PeopleKey.from_secret(
        pseudonym_key(DEFAULT_KEY_ID if purpose is None else purpose.pseudonym_key)
    )
    return tuple(
        replace(sink, people_key=key) if sink.distinct or sink.subject else sink for sink in sinks
    )


def operator_params(policy: Policy, dataset: Dataset, spec: ColumnOperator) -> dict[str, object]:
    """The spec's parameters, with the purpose's key id where the operator takes one."""
    params: dict[str, object] = dict(spec.params)
    takes_key = "key_id" in OPERATORS[spec.operator].allowed_params
    purpose = policy.purposes.get(dataset.purpose)
    if takes_key and "key_id" not in params and purpose is not None:
        params["key_id"] = purpose.pseudonym_key
    return params
