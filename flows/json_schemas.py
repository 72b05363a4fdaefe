"""The JSON Schemas Tenure publishes under ``flows/schemas/`` (draft 2020-12): each read
from the installed package and compiled once per process, and the first place where a
document breaks one said in one line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker


@cache
def validator(name: str) -> Draft202012Validator:
    """The schema ``flows/schemas/<name>``, with its formats checked."""
    text = (files("flows") / "schemas" / name).read_text(encoding="utf-8")
    return Draft202012Validator(json.loads(text), format_checker=FormatChecker())


def first_error(name: str, document: Mapping[str, Any]) -> tuple[str, str] | None:
    """Where (a ``/`` path, empty at the top) and why ``document`` first breaks the schema
    ``name``, or None when it is valid."""
    errors = sorted(validator(name).iter_errors(document), key=lambda e: list(e.path))
    if not errors:
        return None
    return "/".join(str(part) for part in errors[0].absolute_path), errors[0].message
