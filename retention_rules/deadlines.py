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

Each rule covers the requests its text speaks of: Quebec's s. 32 access and
rectification (which includes having information deleted, s. 28, and portability,
s. 27); PIPEDA's s. 8 access (portability read as access); GDPR's art. 12(3) the rights
of arts. 15 to 22. A request no applicable rule covers (a correction under PIPEDA
alone), and a complaint, is due by the policy's own promise (30 days by default). A
withdrawal of consent takes effect when it is received (GDPR art. 7(3); PIPEDA
principle 4.3.8; the policy's "Withdrawing your consent"): it is due that day, without
extension.
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
    """None: the policy's own promise (complaints, requests no law's rule covers)."""
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
    kinds: frozenset[RequestKind] = frozenset()
    """The requests the rule covers."""

    def due(self, received: date) -> date:
        return _after(received, self.period)

    def extended_due(self, received: date) -> date | None:
        """The due date once extended: the extension counted from the first due date,
        the stricter of the two readings of "extended by two further months" (from
        31 January: 28 February, then 28 April rather than 30 April)."""
        if self.extension is None:
            return None
        return _after(self.due(received), self.extension)

    def notice_due(self, received: date) -> date | None:
        if self.notice_within is None:
            return None
        return _after(received, self.notice_within)


_DAYS_30 = Duration.parse("30 days")
#: Access, portability, correction and erasure: the rights Quebec's s. 32 and the GDPR's
#: art. 12(3) time.
_RIGHTS = frozenset(
    {RequestKind.ACCESS, RequestKind.PORTABILITY, RequestKind.CORRECTION, RequestKind.ERASURE}
)

#: The rules, by jurisdiction; each times the requests of its `kinds`.
RULES: dict[Jurisdiction, DeadlineRule] = {
    Jurisdiction.QUEBEC: DeadlineRule(
        Jurisdiction.QUEBEC,
        "Act respecting the protection of personal information in the private sector, s. 32",
        _DAYS_30,
        extension=None,
        notice_within=None,
        silence="deemed a refusal (s. 32)",
        recourse="Commission d'accès à l'information du Québec (s. 42)",
        kinds=_RIGHTS,
    ),
    Jurisdiction.PIPEDA: DeadlineRule(
        Jurisdiction.PIPEDA,
        "PIPEDA, s. 8(3)-(5)",
        _DAYS_30,
        extension=_DAYS_30,
        notice_within=_DAYS_30,
        silence="deemed a refusal (s. 8(5))",
        recourse="Office of the Privacy Commissioner of Canada (s. 11)",
        kinds=frozenset({RequestKind.ACCESS, RequestKind.PORTABILITY}),
    ),
    Jurisdiction.GDPR: DeadlineRule(
        Jurisdiction.GDPR,
        "GDPR, art. 12(3)",
        Duration.parse("1 month"),
        extension=Duration.parse("2 months"),
        notice_within=Duration.parse("1 month"),
        silence="a failure to act: the person may complain without waiting (art. 12(4))",
        recourse="a supervisory authority (art. 77) or a court (art. 79)",
        kinds=_RIGHTS,
    ),
}

#: The policy's own promise for complaints (and requests no law's rule covers), unless
#: the policy says otherwise.
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
    laws = tuple(dict.fromkeys(jurisdictions))
    if not laws:
        raise ValueError("a request falls under at least one jurisdiction")
    recourse = "; ".join(RULES[law].recourse for law in laws)
    if kind is RequestKind.CONSENT_WITHDRAWAL:
        at_once = DeadlineRule(
            None,
            "consent may be withdrawn at any time, with effect on receipt",
            Duration(text="0 days"),
            extension=None,
            notice_within=None,
            silence="processing on a consent already withdrawn",
            recourse=recourse,
        )
        applicable: tuple[DeadlineRule, ...] = (at_once,)
    else:
        applicable = tuple(RULES[law] for law in laws if kind in RULES[law].kinds)
    if not applicable:  # a complaint, or a request no applicable law's rule covers
        applicable = (
            DeadlineRule(
                None,
                "the privacy policy's promise",
                complaint_period,
                extension=None,
                notice_within=None,
                silence="a request left unanswered past the policy's promise",
                recourse=recourse,
            ),
        )
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
