"""The demo's stores without SQL: a Maildir of business e-mail and a folder of web logs.

``make demo`` shows retention across three kinds of store in one nightly run. These two sit
beside the SQLite CRM store (``tenure-demo/mail/`` and ``tenure-demo/weblogs/``) and are
drawn from the same customers and 360 Agency staff, so every message's correspondent is a
demo customer's address (but for the planted marketing-only visitor's, ``planted``) and
many log lines carry a cookie the click stream knows. As in ``generate``, the same
``DemoSpec`` always writes the same bytes, dated back from ``as_of``, so a run can be
checked against a build message for message.
"""

from __future__ import annotations

import html
import json
import mailbox
import os
import random
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flows.demo.generate import (
    ClosedAccount,
    DemoSpec,
    DemoStoreExists,
    _click_rows,  # the demo package's own generator: log cookies match the click stream
    _user_agent,
    _World,
    closed_account_customer,
    mail_values,
)
from flows.demo.people import Agent, Customer, Even, instant, ip_address, years_before
from flows.demo.planted import (
    CLOSED_PAGES,
    CLOSED_QUESTION_AFTER,
    CLOSED_VISITS,
    MARKETING_BODY,
    MARKETING_PAGES,
    MARKETING_SUBJECT,
    MARKETING_VISITOR,
    visit_moments,
)
from flows.demo.vocabulary import (
    AGENCY,
    CAMPAIGNS,
    DEVICES,
    FEATURES,
    FRENCH_SHARE,
    PHRASES,
    PROVINCES,
    TIERS,
    UTM,
    Odds,
)

__all__ = [
    "MAIL",
    "WEBLOGS",
    "DemoFilesExist",
    "build_demo_files",
    "check_demo_files_free",
]

MAIL = "mail"
WEBLOGS = "weblogs"
BILLING_FOLDER = "Billing"  # Maildir++ ".Billing": the connector's "billing" collection
ACCESS_LOG = "access_log"
#: Where the files and mail connectors kept their bookkeeping before it moved into the
#: stores themselves (``_tenure/``, ``tenure-bookkeeping/``: replaced with them); a
#: replaced demo still removes a folder left from then.
BOOKKEEPING = "tenure-bookkeeping"

INBOX_MESSAGES = 400
INBOX_SPAN = timedelta(days=1644)  # about 4.5 years: the 3-year cut-off falls inside
BILLING_MESSAGES = 150
BILLING_YEARS = 6  # a billing conversation is older than the 2-year cut-off most of the time
LOG_DAYS = 420  # 14 months of daily partitions: the 13-month cut-off drops about 25
LOG_LINES = (20, 60)
UNREAD = timedelta(days=3)  # messages this recent are still in new/, unread
AGENCY_ZONE = ZoneInfo("America/Montreal")
SUPPORT = Address("360 Agency Support", "support", AGENCY)
BILLING = {
    "en": Address("360 Agency Accounts Receivable", "billing", AGENCY),
    "fr": Address("Comptes clients 360 Agency", "facturation", AGENCY),
}
# Message-IDs name the sending host, never the person: they survive anonymization.
CLIENT_HOSTS = (
    "mail.gmail.com",
    "YT2PR01MB4592.CANPRD01.PROD.OUTLOOK.COM",
    "YQBPR0101MB7710.CANPRD01.PROD.OUTLOOK.COM",
    "smtp.videotron.ca",
    "icloud.com",
)
BOTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
)
STATUSES = Odds((200, 88), (304, 5), (404, 4), (301, 2), (500, 1))
ASSETS = ("/static/app.3f9c2e.js", "/static/styles.8a41d0.css", "/favicon.ico", "/img/logo.svg")
PAGES = ("", "features/{slug}", "docs/{slug}", "blog/{slug}-guide", "pricing", "contact")


@dataclass(frozen=True)
class BillingPhrases:
    """One language's billing correspondence; filled from ``Customer.facts()`` and more."""

    notice_subject: str
    notice: str
    receipt_subject: str
    receipt: str
    reminder_subject: str
    reminder: str
    question_subjects: tuple[str, ...]
    question_lines: tuple[str, ...]
    question: str


