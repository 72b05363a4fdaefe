"""The three people the demo plants for individual-rights requests.

Access, erasure, correction and withdrawal are best tried on people whose records make
each rule of the law show. The demo holds three such people (``docs/demo.md``):

a. **A closed account with invoices under the tax minimum**: a generated customer whose
   account closed more than two years before ``as_of`` (``maintain_account``'s period is
   over) and who has invoices younger than six years (``legal_obligations``' minimum has
   not run), logins, support tickets, e-mail in the shared mailbox and clicks. The lowest
   customer id that fits is chosen (``generate.closed_account_customer``); after closing,
   they still read the blog, so the web log has their old cookie on three days, and when
   the mailbox has no message of theirs, they ask about their last invoice.
b. **The parties of the legal hold** ``dispute_500_17_123456`` of the shipped policy:
   customers 17 and 42, given at least one row in every table.
c. **A marketing-only visitor**, Marie Lavoie, known by a cookie and an e-mail address
   and nothing else: clicks with no customer id, lines of the web log, a marketing consent
   with no customer id, and one e-mail to support about the newsletter.

Everything planted is dated back from ``as_of`` and drawn from its own random streams, so
the other rows are those an unplanted demo has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from flows.demo.vocabulary import RECENT

#: The shipped policy's legal hold, and the customers it names.
DISPUTE_HOLD = "dispute_500_17_123456"
DISPUTE_PARTIES = frozenset({17, 42})
#: Person (a) is chosen this far clear of the two cut-offs that make them a case.
CLOSED_MARGIN = RECENT
CLOSED_FOR_YEARS = 2  # maintain_account: two years after closure
TAX_YEARS = 6  # legal_obligations: six years from the invoice
#: Days before ``as_of`` on which person (a), their account closed, reads the blog.
CLOSED_VISITS: tuple[int, ...] = (400, 150, 20)
#: Days after closure on which person (a) asks about their last invoice, when the
#: generated mailbox has no message of theirs.
CLOSED_QUESTION_AFTER = timedelta(days=14)


@dataclass(frozen=True)
class Visitor:
    """Person (c): a website visitor who subscribed to the newsletter, never a customer."""

    name: str
    email: str
    visitor_id: str
    ip: str
    lang: str
    browser: str
    system: str
    #: Days before ``as_of`` of her visits: the first before the web log's fourteen
    #: months (a click only), the others in it, on both sides of the 13-month cut-off.
    visits: tuple[int, ...]
    #: The visit on which she subscribed, with the newsletter form in the page footer.
    subscribed_on: int
    #: Days before ``as_of`` of her e-mail to support.
    wrote_on: int


MARKETING_VISITOR = Visitor(
    name="Marie Lavoie",
    email="marie.lavoie.infolettre@example.ca",
    visitor_id="5f0c8e2a-7d3b-4c1e-9a6f-2b8d4e1c3a70",
    ip="70.49.163.27",
    lang="fr",
    browser="Firefox",
    system="Windows",
    visits=(540, 410, 120, 30, 5),
    subscribed_on=410,
    wrote_on=12,
)
MARKETING_SOURCE = "newsletter_footer"
#: The pages of one of her visits: (path below the language, feature), the first one
#: reached from the newsletter.
MARKETING_PAGES: tuple[tuple[str, str], ...] = (
    ("blog/email-campaigns-guide?utm_source=newsletter&utm_medium=email"
     "&utm_campaign=spring-launch", "email_campaigns"),
    ("features/email-campaigns", "email_campaigns"),
    ("pricing", "landing_pages"),
)  # fmt: skip
#: The pages person (a) reads on each visit after closing their account.
CLOSED_PAGES: tuple[tuple[str, str], ...] = (
    ("blog/reports-guide", "reports"),
    ("docs/reports", "reports"),
)
MARKETING_SUBJECT = "Question sur l'infolettre"
MARKETING_BODY = (
    "Bonjour,\n\n"
    "Je suis abonnée à votre infolettre à l'adresse {email} depuis l'an dernier, sans être "
    "cliente. Serait-il possible de la recevoir une fois par mois plutôt que chaque "
    "semaine? Et comment avez-vous eu mon adresse : est-ce bien moi qui l'ai donnée sur "
    "votre site?\n\n"
    "Merci,\n{name}\n"
)


def visit_moments(as_of: datetime, days_before: int, pages: int) -> list[datetime]:
    """The instants of one visit's pages, ``days_before`` days before ``as_of``'s day: from
    13:10 UTC, a page every 47 seconds (always before ``as_of`` and inside the web log's
    partition of that day)."""
    day = as_of.date() - timedelta(days=days_before)
    start = datetime.combine(day, time(13, 10), as_of.tzinfo)
    return [start + timedelta(seconds=47 * n) for n in range(pages)]
