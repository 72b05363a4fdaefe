"""The fixed vocabulary the demo generator draws from.

Provinces with their area codes, cities and taxes, browsers and their releases, weighted odds
for plans, cards, channels and referrers, the English and French phrase tables that support
notes, e-mails and privacy requests are written from, and the constants that size the
8-year history. Kept apart from the code that draws from it, so the data reads as data.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Generic, TypeVar

_T = TypeVar("_T")

YEARS = 8
RECENT = timedelta(days=30)
RECENT_SHARE = 0.12  # share of instants put in a window's final 30 days: fresh rows everywhere
LEGACY_SHARE = 0.35  # customers imported at launch, so the oldest year is well populated
LAUNCH = timedelta(days=45)  # how long that import took
FRENCH_SHARE = 0.30
CLOSED_SHARE = 0.35
CHURN_SKEW = 3.0  # churn and unsubscribing come mostly early in a relationship
AFTERMATH = timedelta(days=180)  # privacy requests still arrive this long after closure
AGENCY = "360.agency"
GOLDEN = 0.6180339887498949

FEATURES = (
    "contacts",
    "pipeline",
    "email_campaigns",
    "reports",
    "calendar",
    "tasks",
    "forms",
    "automations",
    "landing_pages",
    "integrations",
)


class Odds(Generic[_T]):
    """A weighted choice whose cumulative weights are summed once: it runs for most rows."""

    __slots__ = ("_cumulative", "_values")

    def __init__(self, *options: tuple[_T, int]) -> None:
        self._values = [value for value, _ in options]
        self._cumulative = list(accumulate(weight for _, weight in options))

    def pick(self, rng: random.Random) -> _T:
        return self._values[bisect(self._cumulative, rng.random() * self._cumulative[-1])]


@dataclass(frozen=True)
class Province:
    weight: int  # relative share of English-speaking customers
    area_codes: tuple[int, ...]
    cities: Mapping[str, str]  # city -> first letter of its postal codes
    time_zone: str
    tax: Decimal


PROVINCES: Mapping[str, Province] = {
    "ON": Province(
        40,
        (416, 647, 437, 905, 289, 613, 519, 705),
        {
            "Toronto": "M",
            "Ottawa": "K",
            "Mississauga": "L",
            "Hamilton": "L",
            "London": "N",
            "Kingston": "K",
            "Sudbury": "P",
        },
        "America/Toronto",
        Decimal("0.13"),
    ),
    "BC": Province(
        15,
        (604, 778, 250, 236),
        {"Vancouver": "V", "Victoria": "V", "Burnaby": "V", "Surrey": "V", "Kelowna": "V"},
        "America/Vancouver",
        Decimal("0.12"),
    ),
    "AB": Province(
        12,
        (403, 587, 780, 825),
        {"Calgary": "T", "Edmonton": "T", "Red Deer": "T"},
        "America/Edmonton",
        Decimal("0.05"),
    ),
    "QC": Province(
        8,
        (514, 438, 450, 418, 581, 819, 367),
        {
            "Montréal": "H",
            "Québec": "G",
            "Laval": "H",
            "Gatineau": "J",
            "Sherbrooke": "J",
            "Trois-Rivières": "G",
            "Longueuil": "J",
        },
        "America/Montreal",
        Decimal("0.14975"),
    ),
    "MB": Province(
        4, (204, 431), {"Winnipeg": "R", "Brandon": "R"}, "America/Winnipeg", Decimal("0.12")
    ),
    "SK": Province(
        3, (306, 639), {"Regina": "S", "Saskatoon": "S"}, "America/Regina", Decimal("0.11")
    ),
    "NS": Province(
        4,
        (902, 782),
        {"Halifax": "B", "Dartmouth": "B", "Truro": "B"},
        "America/Halifax",
        Decimal("0.15"),
    ),
    "NB": Province(
        3,
        (506,),
        {"Moncton": "E", "Saint John": "E", "Fredericton": "E"},
        "America/Moncton",
        Decimal("0.15"),
    ),
    "NL": Province(
        2, (709,), {"St. John's": "A", "Mount Pearl": "A"}, "America/St_Johns", Decimal("0.15")
    ),
    "PE": Province(
        1,
        (902, 782),
        {"Charlottetown": "C", "Summerside": "C"},
        "America/Halifax",
        Decimal("0.15"),
    ),
}
PROVINCE_ODDS = Odds(*((code, province.weight) for code, province in PROVINCES.items()))
POSTAL_LETTERS = "ABCEGHJKLMNPRSTVWXYZ"  # D, F, I, O, Q, U never appear in Canadian codes

TIERS = (("starter", 29, 50), ("growth", 79, 35), ("enterprise", 249, 15))  # name, $/month, weight
TIER_ODDS = Odds(*((name, weight) for name, _, weight in TIERS))
CARDS = Odds(("Visa", 50), ("Mastercard", 35), ("Amex", 15))
FREE_MAIL = {
    "en": ("gmail.com", "outlook.com", "hotmail.com", "yahoo.ca", "icloud.com", "shaw.ca"),
    "fr": ("gmail.com", "videotron.ca", "hotmail.com", "outlook.com", "sympatico.ca"),
}
IPV4_PREFIXES = {
    "CA": ("24.114", "70.49", "99.230", "142.114", "174.88", "184.146", "207.96"),
    "US": ("73.15", "98.204", "107.77", "172.58"),
    "FR": ("90.12", "82.64", "86.245", "109.190"),
}
IPV6_PREFIXES = {
    "CA": ("2607:fea8", "2001:56a", "2605:8d80", "2604:3d08"),
    "US": ("2600:1700", "2601:646"),
    "FR": ("2a01:cb00", "2a01:e0a"),
}

# Browser versions in release order; a login's version follows its date across the 8 years.
VERSIONS = {
    "Chrome": (
        "64.0.3282.186",
        "71.0.3578.98",
        "80.0.3987.149",
        "88.0.4324.150",
        "97.0.4692.99",
        "109.0.5414.120",
        "120.0.6099.129",
        "131.0.6778.205",
        "138.0.7204.157",
    ),
    "Firefox": ("58.0", "65.0", "73.0", "85.0", "96.0", "109.0", "121.0", "133.0", "140.0"),
    "Safari": ("11.0", "12.1", "13.1", "14.1", "15.6", "16.5", "17.4", "18.2", "18.5"),
    "Edge": (
        "79.0.309.71",
        "80.0.361.69",
        "88.0.705.81",
        "97.0.1072.69",
        "109.0.1518.78",
        "114.0.1823.82",
        "120.0.2210.91",
        "131.0.2903.112",
        "138.0.3351.95",
    ),
}
PLATFORMS = {
    "Windows": "Windows NT 10.0; Win64; x64",
    "macOS": "Macintosh; Intel Mac OS X 10_15_7",
    "Linux": "X11; Linux x86_64",
    "Android": "Linux; Android 10; K",
}
DEVICES = Odds(  # (browser, os), weight
    (("Chrome", "Windows"), 30),
    (("Edge", "Windows"), 10),
    (("Firefox", "Windows"), 6),
    (("Chrome", "macOS"), 10),
    (("Safari", "macOS"), 10),
    (("Firefox", "macOS"), 2),
    (("Safari", "iOS"), 14),
    (("Chrome", "Android"), 12),
    (("Firefox", "Linux"), 3),
    (("Chrome", "Linux"), 3),
)
CONSENT_CHANNELS = Odds((("email",), 55), (("sms",), 15), (("email", "sms"), 30))
PRIVACY_KINDS = Odds(
    ("access", 35),
    ("correction", 15),
    ("withdrawal", 20),
    ("complaint", 10),
    ("deletion", 20),
)
CONSENT_SOURCES = ("signup_form", "webinar", "trade_show", "newsletter_footer", "partner_referral")
REFERRERS: Odds[str | None] = Odds(
    (None, 35),
    ("https://www.google.com/", 30),
    ("https://www.bing.com/", 5),
    ("https://www.linkedin.com/", 10),
    ("https://www.facebook.com/", 5),
    ("home", 15),
)
UTM = (
    "utm_source=google&utm_medium=cpc",
    "utm_source=linkedin&utm_medium=social",
    "utm_source=newsletter&utm_medium=email",
    "utm_source=facebook&utm_medium=social",
)
CAMPAIGNS = ("free-trial", "crm-switch", "spring-launch", "webinar-followup", "partner-week")
COUNTRIES = {
    "en": Odds(("CA", 85), ("US", 8), ("FR", 2)),
    "fr": Odds(("CA", 85), ("US", 8), ("FR", 12)),
}
FORM_FACTORS = Odds(("desktop", 70), ("mobile", 22), ("tablet", 8))
TICKET_CHANNELS = Odds(("email", 40), ("phone", 30), ("chat", 22), ("sms", 8))


@dataclass(frozen=True)
class Phrases:
    """Everything one language says; templates are filled from ``Customer.facts()`` and more."""

    province_label: str
    ticket_subjects: tuple[str, ...]
    ticket_openers: Mapping[str, str]  # by channel
    ticket_details: tuple[str, ...]
    ticket_contacts: Odds[str]
    ticket_extras: tuple[str, ...]  # postal code / colleague sentences added to some notes
    email_subjects: tuple[str, ...]
    agent_lines: tuple[str, ...]
    customer_lines: tuple[str, ...]
    colleague_lines: tuple[str, ...]
    agent_mail: str
    customer_mail: str
    to_colleague_mail: str
    from_colleague_mail: str
    privacy: Mapping[str, str]  # by kind


_EN = Phrases(
    province_label="{city} {province}",
    ticket_subjects=(
        "Cannot import contacts from CSV",
        "Pipeline view does not load",
        "Question about an invoice",
        "Email campaign stuck in draft",
        "Report export is empty",
        "Change of billing address",
        "Reset two-factor authentication",
        "Cancel my subscription",
        "Calendar sync with Outlook",
        "Add a user to our account",
    ),
    ticket_openers={
        "email": "{name} wrote in: {topic}.",
        "phone": "{name} called about this: {topic}.",
        "chat": "Chat with {name}: {topic}.",
        "sms": "Text message from {name}: {topic}.",
    },
    ticket_details=(
        "Reproduced on our side and escalated to tier 2.",
        "Walked {first} through the settings; the issue seems fixed.",
        "Asked for a screenshot and the browser version.",
        "Issued a credit of ${credit} on the next invoice.",
        "The problem started after the last update of the {feature} page.",
    ),
    ticket_contacts=Odds(
        ("Call back at {phone} or write to {email}.", 45),
        ("Best reached at {phone}; confirmation sent to {email}.", 25),
        ("Prefers e-mail: {email}.", 12),
        ("Left a voicemail at {phone}.", 10),
        ("{colleague} can also be reached at {colleague_email} or {colleague_phone}.", 8),
    ),
    ticket_extras=(
        "Mailing address on file: {address}.",
        "Identity confirmed with postal code {postal} and date of birth {birth}.",
        "{colleague} ({colleague_email}) is in copy and will test the fix.",
    ),
    email_subjects=(
        "Your 360 Agency invoice",
        "Follow-up on your support request",
        "Welcome to 360 Agency",
        "Renewal of your plan",
        "Re: {feature} question",
        "Meeting notes",
    ),
    agent_lines=(
        "Thanks for your call today. As discussed, your {feature} settings are updated.",
        "Your invoice is attached. Please confirm the billing address we have on file: {address}.",
        "Following up on your ticket: could you send us the CSV file you tried to import?",
        "I tried to reach you at {phone} but got your voicemail. When is a good time?",
    ),
    customer_lines=(
        "Our {feature} page has been very slow since Monday. Can someone call me at {phone}?",
        "Please add {colleague} ({colleague_email}) as a billing contact on our account.",
        "Could you send me a copy of last month's invoice?",
        "We would like to add two seats to our plan before the renewal.",
    ),
    colleague_lines=(
        "Can you take over the 360 Agency renewal? Call me at {phone} if anything is unclear.",
        "I exported the contact list from the CRM; it is on the shared drive.",
        "The {feature} report for the board is ready, have a look before Friday.",
    ),
    agent_mail="Hi {first},\n\n{line}\n\nBest regards,\n{agent}\nCustomer Success, 360 Agency\n"
    "{agent_phone} | {agent_email}\n1250 René-Lévesque Blvd W, Montréal QC H3B 4W8\n",
    customer_mail="Hello {agent_first},\n\n{line}\n\nThanks,\n{name}\n{company}\n"
    "{phone} | {email}\n{address}\n",
    to_colleague_mail="Hi {colleague_first},\n\n{line}\n\n{name}\n{phone} | {email}\n",
    from_colleague_mail="Hi {first},\n\n{line}\n\n{colleague}\n{company}\n"
    "{colleague_phone} | {colleague_email}\n",
    privacy={
        "access": "Please send me a copy of all the personal information you hold about me. "
        "Name: {name}, e-mail: {email}, phone: {phone}.",
        "correction": "My address is now {address}. Please correct it in all your systems. {name}",
        "withdrawal": "I withdraw my consent to marketing. Stop texting {phone} and "
        "e-mailing {email}.",
        "complaint": "I still receive newsletters at {email} after unsubscribing twice. "
        "{name}, {phone}",
        "deletion": "Close my account and delete my data. Account e-mail: {email}. "
        "{name}, born {birth}.",
    },
)

_FR = Phrases(
    province_label="{city} (Québec)",
    ticket_subjects=(
        "Impossible d'importer mes contacts",
        "Le pipeline ne s'affiche plus",
        "Question sur une facture",
        "Campagne courriel bloquée en brouillon",
        "L'export du rapport est vide",
        "Changement d'adresse de facturation",
        "Réinitialiser la double authentification",
        "Annuler mon abonnement",
        "Synchronisation du calendrier avec Outlook",
        "Ajouter un utilisateur à notre compte",
    ),
    ticket_openers={
        "email": "{name} nous a écrit au sujet de ceci : {topic}.",
        "phone": "{name} a appelé au sujet de ceci : {topic}.",
        "chat": "Clavardage avec {name} à propos de ceci : {topic}.",
        "sms": "Texto de {name} au sujet de ceci : {topic}.",
    },
    ticket_details=(
        "Problème reproduit de notre côté et transféré au niveau 2.",
        "J'ai guidé {first} dans les paramètres; le problème semble réglé.",
        "Demandé une capture d'écran et la version du navigateur.",
        "Crédit de {credit} $ accordé sur la prochaine facture.",
        "Le problème a commencé après la dernière mise à jour de la page {feature}.",
    ),
    ticket_contacts=Odds(
        ("Rappeler au {phone} ou écrire à {email}.", 45),
        ("Joignable au {phone}; confirmation envoyée à {email}.", 25),
        ("Préfère le courriel : {email}.", 12),
        ("Message laissé dans la boîte vocale au {phone}.", 10),
        ("On peut aussi joindre {colleague} à {colleague_email} ou au {colleague_phone}.", 8),
    ),
    ticket_extras=(
        "Adresse postale au dossier : {address}.",
        "Identité confirmée avec le code postal {postal} et la date de naissance {birth}.",
        "{colleague} ({colleague_email}) est en copie et testera le correctif.",
    ),
    email_subjects=(
        "Votre facture 360 Agency",
        "Suivi de votre demande de soutien",
        "Bienvenue chez 360 Agency",
        "Renouvellement de votre forfait",
        "Re : question sur {feature}",
        "Notes de la rencontre",
    ),
    agent_lines=(
        "Merci de votre appel. Comme convenu, les paramètres de {feature} sont à jour.",
        "Votre facture est jointe. Pouvez-vous confirmer l'adresse de facturation au dossier : "
        "{address}?",
        "Pour faire suite à votre billet : pourriez-vous nous envoyer le fichier CSV?",
        "J'ai tenté de vous joindre au {phone}, sans succès. Quand êtes-vous disponible?",
    ),
    customer_lines=(
        "La page {feature} est très lente depuis lundi. Pouvez-vous m'appeler au {phone}?",
        "Veuillez ajouter {colleague} ({colleague_email}) comme contact de facturation.",
        "Pourriez-vous m'envoyer une copie de la facture du mois dernier?",
        "Nous aimerions ajouter deux licences à notre forfait avant le renouvellement.",
    ),
    colleague_lines=(
        "Peux-tu t'occuper du renouvellement avec 360 Agency? Appelle-moi au {phone} au besoin.",
        "J'ai exporté la liste des contacts du CRM; elle est sur le disque partagé.",
        "Le rapport {feature} pour le conseil est prêt, jette un coup d'œil avant vendredi.",
    ),
    agent_mail="Bonjour {first},\n\n{line}\n\nCordialement,\n{agent}\nSuccès client, "
    "360 Agency\n{agent_phone} | {agent_email}\n1250, boul. René-Lévesque O., Montréal "
    "(Québec) H3B 4W8\n",
    customer_mail="Bonjour {agent_first},\n\n{line}\n\nMerci,\n{name}\n{company}\n"
    "{phone} | {email}\n{address}\n",
    to_colleague_mail="Salut {colleague_first},\n\n{line}\n\n{name}\n{phone} | {email}\n",
    from_colleague_mail="Salut {first},\n\n{line}\n\n{colleague}\n{company}\n"
    "{colleague_phone} | {colleague_email}\n",
    privacy={
        "access": "Veuillez me transmettre une copie de tous les renseignements personnels "
        "que vous détenez à mon sujet. Nom : {name}, courriel : {email}, tél. : {phone}.",
        "correction": "Mon adresse est maintenant {address}. Merci de la corriger dans tous "
        "vos systèmes. {name}",
        "withdrawal": "Je retire mon consentement au marketing. Cessez d'écrire au {phone} "
        "et à {email}.",
        "complaint": "Je reçois encore l'infolettre à {email} après deux désabonnements. "
        "{name}, {phone}",
        "deletion": "Fermez mon compte et supprimez mes données. Courriel du compte : "
        "{email}. {name}, né(e) le {birth}.",
    },
)
PHRASES = {"en": _EN, "fr": _FR}