BILLING_PHRASES = {
    "en": BillingPhrases(
        notice_subject="360 Agency invoice {invoice}",
        notice="Hello {first},\n\nInvoice {invoice} for {company} is available in your "
        "account: ${amount} (taxes included) for the {plan} plan.\nBilled to: {name}, "
        "{address}\nIt will be charged on {due} to the {card} card ending in {last4}.\n\n"
        "Questions? Reply to this e-mail or call 514-360-4000.\n\n"
        "Accounts Receivable, 360 Agency\n",
        receipt_subject="Payment received for invoice {invoice}",
        receipt="Hello {first},\n\nThank you: we received your payment of ${amount} for "
        "invoice {invoice}.\n\nAccounts Receivable, 360 Agency\n",
        reminder_subject="Reminder: invoice {invoice} is past due",
        reminder="Hello {first},\n\nWe could not charge the card ending in {last4} for "
        "invoice {invoice} (${amount}). Please update your payment details in your account "
        "or call us at 514-360-4000.\n\nAccounts Receivable, 360 Agency\n",
        question_subjects=("Question about invoice {invoice}", "Re: 360 Agency invoice {invoice}"),
        question_lines=(
            "We were charged twice for invoice {invoice}. Could you refund the second payment?",
            "Could you add our GST and QST numbers to invoice {invoice}?",
            "Please send our invoices to {colleague} ({colleague_email}) from now on.",
            "Our billing address has changed; it is now {address}.",
        ),
        question="Hello,\n\n{line}\n\nYou can reach me at {phone}.\n\n{name}\n{company}\n{email}\n",
    ),
    "fr": BillingPhrases(
        notice_subject="Facture 360 Agency {invoice}",
        notice="Bonjour {first},\n\nLa facture {invoice} de {company} est disponible dans "
        "votre compte : {amount} $ (taxes incluses) pour le forfait {plan}.\nFacturée à : "
        "{name}, {address}\nElle sera portée le {due} à la carte {card} se terminant par "
        "{last4}.\n\nDes questions? Répondez à ce courriel ou appelez le 514-360-4000.\n\n"
        "Comptes clients, 360 Agency\n",
        receipt_subject="Paiement reçu pour la facture {invoice}",
        receipt="Bonjour {first},\n\nMerci : nous avons reçu votre paiement de {amount} $ "
        "pour la facture {invoice}.\n\nComptes clients, 360 Agency\n",
        reminder_subject="Rappel : la facture {invoice} est échue",
        reminder="Bonjour {first},\n\nNous n'avons pas pu débiter la carte se terminant par "
        "{last4} pour la facture {invoice} ({amount} $). Veuillez mettre à jour votre mode de "
        "paiement dans votre compte ou nous appeler au 514-360-4000.\n\n"
        "Comptes clients, 360 Agency\n",
        question_subjects=(
            "Question sur la facture {invoice}",
            "RE : Facture 360 Agency {invoice}",
        ),
        question_lines=(
            "La facture {invoice} nous a été facturée deux fois. Pouvez-vous rembourser le "
            "second paiement?",
            "Pourriez-vous ajouter nos numéros de TPS et de TVQ à la facture {invoice}?",
            "Veuillez dorénavant envoyer nos factures à {colleague} ({colleague_email}).",
            "Notre adresse de facturation a changé : c'est maintenant {address}.",
        ),
        question="Bonjour,\n\n{line}\n\nVous pouvez me joindre au {phone}.\n\n{name}\n"
        "{company}\n{email}\n",
    ),
}
BILLING_KINDS = Odds(("notice", 45), ("receipt", 20), ("reminder", 10), ("question", 25))


class DemoFilesExist(DemoStoreExists):
    """Refuses to write over a demo folder that holds files; ``replace=True`` rebuilds."""

    def __str__(self) -> str:
        return f"demo folder {self.table!r} already holds files; not overwriting it"


@dataclass(frozen=True)
class _Mail:
    sent: datetime
    message: EmailMessage


def check_demo_files_free(root: Path) -> None:
    """Raise ``DemoFilesExist`` if a demo folder under ``root`` holds files.

    Called before the SQL store is built, so a refused build writes nothing at all.
    """
    for name in (MAIL, WEBLOGS):
        folder = root / name
        if folder.is_dir() and any(folder.iterdir()):
            raise DemoFilesExist(name)


