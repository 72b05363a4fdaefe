"""The built-in operators, and the registry a policy's operator names are checked against.

A new built-in operator is a class in its own module of ``anonymizers/``, added to
`BUILT_IN_OPERATORS`. A project adds an operator of its own to the default registry
before it loads a policy (``OPERATORS.add(MyOperator)``), and may remove one it does not
allow (``OPERATORS.remove("surrogate")``): ``tenure validate`` and the run then accept
exactly the names it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from anonymizers.age_band import AgeBand
from anonymizers.basic import Mask, Null, Redact, Replace
from anonymizers.generalize import Generalize
from anonymizers.keyed import Pseudonym, Surrogate
from anonymizers.operators import Operator, OperatorRegistry
from anonymizers.text_redaction import RedactText

#: Every operator Tenure ships, in the order error messages list them.
BUILT_IN_OPERATORS: Final[tuple[type[Operator], ...]] = (
    Null, Redact, Replace, Mask, Pseudonym, Surrogate, Generalize, AgeBand, RedactText,
)  # fmt: skip


def default_registry() -> OperatorRegistry:
    """A new registry of the built-in operators."""
    return OperatorRegistry(BUILT_IN_OPERATORS)


#: The registry policies are validated against and their operators built from.
OPERATORS: Final = default_registry()


def create_operator(name: str, params: Mapping[str, object]) -> Operator:
    """The operator a policy names, from `OPERATORS` (see `OperatorRegistry.create`)."""
    return OPERATORS.create(name, params)
