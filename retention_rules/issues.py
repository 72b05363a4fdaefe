"""Problems found in a policy, and where in the file they are."""

from __future__ import annotations

from dataclasses import dataclass

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class PolicyIssue:
    """A problem at a path inside the policy document, before its line is known."""

    loc: Loc
    message: str
    datasets: tuple[str, ...] = ()
    """Other bindings the problem stops besides the one at `loc` (those of a foreign-key
    cycle)."""
    see: Loc | None = None
    """Another place in the file the message names: its ``{see}`` becomes that place's
    ``file:line``."""


@dataclass(frozen=True)
class LocatedIssue:
    """A problem as the user reads it: ``file:line: field: message``."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class PolicyError(Exception):
    """The policy cannot be used; carries every problem found, in file order."""

    def __init__(self, issues: list[LocatedIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.file, i.line or 0, i.field))
        super().__init__("\n".join(str(issue) for issue in self.issues))


def format_loc(loc: Loc) -> str:
    """``('datasets', 3, 'retention')`` -> ``datasets[3].retention``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