def build_demo_files(root: Path, spec: DemoSpec, *, replace: bool = False) -> dict[str, int]:
    """Write the Maildir and the web logs under ``root``; returns what was written.

    Each folder is written beside its place and renamed into it, so a failure leaves no
    half-built store. Replacing also removes the connectors' bookkeeping: its marks name
    records by key (a message's file name, a log line's file and row), rebuilt records get
    the same keys, and stale marks would hide them from the next run (as
    ``build_demo_store`` drops the ``tenure_*`` tables).
    """
    if not replace:
        check_demo_files_free(root)
    world = _World.create(spec)
    closed = closed_account_customer(world)
    root.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name, write in ((MAIL, _write_mail), (WEBLOGS, _write_weblogs)):
        building = root / f".{name}.building"
        shutil.rmtree(building, ignore_errors=True)  # left by a build that failed
        counts.update(write(building, world, closed))
        shutil.rmtree(root / name, ignore_errors=True)
        building.rename(root / name)
    if replace:
        shutil.rmtree(root / BOOKKEEPING, ignore_errors=True)
    return counts


# --------------------------------------------------------------------------- e-mail


def _write_mail(path: Path, world: _World, closed: ClosedAccount | None) -> dict[str, int]:
    inbox = mailbox.Maildir(path, create=True)
    billing = inbox.add_folder(BILLING_FOLDER)
    inbox_mail = [*_inbox_mail(world), *_planted_inbox(world)]
    billing_mail = list(_billing_mail(world))
    billing_mail += _planted_billing(world, closed, [*inbox_mail, *billing_mail])
    _deliver(path, inbox_mail, world.as_of)
    _deliver(path / f".{BILLING_FOLDER}", billing_mail, world.as_of)
    inbox.close()
    billing.close()
    return {"inbox messages": len(inbox_mail), "billing messages": len(billing_mail)}


def _deliver(folder: Path, mails: Sequence[_Mail], as_of: datetime) -> None:
    """Deliver as a mail server does (tmp/, then renamed into new/ or cur/), with names in
    Maildir's ``time.unique.host`` form that do not depend on the clock or the machine,
    and each file's mtime set to its Date, as ``mailbox.MaildirMessage.set_date`` would."""
    for seq, mail in enumerate(mails):
        stamp = int(mail.sent.timestamp())
        unique = f"{stamp}.M{seq:06d}P0.mx1"
        fresh = as_of - mail.sent < UNREAD
        final = folder / "new" / unique if fresh else folder / "cur" / f"{unique}:2,S"
        temporary = folder / "tmp" / unique
        temporary.write_bytes(mail.message.as_bytes())
        os.utime(temporary, (stamp, stamp))
        os.replace(temporary, final)


def _moments(world: _World, stream: str, start: datetime, count: int) -> list[datetime]:
    even = Even(world.rng(f"{stream}:when"))
    return sorted(instant(start, world.as_of, even()) for _ in range(count))


def _customer_at(rng: random.Random, people: Sequence[Customer], moment: datetime) -> Customer:
    """A customer whose account was open at ``moment`` (else any who had signed up)."""
    active = [p for p in people if p.created <= moment <= p.end]
    existing = [p for p in people if p.created <= moment]
    return rng.choice(active or existing or list(people))


def _person(p: Customer) -> Address:
    user, _, domain = p.email.partition("@")
    return Address(p.name, user, domain)


def _colleague(p: Customer) -> Address:
    user, _, domain = p.colleague_email.partition("@")
    return Address(f"{p.colleague_first} {p.colleague_last}", user, domain)


def _staff(agent: Agent) -> Address:
    user, _, domain = agent.email.partition("@")
    return Address(agent.name, user, domain)


def _message_id(rng: random.Random, sent: datetime, from_staff: bool) -> str:
    host = f"mail.{AGENCY}" if from_staff else rng.choice(CLIENT_HOSTS)
    return f"<{int(sent.timestamp())}.{rng.getrandbits(64):016x}@{host}>"


def _compose(
    rng: random.Random,
    *,
    sent: datetime,
    zone: ZoneInfo,
    sender: Address,
    to: Sequence[Address],
    cc: Sequence[Address],
    subject: str,
    body: str,
    from_staff: bool,
    with_html: bool,
) -> EmailMessage:
    msg = EmailMessage()
    msg["Message-ID"] = _message_id(rng, sent, from_staff)
    msg["Date"] = format_datetime(sent.astimezone(zone))
    msg["From"] = sender
    msg["To"] = tuple(to)
    if cc:
        msg["Cc"] = tuple(cc)
    msg["Subject"] = subject
    msg.set_content(body)
    if with_html:
        msg.add_alternative(_html(body), subtype="html")
        msg.set_boundary(f"=_demo_{rng.getrandbits(96):024x}")  # the generator's is random
    return msg


