"""Read a policy file into a `Policy`, or fail with every problem and its line.

ruamel.yaml's round-trip loader keeps the line of every key and list item, which lets
each pydantic error location be turned into ``file:line: field: message``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import MaxDepthExceededError
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from retention_rules.issues import Loc, LocatedIssue, PolicyError, PolicyIssue, format_loc
from retention_rules.model import (
    Category,
    Dataset,
    Exemption,
    Hold,
    Policy,
    Purpose,
    RequestSettings,
    Store,
    Subjects,
)
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
        return _keep(model, items, context)

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
        subjects=keep(Subjects, {0: document["subjects"]} if "subjects" in document else {}).get(0),
        requests=keep(RequestSettings, {0: mapping("requests")}).get(0),
    )


def _keep(model: type[Any], items: Mapping[Any, Any], context: dict[str, Any]) -> dict[Any, Any]:
    """The items that parse as ``model``, by key."""
    adapter: TypeAdapter[Any] = TypeAdapter(model)
    kept = {}
    for key, value in items.items():
        try:
            kept[key] = adapter.validate_python(value, context=context)
        except ValidationError:
            continue
    return kept


@dataclass(frozen=True)
class PartialPolicy:
    """What parsed of a policy file that has problems, as a `Policy` built without its
    own checks, for the checks that need no whole policy (the live schema, the
    preflight): its stores, purposes and categories that parsed, and the datasets and
    holds that parsed (a dataset only when its store did). ``datasets`` and ``holds``
    give each one's index in the file, where its problems are located."""

    loaded: LoadedPolicy
    datasets: tuple[int, ...]
    holds: tuple[int, ...]

    def locate(self, issues: list[PolicyIssue]) -> list[LocatedIssue]:
        return self.loaded.locate([self._in_file(issue) for issue in issues])

    def _in_file(self, issue: PolicyIssue) -> PolicyIssue:
        def moved(loc: Loc) -> Loc:
            if not loc:
                return loc
            index = {"datasets": self.datasets, "holds": self.holds}.get(str(loc[0]))
            if index is None or len(loc) < 2 or not isinstance(loc[1], int):
                return loc
            return (loc[0], index[loc[1]], *loc[2:])

        see = None if issue.see is None else moved(issue.see)
        return replace(issue, loc=moved(issue.loc), see=see)


def salvage_policy(
    path: str | Path, environ: Mapping[str, str] | None = None
) -> PartialPolicy | None:
    """The parts of a policy file that parse (see `PartialPolicy`); None when the file
    is not a YAML mapping."""
    path = Path(path)
    try:
        raw = _read_bytes(path)
        document = _parse_yaml(path, raw)
    except PolicyError:
        return None
    context = {"environ": os.environ if environ is None else environ}
    parts = _salvage(document, context)
    named = document.get("stores")
    stores = _keep(Store, named if isinstance(named, Mapping) else {}, context)
    datasets = sorted((i, d) for i, d in parts.datasets.items() if d.store in stores)
    holds = sorted(parts.holds.items())
    zone = document.get("timezone")
    policy = Policy.model_construct(
        version=1,
        name=str(document.get("name") or path.stem),
        categories=parts.categories,
        purposes=parts.purposes,
        stores=stores,
        datasets=[d for _, d in datasets],
        holds=[h for _, h in holds],
        timezone=zone if isinstance(zone, str) and _is_zone(zone) else _DEFAULT_ZONE,
    )
    loaded = LoadedPolicy(policy, path, document, hashlib.sha256(raw).hexdigest())
    return PartialPolicy(loaded, tuple(i for i, _ in datasets), tuple(i for i, _ in holds))


_DEFAULT_ZONE = str(Policy.model_fields["timezone"].default)


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _exempt_list(scan: Mapping[str, Any]) -> list[Any]:
    exempt = scan.get("exempt")
    return exempt if isinstance(exempt, list) else []


def locate(document: Any, path: Path, issue: PolicyIssue) -> LocatedIssue:
    """Find the line of the deepest part of `issue.loc` that exists in the document.

    Parts that are not in the document are pydantic's own (union tags, validator
    names) and are dropped from the field path, except a last part under a mapping,
    which names a missing required key.
    """
    if not issue.loc:  # a problem of the whole file (a missing audit key): no line
        return LocatedIssue(str(path), None, "", issue.message)
    node, line, shown = document, 1, []
    for depth, part in enumerate(issue.loc):
        child_line = _child_line(node, part)
        if child_line is None:
            if depth == len(issue.loc) - 1 and isinstance(node, Mapping):
                shown.append(part)
            continue
        line, node = child_line, node[part]
        shown.append(part)
    message = issue.message
    if issue.see is not None:
        other = locate(document, path, PolicyIssue(issue.see, ""))
        message = message.replace("{see}", f"{path}:{other.line}")
    return LocatedIssue(str(path), line, format_loc(tuple(shown)), message)


def _child_line(node: Any, part: str | int) -> int | None:
    if isinstance(node, CommentedMap) and part in node:
        return int(node.lc.key(part)[0]) + 1
    if isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
        return int(node.lc.item(part)[0]) + 1
    return None


__all__ = ["LoadedPolicy", "Loc", "PartialPolicy", "load_policy", "locate", "salvage_policy"]
