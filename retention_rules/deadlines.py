"""When a request from a person must be answered: the rules of each jurisdiction.

A request (access, portability, correction, erasure, consent withdrawal) is answered
within the period of every jurisdiction whose law applies to it, so the strictest rule
governs: the earliest due date, an extension only where every applicable law allows one
(never under Quebec's), and the earliest date by which the extension must be announced.

The periods are counted in calendar days or months from the day the request was
received, as the texts say ("within 30 days of the date of receipt"; "within one month
of receipt"); a month ends on the same date of the next month, or on its last day when
it has no such date (Regulation (EEC, Euratom) No 1182/71, art. 3). Tenure does not move
a due date that falls on a weekend or a holiday to the next working day, which some
of these laws would allow: answering earlier is never late.

A complaint is answered within the policy's own promise (30 days by default), which no
statute sets; it cannot be extended without a notice giving reasons, as the policy
promises.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from retention_rules.durations import Duration


class Jurisdiction(StrEnum):
    """A law whose rules on answering a person can apply to a request."""

    QUEBEC = "quebec"
    PIPEDA = "pipeda"
    GDPR = "gdpr"


class RequestKind(StrEnum):
    """What a person asks for."""

    ACCESS = "access"
    PORTABILITY = "portability"
    CORRECTION = "correction"
    ERASURE = "erasure"
    CONSENT_WITHDRAWAL = "consent_withdrawal"
    COMPLAINT = "complaint"


@dataclass(frozen=True)
class DeadlineRule:
    """One law's rule on answering a request."""

    jurisdiction: Jurisdiction | None
    """None: the policy's own promise (complaints)."""
    provision: str
    """Where the rule is written, as a privacy officer cites it."""
    period: Duration
    extension: Duration | None
    """How much longer the law allows, with a notice; None: no extension."""
    notice_within: Duration | None
    """The extension's notice, with its reasons, is due within this period of receipt."""
    silence: str
    """What the law makes of no answer by the due date."""
    recourse: str
    """Where a person may turn after a refusal or no answer."""

    def due(self, received: date) -> date:
        return _after(received, self.period)

    def extended_due(self, received: date) -> date | None:
        """The due date once extended: the period and the extension together, from
        receipt (one month and two more from 31 January: 30 April)."""
        if self.extension is None:
            return None
        whole = self.period.as_relativedelta() + self.extension.as_relativedelta()
        moved: date = received + whole
        return moved

    def notice_due(self, received: date) -> date | None:
        if self.notice_within is None:
            return None
        return _after(received, self.notice_within)


_DAYS_30 = Duration.parse("30 days")

#: The rules, by jurisdiction (the request kinds of `RequestKind` but complaints).
RULES: dict[Jurisdiction, DeadlineRule] = {
    Jurisdiction.QUEBEC: DeadlineRule(
        Jurisdiction.QUEBEC,
        "Act respecting the protection of personal information in the private sector, s. 32",
        _DAYS_30,
        extension=None,
        notice_within=None,
        silence="deemed a refusal (s. 32)",
        recourse="Commission d'accès à l'information du Québec (s. 42)",
    ),
    Jurisdiction.PIPEDA: DeadlineRule(
        Jurisdiction.PIPEDA,
        "PIPEDA, s. 8(3)-(5)",
        _DAYS_30,
        extension=_DAYS_30,
        notice_within=_DAYS_30,
        silence="deemed a refusal (s. 8(5))",
        recourse="Office of the Privacy Commissioner of Canada (s. 11)",
    ),
    Jurisdiction.GDPR: DeadlineRule(
        Jurisdiction.GDPR,
        "GDPR, art. 12(3)",
        Duration.parse("1 month"),
        extension=Duration.parse("2 months"),
        notice_within=Duration.parse("1 month"),
        silence="a failure to act: the person may complain without waiting (art. 12(4))",
        recourse="a supervisory authority (art. 77) or a court (art. 79)",
    ),
}

#: The policy's own promise for complaints, unless the policy says otherwise.
COMPLAINT_PERIOD = _DAYS_30


@dataclass(frozen=True)
class Deadline:
    """When a request is due under the rules that apply to it."""

    received: date
    due: date
    """The earliest due date of every applicable rule."""
    governing: tuple[DeadlineRule, ...]
    """The rules that set `due` (several when they agree on the day)."""
    extended_due: date | None
    """The due date once extended (with a notice by `notice_due`); None when some
    applicable rule allows no extension."""
    notice_due: date | None
    """The last day to send the extension's notice, with its reasons."""
    applicable: tuple[DeadlineRule, ...]

    def days_left(self, today: date, *, extended: bool = False) -> int:
        """Calendar days until the due date (the extended one if ``extended``):
        0 on the day itself, negative once overdue."""
        due = self.extended_due if extended and self.extended_due is not None else self.due
        return (due - today).days


def deadline(
    kind: RequestKind,
    received: date,
    jurisdictions: Iterable[Jurisdiction],
    *,
    complaint_period: Duration = COMPLAINT_PERIOD,
) -> Deadline:
    """The deadline of a request received on ``received`` to which the laws of
    ``jurisdictions`` apply (at least one)."""
    if kind is RequestKind.COMPLAINT:
        promise = DeadlineRule(
            None,
            "the privacy policy's promise on complaints",
            complaint_period,
            extension=None,
            notice_within=None,
            silence="a complaint left unanswered past the policy's promise",
            recourse="Commission d'accès à l'information du Québec",
        )
        applicable: tuple[DeadlineRule, ...] = (promise,)
    else:
        applicable = tuple(RULES[j] for j in dict.fromkeys(jurisdictions))
    if not applicable:
        raise ValueError("a request falls under at least one jurisdiction")
    due = min(rule.due(received) for rule in applicable)
    governing = tuple(rule for rule in applicable if rule.due(received) == due)
    extensions = [rule.extended_due(received) for rule in applicable]
    notices = [rule.notice_due(received) for rule in applicable]
    if any(extended is None for extended in extensions):
        return Deadline(received, due, governing, None, None, applicable)
    return Deadline(
        received,
        due,
        governing,
        min(e for e in extensions if e is not None),
        min(n for n in notices if n is not None),
        applicable,
    )


def _after(start: date, period: Duration) -> date:
    moved: date = start + period.as_relativedelta()
    return moved