_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _html(text: str) -> str:
    """The HTML alternative a mail client writes: paragraphs, mailto links, a font."""
    paragraphs = []
    for paragraph in text.strip().split("\n\n"):
        escaped = html.escape(paragraph).replace("\n", "<br>\n")
        linked = _ADDRESS.sub(lambda m: f'<a href="mailto:{m[0]}">{m[0]}</a>', escaped)
        paragraphs.append(f"<p>{linked}</p>")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        "<style>p { font-family: Arial, sans-serif; }</style></head>\n<body>\n"
        + "\n".join(paragraphs)
        + "\n</body></html>\n"
    )


def _inbox_mail(world: _World) -> Iterator[_Mail]:
    """Support and sales conversations: half written by customers, half by 360 Agency's
    customer-success agents, some copying the customer's colleague or another agent."""
    rng = world.rng("mail_inbox")
    for sent in _moments(world, "mail_inbox", world.as_of - INBOX_SPAN, INBOX_MESSAGES):
        p = _customer_at(rng, world.people, sent)
        phrases = PHRASES[p.lang]
        agent, values = mail_values(rng, world, p)
        subject = rng.choice((*phrases.email_subjects[1:], *phrases.ticket_subjects))
        if rng.random() < 0.3 and not subject.lower().startswith(("re:", "re :")):
            subject = ("Re: " if p.lang == "en" else "RE : ") + subject
        from_customer = rng.random() < 0.5
        if from_customer:
            lines, template = phrases.customer_lines, phrases.customer_mail
            sender, to = _person(p), [_staff(agent)]
            cc = [_colleague(p)] if rng.random() < 0.15 else [SUPPORT] if rng.random() < 0.2 else []
            zone = ZoneInfo(PROVINCES[p.province].time_zone)
        else:
            lines, template = phrases.agent_lines, phrases.agent_mail
            sender, to = _staff(agent), [_person(p)]
            extra = rng.random()
            cc = (
                [_colleague(p)]
                if extra < 0.1
                else [_staff(rng.choice(world.agents[p.lang]))]
                if extra < 0.2
                else []
            )
            zone = AGENCY_ZONE
        line = rng.choice(lines).format_map(values)
        message = _compose(
            rng,
            sent=sent,
            zone=zone,
            sender=sender,
            to=to,
            cc=[a for a in cc if a not in (sender, *to)],
            subject=subject.format_map(values),
            body=template.format_map({**values, "line": line}),
            from_staff=not from_customer,
            with_html=rng.random() < (0.25 if from_customer else 0.6),
        )
        yield _Mail(sent, message)


def _invoice_values(rng: random.Random, p: Customer, sent: datetime) -> dict[str, str]:
    tier, cycle = p.plan.split("-")
    monthly = next(price for name, price, _ in TIERS if name == tier)
    amount = f"{monthly * (10 if cycle == 'annual' else 1) * (1 + PROVINCES[p.province].tax):,.2f}"
    if p.lang == "fr":  # 1 234,56 $
        amount = amount.replace(",", " ").replace(".", ",")
    return {
        **p.facts(),
        "invoice": f"INV-{sent.year}-{rng.randint(1, 9999):04d}",
        "amount": amount,
        "plan": tier.capitalize(),
        "due": (sent + timedelta(days=3)).date().isoformat(),
        "card": p.card_brand,
        "last4": p.card_last4,
    }


def _billing_mail(world: _World) -> Iterator[_Mail]:
    """Invoices, receipts and reminders from accounts receivable, and customers' payment
    questions, in the customer's language."""
    rng = world.rng("mail_billing")
    start = years_before(world.as_of, BILLING_YEARS)
    for sent in _moments(world, "mail_billing", start, BILLING_MESSAGES):
        p = _customer_at(rng, world.people, sent)
        phrases = BILLING_PHRASES[p.lang]
        values = _invoice_values(rng, p, sent)
        kind = BILLING_KINDS.pick(rng)
        if kind == "question":
            yield _Mail(sent, _billing_question(rng, p, sent, values))
            continue
        subject, template = {
            "notice": (phrases.notice_subject, phrases.notice),
            "receipt": (phrases.receipt_subject, phrases.receipt),
            "reminder": (phrases.reminder_subject, phrases.reminder),
        }[kind]
        message = _compose(
            rng,
            sent=sent,
            zone=AGENCY_ZONE,
            sender=BILLING[p.lang],
            to=[_person(p)],
            cc=[],
            subject=subject.format_map(values),
            body=template.format_map(values),
            from_staff=True,
            with_html=rng.random() < 0.8,
        )
        yield _Mail(sent, message)


