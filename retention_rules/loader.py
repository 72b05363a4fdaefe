"""Read a policy file into a `Policy`, or fail with every problem and its line.

ruamel.yaml's round-trip loader keeps the line of every key and list item, which lets
each pydantic error location be turned into ``file:line: field: message``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import MaxDepthExceededError
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from retention_rules.issues import Loc, LocatedIssue, PolicyError, PolicyIssue, format_loc
from retention_rules.model import Category, Dataset, Exemption, Hold, Policy, Purpose
from retention_rules.references import PolicyParts, check_references


@dataclass(frozen=True)
class LoadedPolicy:
    """A valid policy with the file it came from, so later checks can cite its lines."""

    policy: Policy
    path: Path
    document: Any
    sha256: str

    def locate(self, issues: list[PolicyIssue]) -> list[LocatedIssue]:
        return [locate(self.document, self.path, issue) for issue in issues]


def load_policy(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedPolicy:
    """Load and validate; raise `PolicyError` listing every problem found."""
    path = Path(path)
    raw = _read_bytes(path)
    document = _parse_yaml(path, raw)
    context = {"environ": os.environ if environ is None else environ}
    policy, issues = _validate(document, context)
    if issues or policy is None:
        raise PolicyError([locate(document, path, issue) for issue in issues])
    return LoadedPolicy(policy, path, document, hashlib.sha256(raw).hexdigest())


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PolicyError([LocatedIssue(str(path), None, "", "policy file not found")]) from None
    except OSError as exc:
        issue = LocatedIssue(str(path), None, "", f"cannot read: {exc.strerror}")
        raise PolicyError([issue]) from None


#: Deeper than any policy needs; deeper nesting would exhaust Python's stack.
MAX_DEPTH = 64


class _Constructor(RoundTripConstructor):
    """Dates that do not exist (``2027-02-30``) are errors at their line."""

    def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
        try:
            return super().construct_yaml_timestamp(node, values)
        except (ValueError, OverflowError) as exc:
            raise ConstructorError(
                None, None, f"invalid date {node.value!r}: {exc}", node.start_mark
            ) from None


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_timestamp)


def _parse_yaml(path: Path, raw: bytes) -> Any:
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    yaml.max_depth = MAX_DEPTH
    try:
        document = yaml.load(raw)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = str(exc.problem or exc.context)
        if isinstance(exc, MaxDepthExceededError):
            problem = f"nested deeper than {MAX_DEPTH} levels"
        if exc.context and exc.context_mark is not None and exc.problem_mark is not None:
            problem += f" ({exc.context} started at line {exc.context_mark.line + 1})"
        raise PolicyError([LocatedIssue(str(path), line, "", f"invalid YAML: {problem}")]) from None
    except (YAMLError, UnicodeDecodeError, ValueError, OverflowError, RecursionError) as exc:
        # ValueError: an integer of more digits than Python converts; the others have
        # no mark to give a line.
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PolicyError([LocatedIssue(str(path), None, "", f"invalid YAML: {text}")]) from None
    if not isinstance(document, CommentedMap):
        raise PolicyError(
            [LocatedIssue(str(path), 1, "", "a policy file must be a YAML mapping (key: value)")]
        )
    return document


def _validate(document: Any, context: dict[str, Any]) -> tuple[Policy | None, list[PolicyIssue]]:
    try:
        policy = Policy.model_validate(document, context=context)
    except ValidationError as exc:
        structural = [_from_pydantic(error) for error in exc.errors()]
        return None, structural + check_references(_salvage(document, context))
    return policy, check_references(PolicyParts.of(policy))


def _from_pydantic(error: ErrorDetails) -> PolicyIssue:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return PolicyIssue(tuple(error["loc"]), message)


def _salvage(document: Mapping[str, Any], context: dict[str, Any]) -> PolicyParts:
    """Parse item by item, keeping what parses, for the cross-reference checks."""

    def mapping(name: str) -> Mapping[Any, Any]:
        value = document.get(name)
        return value if isinstance(value, Mapping) else {}

    def listed(name: str) -> dict[int, Any]:
        value = document.get(name)
        return dict(enumerate(value)) if isinstance(value, list) else {}

    def keep(model: type[Any], items: Mapping[Any, Any]) -> dict[Any, Any]:
        adapter: TypeAdapter[Any] = TypeAdapter(model)
        kept = {}
        for key, value in items.items():
            try:
                kept[key] = adapter.validate_python(value, context=context)
            except ValidationError:
                continue
        return kept

    dataset_names = {
        str(item["name"]) for item in listed("datasets").values()
        if isinstance(item, Mapping) and "name" in item
    }  # fmt: skip
    return PolicyParts(
        declared={
            "categories": {str(k) for k in mapping("categories")},
            "purposes": {str(k) for k in mapping("purposes")},
            "stores": {str(k) for k in mapping("stores")},
            "datasets": dataset_names,
        },
        categories=keep(Category, mapping("categories")),
        purposes=keep(Purpose, mapping("purposes")),
        datasets=keep(Dataset, listed("datasets")),
        holds=keep(Hold, listed("holds")),
        exemptions=keep(Exemption, dict(enumerate(_exempt_list(mapping("scan"))))),
    )


def _exempt_list(scan: Mapping[str, Any]) -> list[Any]:
    exempt = scan.get("exempt")
    return exempt if isinstance(exempt, list) else []


def locate(document: Any, path: Path, issue: PolicyIssue) -> LocatedIssue:
    """Find the line of the deepest part of `issue.loc` that exists in the document.

    Parts that are not in the document are pydantic's own (union tags, validator
    names) and are dropped from the field path, except a last part under a mapping,
    which names a missing required key.
    """
    node, line, shown = document, 1, []
    for depth, part in enumerate(issue.loc):
        child_line = _child_line(node, part)
        if child_line is None:
            if depth == len(issue.loc) - 1 and isinstance(node, Mapping):
                shown.append(part)
            continue
        line, node = child_line, node[part]
        shown.append(part)
    return LocatedIssue(str(path), line, format_loc(tuple(shown)), issue.message)


def _child_line(node: Any, part: str | int) -> int | None:
    if isinstance(node, CommentedMap) and part in node:
        return int(node.lc.key(part)[0]) + 1
    if isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
        return int(node.lc.item(part)[0]) + 1
    return None


__all__ = ["LoadedPolicy", "Loc", "load_policy", "locate"]