def _billing_question(
    rng: random.Random, p: Customer, sent: datetime, values: dict[str, str]
) -> EmailMessage:
    """A customer's question to accounts receivable about a bill, in their language."""
    phrases = BILLING_PHRASES[p.lang]
    line = rng.choice(phrases.question_lines).format_map(values)
    subject = rng.choice(phrases.question_subjects)
    cc = [_colleague(p)] if rng.random() < 0.2 else []
    return _compose(
        rng,
        sent=sent,
        zone=ZoneInfo(PROVINCES[p.province].time_zone),
        sender=_person(p),
        to=[BILLING[p.lang]],
        cc=cc,
        subject=subject.format_map(values),
        body=phrases.question.format_map({**values, "line": line}),
        from_staff=False,
        with_html=rng.random() < 0.2,
    )


# --------------------------------------------------------------------------- planted people


def _planted_inbox(world: _World) -> list[_Mail]:
    """The marketing-only visitor's question to support about the newsletter."""
    visitor = MARKETING_VISITOR
    (sent,) = visit_moments(world.as_of, visitor.wrote_on, 1)
    user, _, domain = visitor.email.partition("@")
    message = _compose(
        world.rng("planted:mail_inbox"),
        sent=sent,
        zone=AGENCY_ZONE,  # she lives in Quebec
        sender=Address(visitor.name, user, domain),
        to=[SUPPORT],
        cc=[],
        subject=MARKETING_SUBJECT,
        body=MARKETING_BODY.format(email=visitor.email, name=visitor.name),
        from_staff=False,
        with_html=False,
    )
    return [_Mail(sent, message)]


def _planted_billing(
    world: _World, closed: ClosedAccount | None, mails: Sequence[_Mail]
) -> list[_Mail]:
    """Person (a)'s question about their last invoice, when no other message names them."""
    if closed is None or any(_names(mail.message, closed.person.email) for mail in mails):
        return []
    rng, p = world.rng("planted:mail_billing"), closed.person
    assert p.closed is not None
    sent = p.closed + CLOSED_QUESTION_AFTER
    return [_Mail(sent, _billing_question(rng, p, sent, _invoice_values(rng, p, sent)))]


def _names(message: EmailMessage, address: str) -> bool:
    """Whether ``address`` is in the message's From, To or Cc."""
    headers = [str(v) for name in ("From", "To", "Cc") for v in message.get_all(name, [])]
    return any(found.lower() == address.lower() for _, found in getaddresses(headers))


def _planted_log_lines(
    world: _World, closed: ClosedAccount | None
) -> dict[date, list[dict[str, Any]]]:
    """The planted people's visits in the web log, by day: the marketing-only visitor's,
    and person (a)'s after closing their account (their old cookie, their usual device)."""
    rng = world.rng("planted:access_log")
    v = MARKETING_VISITOR
    lines: dict[date, list[dict[str, Any]]] = {}
    visits = [(v.visitor_id, v.ip, v.lang, (v.browser, v.system), v.visits, MARKETING_PAGES)]
    if closed is not None:
        p = closed.person
        visits.append((closed.cookie, p.ips[0], p.lang, p.devices[0], CLOSED_VISITS, CLOSED_PAGES))
    for cookie, ip, lang, (browser, system), days, pages in visits:
        for before in days:
            moments = visit_moments(world.as_of, before, len(pages))
            agent = _user_agent(browser, system, world.version(browser, moments[0]))
            visitor = _Visitor(cookie, ip, agent, lang)
            for moment, (path, _) in zip(moments, pages, strict=True):
                size = int(rng.lognormvariate(9.8, 0.5))
                record = _line(moment, visitor, "GET", f"/{lang}/{path}", 200, size)
                lines.setdefault(moment.date(), []).append(record)
    return lines


# --------------------------------------------------------------------------- web logs


@dataclass(frozen=True)
class _Visitor:
    cookie: str | None  # None: a crawler, which keeps no cookie
    ip: str
    user_agent: str
    lang: str


def _write_weblogs(path: Path, world: _World, closed: ClosedAccount | None) -> dict[str, int]:
    """One ``date=YYYY-MM-DD/part-0.jsonl`` per UTC day, the last ``LOG_DAYS`` before
    ``as_of`` (its own day up to ``as_of`` when that is not midnight); the planted
    people's visits are lines added to their days, in time order."""
    rng = world.rng("access_log")
    last = (world.as_of - timedelta(microseconds=1)).date()
    days = [last - timedelta(days=k) for k in range(LOG_DAYS - 1, -1, -1)]
    first = datetime.combine(days[0], time(), world.as_of.tzinfo)
    known = _click_visitors(world, first)
    planted = _planted_log_lines(world, closed)
    lines = 0
    for day in days:
        folder = path / ACCESS_LOG / f"date={day.isoformat()}"
        folder.mkdir(parents=True)
        records = _day_records(rng, world, day, known)
        if day in planted:
            records = sorted([*records, *planted[day]], key=lambda record: str(record["ts"]))
        with (folder / "part-0.jsonl").open("w", encoding="utf-8", newline="\n") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        lines += len(records)
    return {f"{ACCESS_LOG} days": len(days), f"{ACCESS_LOG} lines": lines}


def _click_visitors(world: _World, since: datetime) -> list[tuple[str, str, str]]:
    """Cookie, IP address and language of the click stream's visitors seen since ``since``."""
    seen: dict[str, tuple[str, str, str]] = {}
    for click in _click_rows(world):
        if click["occurred_at"] >= since:
            lang = str(click["url"]).split("/")[3]
            seen.setdefault(click["visitor_id"], (click["visitor_id"], click["ip_address"], lang))
    return sorted(seen.values())


def _visitor(
    rng: random.Random, world: _World, moment: datetime, known: Sequence[tuple[str, str, str]]
) -> _Visitor:
    kind = rng.random()
    if kind < 0.1:
        return _Visitor(None, ip_address(rng, "US"), rng.choice(BOTS), "en")
    browser, system = DEVICES.pick(rng)
    agent = _user_agent(browser, system, world.version(browser, moment))
    if kind < 0.55 and known:
        cookie, ip, lang = rng.choice(known)
        return _Visitor(cookie, ip, agent, lang)
    lang = "fr" if rng.random() < FRENCH_SHARE else "en"
    country = "FR" if lang == "fr" and rng.random() < 0.1 else rng.choice(("CA",) * 9 + ("US",))
    cookie = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return _Visitor(cookie, ip_address(rng, country, v6=rng.random() < 0.2), agent, lang)


def _request(rng: random.Random, visitor: _Visitor, first: bool) -> tuple[str, str, int, int]:
    """Method, URL (no personal data, only campaign tags), status and bytes sent."""
    slug = rng.choice(FEATURES).replace("_", "-")
    page = f"/{visitor.lang}/" + rng.choice(PAGES).format(slug=slug)
    if visitor.cookie is None:
        return "GET", rng.choice(("/robots.txt", "/sitemap.xml", page)), 200, rng.randint(400, 9000)
    pick = rng.random()
    if not first and pick < 0.15:
        return "POST", "/api/v2/events", 204, 0
    if not first and pick < 0.4:
        return "GET", rng.choice(ASSETS), 200, rng.randint(2_000, 180_000)
    if first and pick < 0.3:
        page += f"?{rng.choice(UTM)}&utm_campaign={rng.choice(CAMPAIGNS)}"
    status = STATUSES.pick(rng)
    size = {200: int(rng.lognormvariate(9.8, 0.5)), 404: 1_543, 500: 612}.get(status, 0)
    return "GET", page, status, size


def _day_records(
    rng: random.Random, world: _World, day: date, known: Sequence[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    start = datetime.combine(day, time(), world.as_of.tzinfo)
    span = int(min(timedelta(days=1), world.as_of - start).total_seconds())
    end = start + timedelta(seconds=span - 1)
    wanted = rng.randint(*LOG_LINES)
    found: list[tuple[datetime, dict[str, Any]]] = []
    while len(found) < wanted:
        moment = start + timedelta(seconds=rng.randrange(span))
        visitor = _visitor(rng, world, moment, known)
        for n in range(min(wanted - len(found), rng.randint(1, 6))):
            if n:
                moment = min(moment + timedelta(seconds=rng.randint(2, 90)), end)
            method, url, status, size = _request(rng, visitor, first=n == 0)
            found.append((moment, _line(moment, visitor, method, url, status, size)))
    found.sort(key=lambda pair: pair[0])
    return [record for _, record in found]


def _line(
    moment: datetime, visitor: _Visitor, method: str, url: str, status: int, size: int
) -> dict[str, Any]:
    return {
        "ts": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ip": visitor.ip,
        "user_agent": visitor.user_agent,
        "method": method,
        "url": url,
        "status": status,
        "bytes": size,
        "visitor_id": visitor.cookie,
    }
