"""A labelled store for scoring the personal-information scan, written apart from it.

``build_independent_set`` makes the tables a data engineer's store in Quebec could hold:
French and English, a CRM, payments, web events, a clinic, HR, support tickets, legacy
imports without declared types, a marketing list, orders, a catalogue, and two tiny tables
(3 and 30 rows). Column names are mostly neutral (``c3``, ``champ_2``, ``valeur``) or
misleading (``code`` holding postal codes, ``email_template`` holding none); values are
written the way people type them. Every column carries its truth: the entity types (Presidio's
names) that a meaningful part of its non-null values hold.

How the truth is labelled:

- A column holds a type when at least about a fifth of its non-null values hold it; a free-text
  column, when the type appears in about a fifth of its texts. A stray e-mail address in 1 %
  of a column of comments is not a label.
- The specific type names a value, not the generic one it is an instance of as well: a date of
  birth is ``DATE_OF_BIRTH`` (not also ``DATE_TIME``), an e-mail address is ``EMAIL_ADDRESS``
  (its domain is no ``URL``), a RAMQ number is ``CA_QC_HEALTH_NUMBER``.
- A full postal address with its postal code holds ``LOCATION`` and ``CA_POSTAL_CODE``; a
  street line alone holds ``LOCATION``. A city, a province or a country is ``LOCATION``; a
  two-letter market code of a product is not.
- ``PERSON`` covers full names, given names alone and surnames alone, of customers as well as
  of employees and physicians. A company named after a family (``Transport Gagnon ltée``) is
  ``ORGANIZATION``.
- Nationalities, religions and political leanings are ``NRP``.
- A column is labelled by what it holds even where only its context says so: ``import_2019.c14``
  holds dates of birth under a neutral name, so its truth is ``DATE_OF_BIRTH``.

The set imports nothing from Tenure: only the standard library, pandas, Faker and SQLAlchemy.
``write_sqlite`` writes it as one SQLite file (tables without declared types for the untyped
ones); ``score`` compares a tool's labels with the truth.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import textwrap
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal, cast

import pandas as pd
import sqlalchemy as sa
from faker import Faker

Key = tuple[str, str]
"""A column: (table, column)."""

#: The scoring convention: which entity types are personal information.
PERSONAL: frozenset[str] = frozenset(
    {
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "PERSON",
        "LOCATION",
        "CA_POSTAL_CODE",
        "CA_SIN",
        "CA_QC_HEALTH_NUMBER",
        "CREDIT_CARD",
        "IBAN_CODE",
        "CRYPTO",
        "IP_ADDRESS",
        "MAC_ADDRESS",
        "DATE_OF_BIRTH",
        "NRP",
    }
)
#: Entity types Presidio recognizes that are not personal information on their own.
NOT_PERSONAL: frozenset[str] = frozenset({"URL", "UUID", "DATE_TIME", "ORGANIZATION"})

Naming = Literal["neutral", "misleading", "honest"]
"""How a column's name relates to what it holds: says nothing (``c3``, ``valeur``), says
something else (``code`` holding postal codes, ``phone_model`` holding none), or says it."""


@dataclass(frozen=True)
class IndependentSet:
    """The tables, their declared SQL types, and what every column truly holds."""

    tables: dict[str, pd.DataFrame]
    """Table -> rows (object columns, ``None`` for NULL)."""
    declared: dict[str, dict[str, str | None]]
    """Table -> column -> declared SQL type, or None for a table without declared types."""
    truth: dict[Key, frozenset[str]]
    """Every column -> the entity types it holds (empty: none of PERSONAL | NOT_PERSONAL)."""
    about: dict[Key, str]
    """Every column -> one line saying what it really is."""
    naming: dict[Key, Naming] = field(default_factory=dict)
    """Every column -> whether its name is neutral, misleading or honest."""


# ============================================================================ checksums


def luhn_check_digit(digits: str) -> str:
    """The Luhn digit that completes ``digits`` (SIN, payment cards)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 0:  # doubled: the check digit will sit to its right
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return str((10 - total % 10) % 10)


def iban(country: str, bban: str) -> str:
    """The compact IBAN of a country's BBAN, with its ISO 13616 mod-97 check digits."""
    moved = bban + country + "00"
    number = int("".join(str(int(char, 36)) for char in moved))
    return f"{country}{98 - number % 97:02d}{bban}"


def french_rib_key(bank: str, branch: str, account: str) -> str:
    """The two-digit key closing a French RIB (numeric account numbers)."""
    return f"{97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97:02d}"


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58check(version: int, payload: bytes) -> str:
    """A Base58Check string: version byte, payload, the first 4 bytes of a double SHA-256."""
    raw = bytes([version]) + payload
    raw += hashlib.sha256(hashlib.sha256(raw).digest()).digest()[:4]
    number = int.from_bytes(raw, "big")
    encoded = ""
    while number:
        number, remainder = divmod(number, 58)
        encoded = _BASE58[remainder] + encoded
    zeros = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * zeros + encoded


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32M_CONSTANT = 0x2BC830A3


def _bech32_polymod(values: Iterable[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i, g in enumerate(generator):
            checksum ^= g if (top >> i) & 1 else 0
    return checksum


def segwit_address(hrp: str, version: int, program: bytes) -> str:
    """A SegWit address (BIP 173 bech32 for version 0, BIP 350 bech32m above)."""
    data = [version]
    accumulator = bits = 0
    for byte in program:  # 8-bit bytes to 5-bit groups, padded
        accumulator = accumulator << 8 | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append(accumulator >> bits & 31)
    if bits:
        data.append(accumulator << (5 - bits) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    constant = 1 if version == 0 else _BECH32M_CONSTANT
    polymod = _bech32_polymod(expanded + data + [0] * 6) ^ constant
    checksum = [polymod >> 5 * (5 - i) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[d] for d in data + checksum)


def ramq_number(last: str, first: str, birth: date, female: bool, serial: int) -> str:
    """A RAMQ health-insurance number, compact: three letters of the surname (X-padded),
    the given name's initial, YYMMDD with 50 added to a woman's month, two digits."""
    surname = (_letters(last) + "XXX")[:3]
    month = birth.month + (50 if female else 0)
    return f"{surname}{_letters(first)[:1]}{birth:%y}{month:02d}{birth:%d}{serial:02d}"


def _letters(text: str) -> str:
    return "".join(c for c in _ascii(text).upper() if c.isalpha())


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _grouped(text: str, sizes: Sequence[int], sep: str = " ") -> str:
    parts, start = [], 0
    for size in sizes:
        parts.append(text[start : start + size])
        start += size
    if start < len(text):
        parts.append(text[start:])
    return sep.join(p for p in parts if p)


def _fours(text: str) -> str:
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


# ============================================================================ word lists


def _split(text: str) -> tuple[str, ...]:
    """The items of a list written ``a | b | c`` over as many lines as it takes."""
    return tuple(item.strip() for item in text.replace("\n", "|").split("|") if item.strip())


def _weighted(text: str) -> tuple[tuple[str, int], ...]:
    """``name=weight`` items (weight 1 when left out)."""
    pairs = (item.rpartition("=") for item in _split(text))
    return tuple((name, int(w)) if name else (w, 1) for name, _, w in pairs)


#: Municipalities as their residents name them; the common ones weigh more.
_QC_CITIES = _weighted("""
    Montréal=40 | Québec=14 | Laval=10 | Gatineau=7 | Longueuil=7 | Sherbrooke=5 | Saguenay=4
    | Lévis=4 | Trois-Rivières=4 | Terrebonne=3 | Saint-Jean-sur-Richelieu=3 | Repentigny=3
    | Brossard=3 | Drummondville=3 | Saint-Jérôme=3 | Granby=2 | Blainville=2 | Saint-Hyacinthe=2
    | Mirabel=2 | Shawinigan=2 | Dollard-Des Ormeaux=2 | Rimouski=2 | Victoriaville=2
    | Saint-Eustache=2 | Mascouche=2 | Boucherville=2 | Châteauguay=2 | Salaberry-de-Valleyfield
    | Rouyn-Noranda | Sorel-Tracy | Vaudreuil-Dorion | Val-d'Or | Alma | Saint-Bruno-de-Montarville
    | Chambly | Magog | Sainte-Julie | Boisbriand | Saint-Constant | Sept-Îles | Baie-Comeau
    | Thetford Mines | Joliette | Rivière-du-Loup | Côte-Saint-Luc | Pointe-Claire | Kirkland
    | Beaconsfield | Westmount | Mont-Royal | Candiac | La Prairie | Sainte-Thérèse | Saint-Lambert
    | Varennes | Beloeil | Cowansville | Matane | Gaspé | Amos | Sainte-Agathe-des-Monts
    | Mont-Tremblant | Saint-Georges | Lachute | Saint-Lazare | L'Assomption | Dorval | Rosemère
    | Montmagny | La Tuque | Chicoutimi | Jonquière | Sainte-Foy | Saint-Sauveur
    | Sainte-Anne-des-Plaines | Saint-Félicien | Roberval | Dolbeau-Mistassini
""")
#: Other Canadian cities: (name, province abbreviation, weight).
_CA_CITIES: tuple[tuple[str, str, int], ...] = tuple(
    (name.rsplit(" ", 1)[0], name.rsplit(" ", 1)[1], weight)
    for name, weight in _weighted("""
        Toronto ON=8 | Ottawa ON=6 | Mississauga ON=3 | Brampton ON=2 | Hamilton ON=2 | London ON
        | Kitchener ON | Windsor ON | Kingston ON | Sudbury ON | Cornwall ON | Hawkesbury ON
        | Vancouver BC=5 | Surrey BC | Burnaby BC | Victoria BC | Calgary AB=3 | Edmonton AB=3
        | Winnipeg MB=2 | Regina SK | Saskatoon SK | Halifax NS=2 | Moncton NB=2 | Fredericton NB
        | Saint John NB | Edmundston NB | Charlottetown PE | St. John's NL | Whitehorse YT
        | Yellowknife NT | Iqaluit NU
    """)
)
#: (French, English, abbreviation, first letters of its postal codes)
_PROVINCES: tuple[tuple[str, str, str, str], ...] = (
    ("Québec", "Quebec", "QC", "GHJ"),
    ("Ontario", "Ontario", "ON", "KLMNP"),
    ("Colombie-Britannique", "British Columbia", "BC", "V"),
    ("Alberta", "Alberta", "AB", "T"),
    ("Manitoba", "Manitoba", "MB", "R"),
    ("Saskatchewan", "Saskatchewan", "SK", "S"),
    ("Nouvelle-Écosse", "Nova Scotia", "NS", "B"),
    ("Nouveau-Brunswick", "New Brunswick", "NB", "E"),
    ("Île-du-Prince-Édouard", "Prince Edward Island", "PE", "C"),
    ("Terre-Neuve-et-Labrador", "Newfoundland and Labrador", "NL", "A"),
    ("Yukon", "Yukon", "YT", "Y"),
    ("Territoires du Nord-Ouest", "Northwest Territories", "NT", "X"),
    ("Nunavut", "Nunavut", "NU", "X"),
)
_PROVINCE_WEIGHTS = (60, 15, 5, 4, 2, 2, 3, 4, 1, 1, 1, 1, 1)
#: (French, English), Canada first.
_COUNTRIES = tuple(
    tuple(pair.split("/"))
    for pair in _split("""
        Canada/Canada | France/France | États-Unis/United States | Haïti/Haiti | Maroc/Morocco
        | Algérie/Algeria | Liban/Lebanon | Chine/China | Inde/India | Viet Nam/Vietnam
        | Mexique/Mexico | Belgique/Belgium | Suisse/Switzerland | Brésil/Brazil
        | Colombie/Colombia | Philippines/Philippines | Cameroun/Cameroon | Sénégal/Senegal
        | Tunisie/Tunisia | Italie/Italy | Portugal/Portugal | Royaume-Uni/United Kingdom
        | Allemagne/Germany | Iran/Iran
    """)
)
_STREETS_FR = _split("""
    Saint-Denis | Sherbrooke Est | Sherbrooke Ouest | Notre-Dame Ouest | Jean-Talon Est | Papineau
    | du Parc | Wellington | René-Lévesque | des Pins | Laurier Est | Masson | Beaubien | Principale
    | des Érables | de la Montagne | Saint-Hubert | Ontario Est | Fleury Ouest | Bélanger | Cartier
    | de Bordeaux | Saint-Joseph | des Laurentides | Taschereau | Roland-Therrien | Curé-Labelle
    | du Lac | de l'Église | Champlain | Sainte-Catherine Est | Hochelaga | Rachel | Marie-Anne
    | Girouard | Décarie
""")
_STREET_KINDS_FR = _weighted(
    "rue=10 | boulevard=4 | boul.=2 | avenue=4 | av.=1 | chemin=2 | rang | montée | place"
)
_STREETS_EN = _split("""
    Main | Queen | King | Elgin | Maple | Oak | Bank | Yonge | Bloor | Dundas | Sussex | Church
    | Victoria | Park | Lakeshore | Westminster | Sherbrooke | Greene | Cote-des-Neiges | Decarie
    | Sunnyside | Hillcrest | Wilson | Spadina
""")
_STREET_KINDS_EN = _weighted(
    "Street=6 | St=4 | Avenue=3 | Ave=3 | Road=2 | Rd | Blvd | Crescent | Drive=2 | Dr"
)
_EMAIL_DOMAINS = _weighted("""
    gmail.com=30 | hotmail.com=14 | outlook.com=6 | videotron.ca=8 | yahoo.ca=5 | bell.net=3
    | sympatico.ca=3 | icloud.com=4 | live.ca=3 | hotmail.fr=2 | globetrotter.net | cgocable.ca
    | yahoo.com=3 | protonmail.com | desjardins.com | umontreal.ca | ulaval.ca
""")
_QC_AREA = _split("514 | 438 | 450 | 579 | 418 | 581 | 819 | 873 | 367 | 354 | 263")
_CA_AREA = _split("416 | 647 | 437 | 613 | 343 | 604 | 778 | 403 | 587 | 902 | 506 | 204 | 306")
_COMPANIES = _split("""
    Desjardins | Hydro-Québec | Bombardier | CGI | Banque Nationale | Metro inc.
    | Alimentation Couche-Tard | Cascades | Saputo | Québecor | Vidéotron | SAQ | Bell Canada
    | Rogers Communications | Telus | Air Canada | CAE | Ubisoft Montréal | Cirque du Soleil
    | Pratt & Whitney Canada | Agropur | Sobeys | Loblaw | Canadian Tire | Shopify
    | RBC Banque Royale | TD Canada Trust | Banque Scotia | Manuvie | Sun Life | Intact Assurance
    | iA Groupe financier | Ville de Montréal | CHUM | Université Laval | Université de Montréal
    | McGill University | Dollarama | Jean Coutu | Pharmaprix | Rona | Costco | Walmart Canada
    | Lightspeed | Coveo | Mila | Sanimax | Premier Tech | BRP | Lallemand | Garda World
    | Groupe Dynamite | Simons | Deloitte | KPMG | Accenture | IBM Canada
""")
_COMPANY_PATTERNS = _split("""
    Construction {last} inc. | Groupe {last} | Transport {last} ltée | {last} & Fils
    | Services informatiques {word} inc. | {word} Solutions Inc. | Boulangerie {word}
    | Cabinet comptable {last} CPA | {word} Technologies | Toitures {last} inc.
""")
_COMPANY_WORDS = _split("""
    Nordik | Boréal | Alpha | Horizon | Cité | Azur | Summit | Pivot | Laurentide | Optima | Orion
    | Vertex | Maple Leaf | Rive-Sud
""")
_NATIONALITIES = _split("""
    Canadienne | Canadien | canadienne | Française | Français | Haïtienne | Haïtien | Marocaine
    | Marocain | Algérienne | Libanais | Libanaise | Chinoise | Vietnamien | Mexicaine | Belge
    | Suisse | Colombienne | Camerounais | Sénégalaise | Tunisien | Canadian | French | Haitian
    | Moroccan | Lebanese | Chinese | Indian | Filipino | Mexican | American | Italian
    | Portuguese | Iranian | Brazilian
""")
_RELIGIONS = _weighted("""
    catholique=20 | Catholique=10 | Catholic=8 | protestant=3 | Protestant=2 | musulman=5
    | musulmane=5 | Muslim=4 | juif=2 | juive=2 | Jewish=2 | hindou | Hindu=2 | bouddhiste=2
    | Buddhist | sikh | Sikh | orthodoxe=2 | anglican | évangélique | Evangelical | chrétienne=3
    | Christian=2
""")
_POLITICS = _split("""
    libéral | libérale | Liberal | conservateur | conservatrice | Conservative | néo-démocrate
    | NDP supporter | souverainiste | fédéraliste | péquiste | caquiste | solidaire | vert | Green
    | bloquiste | indépendantiste | Libertarian
""")
_PRODUCTS = _split("""
    Chaise ergonomique Nordik | Bureau assis-debout 60 po | Café moulu 1 kg | Câble USB-C 2 m
    | Casque d'écoute sans fil | Lampe de bureau DEL | Tapis de souris XL | Thermos inox 500 ml
    | Sac à dos 25 L | Tuque en laine mérinos | Mitaines doublées | Bottes d'hiver imperméables
    | Sirop d'érable ambré 540 ml | Standing Desk Mat | Wireless Keyboard K380 | Webcam 1080p
    | Laptop Sleeve 14 in | Ergonomic Mouse | Monitor Arm Dual | Notebook A5 Dotted
    | Forfait Pro annuel | Forfait Essentiel mensuel | Extended Warranty 2 yr
    | Cartouche d'encre noire 63XL | Routeur Wi-Fi 6
""")
_COLOURS = _split("""
    bleu marine | rouge | noir | blanc | gris anthracite | vert forêt | beige | Forest Green | Navy
    | Charcoal | Sand | Burgundy | Sky Blue | jaune moutarde | rose pâle | Olive | Teal | bourgogne
""")
_JOBS = _split("""
    Analyste financier | Technicienne comptable | Développeur logiciel | Data Engineer
    | Customer Success Manager | Préposée aux bénéficiaires | Conseillère en ventes
    | Directeur des opérations | Adjointe administrative | Technicien de laboratoire
    | Infirmière auxiliaire | Software Developer | Account Executive | Magasinier
    | Chargée de projet | Scrum Master | Représentant service à la clientèle | Comptable
""")
_DEPARTMENTS = _split("""
    Finances | TI | RH | Ventes | Marketing | Opérations | Operations | Service à la clientèle
    | Customer Support | R&D | Logistique | Legal
""")
_CLINICS = _split("""
    CLSC Ahuntsic | GMF du Plateau | CHUM | Hôpital Maisonneuve-Rosemont | Clinique médicale Angus
    | Polyclinique Cabrini | Jewish General Hospital | CIUSSS de l'Est-de-l'Île-de-Montréal
    | Clinique médicale du Quartier Latin | Hôpital du Sacré-Cœur | CHU de Québec
    | Clinique Santé Pointe-Saint-Charles | Groupe Santé Medisys | Clinique Médicys
    | Centre médical Laval
""")
_HAITIAN_FIRST = _split("""
    Jean-Robert | Wilner | Marie-Carmel | Fabienne | Guerline | Widlyne | Rodney | Ketly | Frantz
    | Nadège | Jocelyne | Réginald
""")
_HAITIAN_LAST = _split("""
    Joseph | Pierre-Louis | Jean-Baptiste | Saint-Fleur | Désir | Louis-Jeune | Charles | Augustin
    | Célestin | Dorsainvil | Étienne
""")
_ARABIC_FIRST = _split("""
    Mohamed | Ahmed | Karim | Yasmine | Fatima | Amina | Samir | Nadia | Rachid | Leila | Omar
    | Khadija | Youssef | Sofiane | Imane | Mehdi
""")
_ARABIC_LAST = _split("""
    Benali | El Amrani | Haddad | Bouzid | Cherkaoui | Mansour | Khalil | Saadi | Belkacem
    | Ait Ahmed | Boudreault-Hamdi | Ouali | Nasser
""")
_VIET_FIRST = _split(
    "Minh | Thi Lan | Van Duc | Thanh Huong | Quoc Bao | Ngoc Anh | Tuan | Hoa | Phuong | Khanh"
)
_VIET_LAST = _split("Nguyen | Tran | Le | Pham | Hoang | Huynh | Phan | Vu | Dang | Bui")


# ============================================================================ people


@dataclass(frozen=True)
class _Person:
    first: str
    last: str
    female: bool
    birth: date
    french: bool

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"


class _Values:
    """Seeded generators of the values people type, in French and English."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fakers: dict[str, Faker] = {}
        for offset, locale in enumerate(("fr_CA", "en_CA", "en_IN", "es_MX", "zh_CN")):
            faker = Faker(locale)
            faker.seed_instance(seed * 100 + offset)
            self.fakers[locale] = faker
        self.now = datetime(2025, 6, 30, 18, 0, 0)

    # ------------------------------------------------------------------ basics

    def pick(self, options: Sequence[str]) -> str:
        return self.rng.choice(options)

    def weighted(self, options: Sequence[tuple[str, int]]) -> str:
        return self.rng.choices([o for o, _ in options], [w for _, w in options])[0]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def digits(self, n: int) -> str:
        return "".join(str(self.rng.randrange(10)) for _ in range(n))

    def hexes(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    # ------------------------------------------------------------------ people

    def person(self, french_share: float = 0.6, other_share: float = 0.2) -> _Person:
        rng = self.rng
        female = self.chance(0.5)
        birth = date(1935, 1, 1) + timedelta(days=rng.randrange(365 * 71))
        draw = rng.random()
        if draw < other_share:
            first, last = self._other_name(female)
            return _Person(first, last, female, birth, self.chance(0.5))
        french = draw < other_share + (1 - other_share) * french_share
        faker = self.fakers["fr_CA" if french else "en_CA"]
        first = faker.first_name_female() if female else faker.first_name_male()
        last = faker.last_name()
        if french and self.chance(0.08):
            last = f"{last}-{faker.last_name()}"
        return _Person(first, last, female, birth, french)

    def _other_name(self, female: bool) -> tuple[str, str]:
        kind = self.rng.randrange(6)
        if kind == 0:
            return self.pick(_HAITIAN_FIRST), self.pick(_HAITIAN_LAST)
        if kind == 1:
            return self.pick(_ARABIC_FIRST), self.pick(_ARABIC_LAST)
        if kind == 2:
            return self.pick(_VIET_FIRST), self.pick(_VIET_LAST)
        if kind == 3:
            faker = self.fakers["en_IN"]
            first = faker.first_name_female() if female else faker.first_name_male()
            return first, faker.last_name()
        if kind == 4:
            faker = self.fakers["es_MX"]
            first = faker.first_name_female() if female else faker.first_name_male()
            return first, faker.last_name()
        faker = self.fakers["zh_CN"]
        return faker.first_romanized_name(), faker.last_romanized_name()

    def written_name(self, p: _Person) -> str:
        """A full name as entered in a form: mostly "First Last", some "LAST, First"."""
        draw = self.rng.random()
        if draw < 0.08:
            return f"{p.last.upper()}, {p.first}"
        if draw < 0.14:
            return f"{p.last}, {p.first}"
        if draw < 0.18:
            return p.full.lower()
        return p.full

    def email(self, p: _Person) -> str:
        first, last = _ascii(p.first).lower(), _ascii(p.last).lower()
        first, last = first.replace(" ", "").replace("'", ""), last.replace(" ", "")
        last = last.replace("'", "")
        domain = self.weighted(_EMAIL_DOMAINS)
        local = self.rng.choice(
            (
                f"{first}.{last}",
                f"{first[:1]}{last}",
                f"{first}{last}{self.rng.randrange(1, 99)}",
                f"{first}_{last[:1]}",
                f"{last}.{first[:1]}",
                f"{first}{p.birth:%y}",
            )
        )
        address = f"{local}@{domain}"
        return address.capitalize() if self.chance(0.04) else address

    def username(self, p: _Person) -> str:
        first, last = _letters(p.first).lower(), _letters(p.last).lower()
        return self.rng.choice(
            (
                f"{first[:1]}{last}{self.rng.randrange(1, 99)}",
                f"{first}_{last[:1]}",
                f"{last}{first[:2]}",
                f"{self.pick(('gamer', 'chat', 'loup', 'maple', 'hab', 'pixel'))}"
                f"{self.rng.randrange(10, 9999)}",
                f"{first}.{last}",
            )
        )

    # ------------------------------------------------------------------ places

    def city(self, province: str | None = None) -> str:
        """A municipality as typed: in Quebec mostly, else in ``province`` when given."""
        if province == "QC" or (province is None and self.chance(0.82)):
            name = self.weighted(_QC_CITIES)
        else:
            name = self.weighted(tuple((n, w) for n, p, w in _CA_CITIES if province in (None, p)))
        if name.startswith(("Saint-", "Sainte-")) and self.chance(0.45):
            name = name.replace("Sainte-", "Ste-").replace("Saint-", "St-")
        if self.chance(0.25):
            name = _ascii(name)
        draw = self.rng.random()
        if draw < 0.06:
            return name.upper()
        if draw < 0.1:
            return name.lower()
        return name

    def province(self) -> tuple[str, str, str, str]:
        return self.rng.choices(_PROVINCES, _PROVINCE_WEIGHTS)[0]

    def province_name(self, french: bool) -> str:
        fr, en, abbreviation, _ = self.province()
        if self.chance(0.12):
            return abbreviation
        name = fr if french else en
        return _ascii(name) if self.chance(0.15) else name

    def country(self, french: bool) -> str:
        weights = [30] + [3] * (len(_COUNTRIES) - 1)
        fr, en = self.rng.choices(_COUNTRIES, weights)[0]
        return fr if french else en

    def postal_code(self, spaced: bool | None = None, letters: str = "GHJ") -> str:
        rng = self.rng
        allowed = "ABCEGHJKLMNPRSTVWXYZ"
        code = (
            rng.choice(letters)
            + str(rng.randrange(10))
            + rng.choice(allowed)
            + str(rng.randrange(10))
            + rng.choice(allowed)
            + str(rng.randrange(10))
        )
        spaced = self.chance(0.8) if spaced is None else spaced
        return f"{code[:3]} {code[3:]}" if spaced else code

    def street(self, french: bool) -> str:
        number = self.rng.choice((self.rng.randrange(1, 200), self.rng.randrange(100, 12000)))
        if french:
            kind = self.weighted(_STREET_KINDS_FR)
            line = f"{number}, {kind} {self.pick(_STREETS_FR)}"
            if self.chance(0.4):
                line = line.replace(",", "", 1)
            if self.chance(0.2):
                line += self.rng.choice(
                    (f", app. {self.rng.randrange(1, 30)}", f" #{self.rng.randrange(1, 400)}")
                )
            return line
        line = f"{number} {self.pick(_STREETS_EN)} {self.weighted(_STREET_KINDS_EN)}"
        if self.chance(0.2):
            line = (
                f"{self.rng.choice(('Unit', 'Apt', 'Suite'))} {self.rng.randrange(1, 40)}, " + line
            )
        return line

    def full_address(self, french: bool) -> str:
        fr, _, abbreviation, letters = self.province()
        city = self.city(abbreviation)
        postal = self.postal_code(letters=letters)
        if abbreviation not in ("QC", "NB", "ON") and self.chance(0.85):
            french = False  # few addresses out west are written in French
        if french:
            return f"{self.street(True)}, {city} ({fr}) {postal}"
        return f"{self.street(False)}, {city}, {abbreviation} {postal}"

    # ------------------------------------------------------------------ numbers people type

    def phone_digits(self, quebec: float = 0.85) -> str:
        area = self.pick(_QC_AREA) if self.chance(quebec) else self.pick(_CA_AREA)
        exchange = str(self.rng.randrange(2, 10)) + self.digits(2)
        while exchange[1:] == "11" or exchange == "555":
            exchange = str(self.rng.randrange(2, 10)) + self.digits(2)
        return area + exchange + self.digits(4)

    def phone(self, style: Literal["fr", "en", "any"] = "any") -> str:
        d = self.phone_digits()
        a, b, c = d[:3], d[3:6], d[6:]
        french = [
            f"{a} {b}-{c}",
            f"({a}) {b}-{c}",
            f"{a}-{b}-{c}",
            f"{a}.{b}.{c}",
            f"1 {a} {b}-{c}",
            f"{a} {b} {c}",
            f"{a} {b}-{c}, poste {self.rng.randrange(10, 999)}",
        ]
        english = [
            f"+1 {a} {b} {c}",
            f"+1 ({a}) {b}-{c}",
            f"+1-{a}-{b}-{c}",
            f"+1{d}",
            f"({a}) {b}-{c}",
            f"{a}-{b}-{c}",
            f"{a}-{b}-{c} ext. {self.rng.randrange(1, 99)}",
            f"1-{a}-{b}-{c}",
            d,
        ]
        if style == "fr":
            return self.rng.choices(french, [30, 15, 20, 5, 5, 5, 5])[0]
        if style == "en":
            return self.rng.choices(english, [15, 10, 8, 8, 20, 20, 5, 5, 9])[0]
        return self.pick(french + english)

    def sin_digits(self) -> str:
        body = self.rng.choice("12345679") + self.digits(7)
        return body + luhn_check_digit(body)

    def sin(self) -> str:
        d = self.sin_digits()
        return self.rng.choices(
            (f"{d[:3]} {d[3:6]} {d[6:]}", f"{d[:3]}-{d[3:6]}-{d[6:]}", d), (5, 3, 3)
        )[0]

    def card(self, spaced: float = 0.5) -> str:
        brand = self.rng.choices(("visa", "mc", "mc2", "amex", "discover"), (45, 25, 8, 15, 7))[0]
        if brand == "visa":
            body = "4" + self.digits(14)
        elif brand == "mc":
            body = f"5{self.rng.randrange(1, 6)}" + self.digits(13)
        elif brand == "mc2":
            body = str(self.rng.randrange(2221, 2721)) + self.digits(11)
        elif brand == "amex":
            body = self.pick(("34", "37")) + self.digits(12)
        else:
            body = "6011" + self.digits(11)
        number = body + luhn_check_digit(body)
        if not self.chance(spaced):
            return number
        if brand == "amex":
            return _grouped(number, (4, 6, 5))
        return _grouped(number, (4, 4, 4, 4), self.pick((" ", " ", " ", "-")))

    def iban(self, spaced: float = 0.5) -> str:
        country = self.rng.choices(("FR", "DE", "GB", "BE", "CH"), (40, 20, 15, 15, 10))[0]
        if country == "FR":
            bank, branch, account = self.digits(5), self.digits(5), self.digits(11)
            code = iban("FR", bank + branch + account + french_rib_key(bank, branch, account))
        elif country == "DE":
            code = iban("DE", self.digits(8) + self.digits(10))
        elif country == "GB":
            bank = self.pick(("NWBK", "BARC", "HBUK", "LOYD", "MIDL"))
            code = iban("GB", bank + self.digits(6) + self.digits(8))
        elif country == "BE":
            account = self.digits(10)
            check = int(account) % 97 or 97
            code = iban("BE", f"{account}{check:02d}")
        else:
            code = iban("CH", self.digits(5) + self.digits(12))
        return _fours(code) if self.chance(spaced) else code

    def bitcoin(self) -> str:
        kind = self.rng.choices(("p2pkh", "p2sh", "wpkh", "wsh", "tr"), (40, 20, 25, 5, 10))[0]
        if kind == "p2pkh":
            return base58check(0x00, self.rng.randbytes(20))
        if kind == "p2sh":
            return base58check(0x05, self.rng.randbytes(20))
        if kind == "wpkh":
            return segwit_address("bc", 0, self.rng.randbytes(20))
        if kind == "wsh":
            return segwit_address("bc", 0, self.rng.randbytes(32))
        return segwit_address("bc", 1, self.rng.randbytes(32))

    def ramq(self, p: _Person, printed: bool) -> str:
        number = ramq_number(p.last, p.first, p.birth, p.female, self.rng.randrange(10, 100))
        return _grouped(number, (4, 4, 4)) if printed else number

    def ipv4(self) -> str:
        """Mostly public addresses of Canadian providers' ranges, some private ones."""
        r = self.rng.randrange
        draw = self.rng.random()
        if draw < 0.15:
            return f"192.168.{r(0, 3)}.{r(2, 255)}"
        if draw < 0.25:
            return f"10.{r(256)}.{r(256)}.{r(1, 255)}"
        first = self.rng.choice((24, 38, 45, 64, 69, 70, 74, 76, 96, 99, 104, 142, 173, 184, 207))
        return f"{first}.{r(256)}.{r(256)}.{r(1, 255)}"

    def ipv6(self) -> str:
        prefix = self.pick(("2607:fa49", "2605:8d80", "2001:56a", "2607:f2c0", "2604:3d08"))
        groups = [format(self.rng.randrange(0x10000), "x") for _ in range(6)]
        if self.chance(0.3):
            return f"{prefix}:{groups[0]}:{groups[1]}::{groups[2]}"
        if self.chance(0.1):
            return f"fe80::{groups[0]}:{groups[1]}:{groups[2]}:{groups[3]}"
        return ":".join([prefix, *groups])

    def mac(self, layout: Literal["colon", "dash", "dot"]) -> str:
        raw = self.hexes(12)
        if layout == "dot":
            return ".".join(raw[i : i + 4] for i in range(0, 12, 4))
        pairs = [raw[i : i + 2] for i in range(0, 12, 2)]
        text = (":" if layout == "colon" else "-").join(pairs)
        return text.upper() if layout == "dash" or self.chance(0.3) else text

    def uuid(self) -> str:
        value = self.rng.getrandbits(128)
        value &= ~(0xF000 << 64)
        value |= 0x4000 << 64  # version 4
        value &= ~(0xC000 << 48)
        value |= 0x8000 << 48  # RFC 4122 variant
        text = f"{value:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    # ------------------------------------------------------------------ things that are not people

    def moment(self, start_year: int = 2019) -> datetime:
        start = datetime(start_year, 1, 1)
        span = int((self.now - start).total_seconds())
        return start + timedelta(seconds=self.rng.randrange(span))

    def company(self) -> str:
        if self.chance(0.65):
            return self.pick(_COMPANIES)
        last = self.fakers["fr_CA"].last_name()
        return self.pick(_COMPANY_PATTERNS).format(last=last, word=self.pick(_COMPANY_WORDS))

    def version(self) -> str:
        r = self.rng.randrange
        return self.rng.choice(
            (
                f"{r(1, 5)}.{r(0, 13)}.{r(0, 30)}",
                f"10.0.{self.pick(('19045', '22631', '22621', '26100'))}",
                f"{r(1, 20)}.{r(0, 10)}",
                f"{r(1, 5)}.{r(0, 10)}.{r(0, 9)}-rc{r(1, 4)}",
                f"v{r(1, 4)}.{r(0, 20)}.{r(0, 9)}",
            )
        )

    def sku(self) -> str:
        return self.rng.choice(
            (
                f"SKU-{self.digits(5)}-{self.pick(('BL', 'NR', 'RG', 'GR', 'XL'))}",
                "-".join(
                    (
                        self.pick(("CHR", "BUR", "CAB", "LMP", "SAC")),
                        self.pick(("ERG", "STD", "PRO")),
                        self.digits(3),
                    )
                ),
                f"{self.digits(3)}-{self.digits(4)}",
            )
        )

    def order_number(self) -> str:
        return self.rng.choice(
            (
                self.digits(7),
                str(1_000_000_000 + self.rng.randrange(2_000_000)),
                f"{self.rng.randrange(2019, 2026)}-{self.digits(6)}",
                f"{self.digits(3)}-{self.digits(5)}",
            )
        )

    def user_agent(self) -> str:
        chrome = self.rng.randrange(110, 132)
        minor = self.rng.randrange(0, 7)
        webkit = "AppleWebKit/537.36 (KHTML, like Gecko)"
        safari = "AppleWebKit/605.1.15 (KHTML, like Gecko)"
        return self.rng.choice(
            (
                f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {webkit} "
                f"Chrome/{chrome}.0.0.0 Safari/537.36",
                f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {safari} "
                f"Version/17.{minor} Safari/605.1.15",
                f"Mozilla/5.0 (iPhone; CPU iPhone OS 17_{minor} like Mac OS X) {safari} "
                f"Version/17.{minor} Mobile/15E148 Safari/604.1",
                f"Mozilla/5.0 (Linux; Android 14; Pixel 7) {webkit} "
                f"Chrome/{chrome}.0.0.0 Mobile Safari/537.36",
                f"Mozilla/5.0 (X11; Linux x86_64; rv:{chrome - 5}.0) Gecko/20100101 "
                f"Firefox/{chrome - 5}.0",
                f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {webkit} "
                f"Chrome/{chrome}.0.0.0 Safari/537.36 Edg/{chrome}.0.{self.digits(4)}.{minor}",
                f"okhttp/4.{self.rng.randrange(9, 13)}.0",
                f"curl/8.{minor}.0",
            )
        )

    def url(self) -> str:
        slug = self.pick(
            (
                "chaise-ergonomique",
                "bureau-assis-debout",
                "cafe-moulu",
                "soldes",
                "winter-boots",
                "keyboard-k380",
                "forfait-pro",
                "nouveautes",
            )
        )
        return self.rng.choice(
            (
                "https://www.google.com/",
                f"https://www.google.ca/search?q={slug.replace('-', '+')}",
                "https://www.facebook.com/",
                f"https://t.co/{self.hexes(10)}",
                f"https://boutique.exemple.ca/fr/produits/{slug}",
                f"https://shop.example.com/en/p/{slug}?utm_source=newsletter",
                f"https://www.lapresse.ca/affaires/{self.digits(4)}-{slug}.php",
                "https://duckduckgo.com/",
                f"http://m.exemple.ca/{slug}",
                f"https://www.bing.com/search?q={slug}",
            )
        )

    def file_path(self) -> str:
        n = self.rng.randrange(1, 9999)
        return self.rng.choice(
            (
                f"/var/log/nginx/access.log.{self.rng.randrange(1, 15)}.gz",
                f"/srv/exports/lot_{n:04d}.csv",
                "C:\\Program Files\\Sage 50\\config.ini",
                f"\\\\serveur\\partage\\factures\\F{n:06d}.pdf",
                f"docs/guide_utilisateur_v{self.rng.randrange(1, 6)}.pdf",
                f"/opt/app/uploads/{self.hexes(16)}.jpg",
                f"s3://bucket-archives/{n:05d}/manifest.json",
                f"D:\\Backups\\db_{n:04d}.bak",
            )
        )

    def json_blob(self) -> str:
        settings = {
            "theme": self.pick(("dark", "light", "auto")),
            "lang": self.pick(("fr", "en")),
            "notifications": self.chance(0.7),
            "page_size": self.rng.choice((10, 25, 50, 100)),
        }
        if self.chance(0.5):
            settings["widgets"] = self.rng.sample(["ventes", "stock", "tickets", "kpi", "map"], 2)
        if self.chance(0.3):
            settings["beta"] = {"new_editor": self.chance(0.5), "build": self.version()}
        return json.dumps(settings, ensure_ascii=False)


# ============================================================================ free text

_TICKET_TEXTS = (
    "{name} a appelé : sa facture compte deux fois les mêmes frais.",
    "Rappeler {first} au {phone} au sujet du remboursement.",
    "Nouvelle adresse courriel du client : {email}. Profil mis à jour.",
    "Le client {name} ne reçoit plus les notifications. Réinstallation conseillée.",
    "Demande de changement de forfait. Joindre {first} au {phone} ou à {email}.",
    "Mot de passe réinitialisé à la demande de l'utilisatrice.",
    "Colis endommagé, photos reçues. Remplacement envoyé.",
    "Mme {last} souhaite fermer son compte; confirmation envoyée à {email}.",
    "Message vocal laissé au {phone}, aucun retour.",
    "Erreur 502 sur la page de paiement, transmis à l'équipe technique.",
    "{name} called about a double charge on the invoice.",
    "Call {first} back at {phone} regarding the refund.",
    "Customer asked to update the contact address to {email}.",
    "Password reset requested by the user; link sent.",
    "Left a voicemail at {phone}. No answer yet.",
    "{name} ({email}) reports the app crashes on launch after the update.",
    "Shipment arrived damaged, replacement sent.",
    "Mr. {last} wants to cancel the subscription, please reach him at {phone}.",
    "Cannot log in from the mobile app, cache cleared, issue resolved.",
    "Escalated to tier 2: sync error 0x80070005 on export.",
)
_RESOLUTIONS = (
    "Cache vidé et application réinstallée.",
    "Remboursement de {amount} $ effectué.",
    "Micrologiciel mis à jour vers la version {version}.",
    "Doublon supprimé, facture corrigée.",
    "Aucune action requise, fonctionnement normal.",
    "Billet fermé : problème non reproductible.",
    "Refund of ${amount} issued to the original payment method.",
    "Duplicate account merged.",
    "Firmware updated to {version}; issue resolved.",
    "Closed: could not reproduce.",
    "Workaround documented in the knowledge base.",
    "Replacement part shipped by courier.",
)
_INTERNAL_COMMENTS = (
    "Vérifier la configuration du serveur de courriel sortant.",
    "Priorité revue à la baisse.",
    "Lié au billet {ticket}.",
    "Cas semblable au billet {ticket}, même correctif.",
    "Attendre le déploiement de la version {version}.",
    "Needs a second look by QA.",
    "Linked to ticket {ticket}.",
    "Known issue, fix planned in {version}.",
    "Template de réponse standard utilisé.",
    "Escalade annulée, résolu au niveau 1.",
)
_CLINIC_REMARKS = (
    "Tension artérielle normale.",
    "Renouvellement d'ordonnance.",
    "Allergie à la pénicilline notée.",
    "Vaccin antigrippal administré.",
    "Référé en physiothérapie.",
    "Résultats sanguins dans les normes.",
    "Suivi de la glycémie à poursuivre.",
    "Aucun changement à la médication.",
    "Douleur lombaire chronique, exercices recommandés.",
    "Bilan annuel complet.",
    "Prise de sang à jeun demandée.",
    "Consultation pour toux persistante.",
)
_DELIVERY_NOTES = (
    "Laisser le colis à la porte arrière.",
    "Leave at the front desk.",
    "Sonner deux fois.",
    "Ne pas laisser dans la boîte aux lettres.",
    "Fragile, manipuler avec soin.",
    "Buzz the intercom, code at the door.",
    "Livrer à la réception du bureau.",
    "Signature requise.",
    "No signature required.",
    "Emballage cadeau, SVP.",
)
_MARKETING_NOTES = (
    "Intéressé par le forfait Pro.",
    "Asked for a demo of the reporting module.",
    "A téléchargé le livre blanc.",
    "Webinar attendee, follow up with pricing.",
    "Ne souhaite plus recevoir d'appels.",
    "Prospect froid.",
    "Hot lead from the trade show booth.",
    "Compare avec un concurrent.",
    "Requested the French brochure.",
    "Client existant, upsell possible.",
)
_SUPPORT_SUBJECTS = (
    "Problème de connexion",
    "Facture en double",
    "Login issue",
    "Export CSV vide",
    "Notifications absentes",
    "App crash on launch",
    "Changement de forfait",
    "Refund request",
    "Erreur 502",
    "Sync error",
    "Colis endommagé",
    "Feature request: dark mode",
)


# ============================================================================ building

#: Short names of the entity types in the tables' specs below.
_ALIASES = {
    "EMAIL": "EMAIL_ADDRESS",
    "PHONE": "PHONE_NUMBER",
    "LOC": "LOCATION",
    "POSTAL": "CA_POSTAL_CODE",
    "SIN": "CA_SIN",
    "RAMQ": "CA_QC_HEALTH_NUMBER",
    "CARD": "CREDIT_CARD",
    "IBAN": "IBAN_CODE",
    "IP": "IP_ADDRESS",
    "MAC": "MAC_ADDRESS",
    "DOB": "DATE_OF_BIRTH",
    "DT": "DATE_TIME",
    "ORG": "ORGANIZATION",
}
_NAMINGS: frozenset[str] = frozenset({"neutral", "misleading", "honest"})

_Source = Callable[[int], object] | Sequence[object]
"""A column's values: a function of the row's index, or the values themselves."""


@dataclass(frozen=True)
class _Column:
    name: str
    sql_type: str | None
    truth: frozenset[str]
    naming: Naming
    nulls: float
    about: str


def _spec(text: str) -> list[_Column]:
    """A table's columns, one a line: ``name TYPE TRUTH naming nulls about``, where TYPE is
    ``-`` in a table without declared types, TRUTH is ``-`` or entity types (short names of
    ``_ALIASES``) joined by commas, nulls is the NULL share (``-``: none), and a more indented
    line goes on with the ``about`` above it."""
    columns: list[_Column] = []
    for line in textwrap.dedent(text).strip("\n").splitlines():
        if line[:1].isspace():
            columns[-1] = replace(columns[-1], about=f"{columns[-1].about} {line.strip()}")
            continue
        name, sql_type, truth, naming, nulls, about = line.split(maxsplit=5)
        entities = frozenset(_ALIASES.get(e, e) for e in truth.split(",") if e != "-")
        assert entities <= PERSONAL | NOT_PERSONAL, (name, entities)
        assert naming in _NAMINGS, (name, naming)
        columns.append(
            _Column(
                name,
                None if sql_type == "-" else sql_type,
                entities,
                cast(Naming, naming),
                0.0 if nulls == "-" else float(nulls),
                about,
            )
        )
    return columns


@dataclass
class _Table:
    name: str
    rows: int
    typed: bool
    columns: dict[str, list[object]] = field(default_factory=dict)
    declared: dict[str, str | None] = field(default_factory=dict)


class _Builder:
    def __init__(self, rows: int, seed: int) -> None:
        self.rows = rows
        self.v = _Values(seed)
        self.tables: list[_Table] = []
        self.truth: dict[Key, frozenset[str]] = {}
        self.about: dict[Key, str] = {}
        self.naming: dict[Key, Naming] = {}

    def table(self, name: str, typed: bool, rows: int | None = None) -> _Table:
        table = _Table(name, self.rows if rows is None else rows, typed)
        self.tables.append(table)
        return table

    def columns(self, table: _Table, spec: str, values: Mapping[str, _Source]) -> None:
        """The columns of ``spec`` (see ``_spec``), in its order, with their ``values``."""
        columns = _spec(spec)
        assert [c.name for c in columns] == list(values), (table.name, list(values))
        for column in columns:
            assert (column.sql_type is not None) == table.typed, (table.name, column.name)
            self._add(table, column, values[column.name])

    def _add(self, table: _Table, column: _Column, values: _Source) -> None:
        if isinstance(values, Sequence):
            produced = list(values)
        else:
            produced = [values(i) for i in range(table.rows)]
        assert len(produced) == table.rows, (table.name, column.name)
        if column.nulls:
            produced = [None if self.v.chance(column.nulls) else value for value in produced]
        key = (table.name, column.name)
        assert key not in self.truth, key
        table.columns[column.name] = produced
        table.declared[column.name] = column.sql_type
        self.truth[key] = column.truth
        self.about[key] = column.about
        self.naming[key] = column.naming

    def people(self, n: int, french_share: float, other_share: float) -> list[_Person]:
        return [self.v.person(french_share, other_share) for _ in range(n)]

    def result(self) -> IndependentSet:
        frames = {
            t.name: pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in t.columns.items()})
            for t in self.tables
        }
        return IndependentSet(
            tables=frames,
            declared={t.name: dict(t.declared) for t in self.tables},
            truth=dict(self.truth),
            about=dict(self.about),
            naming=dict(self.naming),
        )


def build_independent_set(rows: int = 2000, seed: int = 7) -> IndependentSet:
    """The labelled store: ``rows`` rows in each ordinary table, two tiny tables of 3 and 30
    rows, the same values for the same ``seed``."""
    b = _Builder(rows, seed)
    tables: list[Callable[[_Builder], None]] = [_clients, _accounts, _payments, _web_events]
    tables += [_clinic, _staff, _tickets, _legacy_import, _netlog, _marketing, _orders]
    tables += [_catalogue, _tiny_tables]
    for table in tables:
        table(b)
    return b.result()


def _clients(b: _Builder) -> None:
    """A Quebec CRM's customers, in French."""
    v, t = b.v, b.table("clients", typed=True)
    people = b.people(t.rows, french_share=0.85, other_share=0.15)
    spec = """
        id             INTEGER        -            honest     -    surrogate key
        cle            TEXT           UUID         neutral    -    public customer id (UUID v4)
        champ_1        TEXT           PERSON       neutral    .02  given name alone
        champ_2        TEXT           PERSON       neutral    .02  surname alone
        code           TEXT           POSTAL       misleading .05  postal code, mostly spaced
                                                                   (H2X 1Y4), some compact
        ref            TEXT           SIN          neutral    .3   social insurance number,
                                                                   spaced, dashed or plain
        info           TEXT           LOC          neutral    .05  street line of the home address
        ville          TEXT           LOC          honest     .03  municipality as typed (accents
                                                                   or not, St-/Saint-, case)
        joindre_par    TEXT           EMAIL,PHONE  neutral    -    preferred contact: about half
                                                                   e-mail addresses, half phones
        nom_produit    TEXT           -            misleading -    the favourite product's name
        cree_le        TIMESTAMP      DT           honest     -    when the record was created
        etat           TEXT           -            honest     -    account status, French words
        val_3          NUMERIC(12,2)  -            neutral    -    account balance
        date_naissance DATE           DOB          honest     .1   date of birth
        champ_9        TEXT           -            neutral    -    newsletter consent (oui/non)
    """
    states = _weighted("actif=70 | inactif=20 | suspendu=5 | fermé=5")
    b.columns(t, spec, {
        "id": lambda i: i + 1,
        "cle": lambda i: v.uuid(),
        "champ_1": lambda i: people[i].first,
        "champ_2": lambda i: people[i].last,
        "code": lambda i: v.postal_code(),
        "ref": lambda i: v.sin(),
        "info": lambda i: v.street(True),
        "ville": lambda i: v.city(),
        "joindre_par": lambda i: v.email(people[i]) if v.chance(0.5) else v.phone("fr"),
        "nom_produit": lambda i: v.pick(_PRODUCTS),
        "cree_le": lambda i: v.moment(),
        "etat": lambda i: v.weighted(states),
        "val_3": lambda i: round(v.rng.uniform(-500, 5000), 2),
        "date_naissance": lambda i: people[i].birth,
        "champ_9": lambda i: v.weighted((("oui", 6), ("non", 4))),
    })  # fmt: skip


def _accounts(b: _Builder) -> None:
    """An English-speaking subscription service's accounts."""
    v, t = b.v, b.table("accounts", typed=True)
    people = b.people(t.rows, french_share=0.25, other_share=0.3)
    spec = """
        account_id           BIGINT     -      honest     -    account number (sequential)
        col_a                TEXT       PERSON neutral    -    full name as entered (some LAST,
                                                               First; many non-Western names)
        col_b                TEXT       PHONE  neutral    .1   phone, English layouts, many +1
        notes                TEXT       EMAIL  misleading .05  the account's e-mail address
        login                TEXT       EMAIL  neutral    -    sign-in id: half e-mail
                                                               addresses, half usernames
        email_template       TEXT       -      misleading -    last e-mail template sent
        phone_model          TEXT       -      misleading .2   model of the device the app runs on
        address_book_version TEXT       -      misleading -    version of a software component
        card_design          TEXT       -      misleading -    chosen gift-card design
        region               TEXT       LOC    honest     -    province, French or English name,
                                                               some abbreviated
        employer             TEXT       ORG    honest     .3   the customer's employer
        signup               TIMESTAMP  DT     honest     -    sign-up time
        dob                  TEXT       DOB    honest     .15  date of birth, ISO text
        tier                 TEXT       -      neutral    -    subscription tier
        attr_7               TEXT       LOC    neutral    -    country of residence, French or
                                                               English name
    """
    templates = _split("""welcome_v2 | password_reset_fr | password_reset_en | invoice_monthly
                          | renewal_reminder_30d | winback_2024""")
    models = _split("""iPhone 13 | iPhone 15 Pro | Samsung Galaxy S21 | Pixel 7 | Galaxy A54
                       | Moto G Power | iPhone SE | OnePlus 11""")
    designs = _split("Classic Blue | Aurora | Noir mat | Érable | Minimal White | Northern Lights")
    b.columns(t, spec, {
        "account_id": lambda i: 880_000_000 + i * 7,
        "col_a": lambda i: v.written_name(people[i]),
        "col_b": lambda i: v.phone("en"),
        "notes": lambda i: v.email(people[i]),
        "login": lambda i: v.email(people[i]) if v.chance(0.5) else v.username(people[i]),
        "email_template": lambda i: v.pick(templates),
        "phone_model": lambda i: v.pick(models),
        "address_book_version": lambda i: v.version(),
        "card_design": lambda i: v.pick(designs),
        "region": lambda i: v.province_name(people[i].french),
        "employer": lambda i: v.company(),
        "signup": lambda i: v.moment(),
        "dob": lambda i: people[i].birth.isoformat(),
        "tier": lambda i: v.pick(("free", "basic", "plus", "gold")),
        "attr_7": lambda i: v.country(people[i].french),
    })  # fmt: skip


def _payments(b: _Builder) -> None:
    """Payments of a bilingual shop."""
    v, t = b.v, b.table("paiements", typed=True)
    spec = """
        no            INTEGER        -      neutral    -    payment number
        num           TEXT           -      neutral    -    order number: 7 to 10 digits, some
                                                            dashed
        val_1         NUMERIC(12,2)  -      neutral    -    amount paid
        val_2         TEXT           -      neutral    -    currency code
        carte         TEXT           CARD   honest     .1   card number (Visa, Mastercard,
                                                            Amex, Discover), spaced or not
        val           TEXT           CARD   neutral    .85  backup card number, compact
        affichage     TEXT           -      neutral    -    masked card: last four digits only
        compte        TEXT           IBAN   misleading .6   IBAN of a European refund account,
                                                            spaced
        attr_2        TEXT           IBAN   neutral    .8   IBAN, compact
        portefeuille  TEXT           CRYPTO honest     .7   Bitcoin address paid from (P2PKH,
                                                            P2SH, bech32, some taproot)
        traite_le     TIMESTAMP      DT     honest     -    when the payment was processed
        status        TEXT           -      honest     -    payment status, French or English
        empreinte     TEXT           -      neutral    -    SHA-256 of the receipt
        n             INTEGER        -      neutral    -    quantity of items
    """
    states = _split("approved | declined | pending | approuvé | refusé | en attente")
    b.columns(t, spec, {
        "no": lambda i: 10_000 + i,
        "num": lambda i: v.order_number(),
        "val_1": lambda i: round(v.rng.lognormvariate(4, 1), 2),
        "val_2": lambda i: v.weighted((("CAD", 85), ("USD", 10), ("EUR", 5))),
        "carte": lambda i: v.card(0.6),
        "val": lambda i: v.card(0.0),
        "affichage": lambda i: f"**** **** **** {v.digits(4)}",
        "compte": lambda i: v.iban(1.0),
        "attr_2": lambda i: v.iban(0.0),
        "portefeuille": lambda i: v.bitcoin(),
        "traite_le": lambda i: v.moment(2022),
        "status": lambda i: v.pick(states),
        "empreinte": lambda i: hashlib.sha256(v.rng.randbytes(16)).hexdigest(),
        "n": lambda i: v.rng.choice((1, 1, 1, 2, 2, 3, 5, 10)),
    })  # fmt: skip


def _web_events(b: _Builder) -> None:
    """A web server's events."""
    v, t = b.v, b.table("web_events", typed=True)
    spec = """
        event_id       TEXT       UUID  honest     -    event id (UUID v4)
        source         TEXT       IP    misleading -    client IPv4 address
        c3             TEXT       IP    neutral    .4   client IPv6 address
        device         TEXT       MAC   misleading .2   client device's MAC address, colons
        hdr            TEXT       -     neutral    -    user-agent string
        ref            TEXT       URL   neutral    .3   referrer URL
        ts             TIMESTAMP  DT    honest     -    event time
        ip_range_label TEXT       -     misleading -    label of the network segment
        payload        TEXT       -     neutral    -    JSON of UI settings, no personal data
        rc             INTEGER    -     neutral    -    HTTP status
        sz             BIGINT     -     neutral    -    response size
        p              TEXT       -     neutral    -    request path
        build          TEXT       -     neutral    -    front-end build version
    """
    segments = _split("bureau-mtl-vlan20 | DMZ | wifi-invités | VPN-pool-B | LAN-QC-3 | dc-1")
    b.columns(t, spec, {
        "event_id": lambda i: v.uuid(),
        "source": lambda i: v.ipv4(),
        "c3": lambda i: v.ipv6(),
        "device": lambda i: v.mac("colon"),
        "hdr": lambda i: v.user_agent(),
        "ref": lambda i: v.url(),
        "ts": lambda i: v.moment(2024),
        "ip_range_label": lambda i: v.pick(segments),
        "payload": lambda i: v.json_blob(),
        "rc": lambda i: v.rng.choice((200, 200, 200, 301, 304, 404, 500)),
        "sz": lambda i: v.rng.randrange(200, 5_000_000),
        "p": lambda i: v.rng.choice(("/fr/produits/chaise-nordik", "/en/cart", "/en/checkout",
                                     f"/api/v2/orders/{v.digits(7)}", "/fr/compte/connexion")),
        "build": lambda i: v.version(),
    })  # fmt: skip


def _clinic(b: _Builder) -> None:
    """A medical clinic's patient files, in French."""
    v, t = b.v, b.table("dossiers", typed=True)
    people = b.people(t.rows, french_share=0.8, other_share=0.25)
    spec = """
        id          INTEGER       -      honest     -    file number
        no_carte    TEXT          RAMQ   neutral    .05  RAMQ health-insurance number as
                                                         printed (TREM 8501 0112)
        patient     TEXT          PERSON honest     -    patient's full name
        ddn         TEXT          DOB    honest     -    date of birth, text (14/03/1985)
        valeur      TEXT          PHONE  neutral    .05  phone, French layouts (514 555-1234)
        attr_1      TEXT          NRP    neutral    .5   religion (for spiritual care), French
                                                         or English
        origine     TEXT          NRP    honest     .3   nationality
        medecin     TEXT          PERSON honest     -    attending physician (Dr/Dre + name)
        site        TEXT          ORG    neutral    -    clinic or hospital where seen
        texte_libre TEXT          -      neutral    -    clinical remarks, no names or contact
                                                         details
        rdv         TIMESTAMP     DT     honest     -    next appointment
        nas         BIGINT        SIN    honest     .88  social insurance number, an integer
        poids_kg    NUMERIC(5,1)  -      honest     -    weight in kg
        c12         TEXT          LOC    neutral    .2   country of birth, in French
    """
    b.columns(t, spec, {
        "id": lambda i: i + 1,
        "no_carte": lambda i: v.ramq(people[i], printed=True),
        "patient": lambda i: people[i].full,
        "ddn": lambda i: f"{people[i].birth:%d/%m/%Y}",
        "valeur": lambda i: v.phone("fr"),
        "attr_1": lambda i: v.weighted(_RELIGIONS),
        "origine": lambda i: v.pick(_NATIONALITIES),
        "medecin": lambda i: f"{'Dre' if v.chance(0.5) else 'Dr'} {v.person(0.7, 0.2).full}",
        "site": lambda i: v.pick(_CLINICS),
        "texte_libre": lambda i: " ".join(v.rng.sample(_CLINIC_REMARKS, v.rng.choice((1, 1, 2)))),
        "rdv": lambda i: v.moment(2023),
        "nas": lambda i: int(v.sin_digits()),
        "poids_kg": lambda i: round(v.rng.uniform(45, 120), 1),
        "c12": lambda i: v.country(True),
    })  # fmt: skip


def _staff(b: _Builder) -> None:
    """Human resources, bilingual."""
    v, t = b.v, b.table("employes", typed=True)
    people = b.people(t.rows, french_share=0.6, other_share=0.3)
    relatives = b.people(t.rows, french_share=0.6, other_share=0.25)
    relations = _split(
        "mère | père | conjoint | conjointe | sœur | frère | spouse | mother | friend"
    )
    spec = """
        matricule        INTEGER        -            honest  -    employee number
        champ_3          TEXT           PERSON       neutral -    employee's full name (French,
                                                                  English, non-Western)
        data             BIGINT         PHONE        neutral .05  phone, a 10-digit integer
        ref_2            BIGINT         SIN          neutral -    social insurance number, an
                                                                  integer
        poste            TEXT           -            honest  -    job title
        service          TEXT           -            honest  -    department
        montant_1        NUMERIC(10,2)  -            neutral -    annual salary
        date_1           DATE           DT           neutral -    hire date
        naissance        DATE           DOB          honest  .85  date of birth
        adresse_domicile TEXT           LOC,POSTAL   honest  -    full home address: street, city,
                                                                  province, postal code
        urgence          TEXT           PERSON,PHONE neutral .1   emergency contact: name,
                                                                  relation, phone
        flag             BOOLEAN        -            neutral -    still employed
        badge            TEXT           -            neutral -    4-byte RFID badge id (04:A2:2B:1C)
        info_3           TEXT           ORG          neutral .25  previous employer
    """
    b.columns(t, spec, {
        "matricule": lambda i: 20_000 + i,
        "champ_3": lambda i: people[i].full,
        "data": lambda i: int(v.phone_digits()),
        "ref_2": lambda i: int(v.sin_digits()),
        "poste": lambda i: v.pick(_JOBS),
        "service": lambda i: v.pick(_DEPARTMENTS),
        "montant_1": lambda i: round(v.rng.uniform(38_000, 140_000), 2),
        "date_1": lambda i: v.moment(2005).date(),
        "naissance": lambda i: people[i].birth,
        "adresse_domicile": lambda i: v.full_address(people[i].french),
        "urgence": lambda i: f"{relatives[i].full} ({v.pick(relations)}) {v.phone()}",
        "flag": lambda i: v.chance(0.9),
        "badge": lambda i: ":".join(v.hexes(2) for _ in range(4)).upper(),
        "info_3": lambda i: v.company(),
    })  # fmt: skip


def _tickets(b: _Builder) -> None:
    """Customer support tickets, French and English."""
    v, t = b.v, b.table("billets_support", typed=True)
    people = b.people(t.rows, french_share=0.6, other_share=0.2)
    agents = [v.person(0.7, 0.15).first for _ in range(25)]

    def text(i: int) -> str:
        p = people[i]
        template = v.pick(_TICKET_TEXTS)
        return template.format(
            name=p.full, first=p.first, last=p.last, email=v.email(p), phone=v.phone()
        )

    def comment(i: int) -> str:
        if v.chance(0.01):
            return f"Voir aussi le courriel transféré par {v.email(people[i])}."
        return v.pick(_INTERNAL_COMMENTS).format(ticket=f"TCK-{v.digits(6)}", version=v.version())

    def resolution(i: int) -> str:
        amount = f"{v.rng.uniform(5, 300):.2f}"
        return v.pick(_RESOLUTIONS).format(amount=amount, version=v.version())

    spec = """
        no        TEXT       -                 neutral -    ticket number
        texte     TEXT       PERSON,EMAIL,PHONE neutral -   support note, French or English:
                                                            names in ~45 %, e-mail addresses in
                                                            ~25 %, phones in ~30 % of the notes
        suivi     TEXT       -                 neutral .2   how it was resolved, no personal data
        interne   TEXT       -                 neutral -    internal comment; about 1 % hold a
                                                            stray e-mail address
        agent     TEXT       PERSON            honest  -    the support agent's given name
        p         TEXT       -                 neutral -    priority
        ouvert    TIMESTAMP  DT                honest  -    when the ticket was opened
        canal     TEXT       -                 neutral -    channel (the words: courriel,
                                                            téléphone, phone, chat...)
        sujet     TEXT       -                 honest  -    subject line, no personal data
        sku       TEXT       -                 honest  -    product SKU
        v         TEXT       -                 neutral -    app version
        piece     TEXT       -                 neutral .6   attachment's file path
    """
    channels = _split("courriel | téléphone | clavardage | email | phone | chat | web")
    b.columns(t, spec, {
        "no": lambda i: f"TCK-{100_000 + i:06d}",
        "texte": text,
        "suivi": resolution,
        "interne": comment,
        "agent": lambda i: v.pick(agents),
        "p": lambda i: v.pick(("P1", "P2", "P3", "haute", "basse", "normale")),
        "ouvert": lambda i: v.moment(2023),
        "canal": lambda i: v.pick(channels),
        "sujet": lambda i: v.pick(_SUPPORT_SUBJECTS),
        "sku": lambda i: v.sku(),
        "v": lambda i: v.version(),
        "piece": lambda i: v.file_path(),
    })  # fmt: skip


def _legacy_import(b: _Builder) -> None:
    """A 2019 CSV import kept in SQLite without declared types."""
    v, t = b.v, b.table("import_2019", typed=False)
    people = b.people(t.rows, french_share=0.65, other_share=0.2)
    spec = """
        c1   -  -       neutral  -    row number (integer)
        c2   -  PERSON  neutral  -    full name
        c3   -  PHONE   neutral  .1   phone number, any layout
        c4   -  POSTAL  neutral  -    postal code, compact (H2X1Y4)
        c5   -  SIN     neutral  .2   social insurance number, an integer
        c6   -  LOC     neutral  -    municipality
        c7   -  -       neutral  -    amount (real)
        c8   -  -       neutral  -    yes/no flag, French text
        c9   -  DT      neutral  -    import timestamp, text
        c10  -  EMAIL   neutral  .9   e-mail address, rarely filled
        c11  -  -       neutral  -    order number, a 7-digit integer
        c12  -  -       neutral  -    colour name
        c13  -  RAMQ    neutral  .3   RAMQ number, compact (TREM85010112)
        c14  -  DOB     neutral  -    date of birth, text: 14/03/1985 or 1985-03-14
    """
    b.columns(t, spec, {
        "c1": lambda i: i + 1,
        "c2": lambda i: v.written_name(people[i]),
        "c3": lambda i: v.phone(),
        "c4": lambda i: v.postal_code(spaced=False),
        "c5": lambda i: int(v.sin_digits()),
        "c6": lambda i: v.city(),
        "c7": lambda i: round(v.rng.uniform(0, 2000), 2),
        "c8": lambda i: v.pick(("oui", "non", "OUI", "NON")),
        "c9": lambda i: f"{v.moment(2015):%Y-%m-%d %H:%M:%S}",
        "c10": lambda i: v.email(people[i]),
        "c11": lambda i: 4_100_000 + i * 3 + v.rng.randrange(3),
        "c12": lambda i: v.pick(_COLOURS),
        "c13": lambda i: v.ramq(people[i], printed=False),
        "c14": lambda i: f"{people[i].birth:%d/%m/%Y}" if v.chance(0.5)
                         else people[i].birth.isoformat(),
    })  # fmt: skip


def _netlog(b: _Builder) -> None:
    """Network device logs without declared types."""
    v, t = b.v, b.table("netlog", typed=False)
    spec = """
        x1      -  MAC   neutral     -   MAC address, dashes (A4-5E-60-E8-1B-2C)
        x2      -  MAC   neutral     .3  MAC address, Cisco dots (a45e.60e8.1b2c)
        origin  -  IP    misleading  -   client IP address, v4 or v6
        x4      -  -     neutral     -   port (integer)
        x5      -  -     neutral     -   SHA-1 of the payload
        x6      -  DT    neutral     -   event time, ISO 8601 text
        x7      -  -     neutral     -   user-agent string
        x8      -  UUID  neutral     -   session id (UUID)
        x9      -  URL   neutral     -   requested URL
        x10     -  -     neutral     -   bytes transferred (integer)
        x11     -  -     neutral     -   log level
        x12     -  -     neutral     -   file path
    """
    b.columns(t, spec, {
        "x1": lambda i: v.mac("dash"),
        "x2": lambda i: v.mac("dot"),
        "origin": lambda i: v.ipv4() if v.chance(0.6) else v.ipv6(),
        "x4": lambda i: v.rng.choice((443, 80, 22, 8080, 53, v.rng.randrange(1024, 65535))),
        "x5": lambda i: hashlib.sha1(v.rng.randbytes(8)).hexdigest(),
        "x6": lambda i: f"{v.moment(2024):%Y-%m-%dT%H:%M:%S}Z",
        "x7": lambda i: v.user_agent(),
        "x8": lambda i: v.uuid(),
        "x9": lambda i: v.url(),
        "x10": lambda i: v.rng.randrange(0, 10_000_000),
        "x11": lambda i: v.pick(("INFO", "WARN", "ERROR", "DEBUG")),
        "x12": lambda i: v.file_path(),
    })  # fmt: skip


def _marketing(b: _Builder) -> None:
    """A marketing list without declared types, French and English."""
    v, t = b.v, b.table("contacts_marketing", typed=False)
    people = b.people(t.rows, french_share=0.55, other_share=0.2)
    spec = """
        contact         -  PERSON,PHONE  neutral     -    contact: about half names, half
                                                          phone numbers
        k7              -  CRYPTO        neutral     .9   Bitcoin address for payouts
        nationalite     -  NRP           honest      .4   nationality
        affil           -  NRP           neutral     .5   political leaning (advocacy list)
        prov            -  LOC           honest      -    province
        segment         -  -             neutral     -    segment
        score           -  -             neutral     -    lead score (real)
        optin           -  -             neutral     -    consent flag, text
        source          -  -             neutral     -    campaign source
        lien            -  URL           neutral     -    landing page URL
        compagnie       -  ORG           honest      -    company
        remarque        -  -             neutral     .3   marketing note, no personal data
        courriel_valide -  -             misleading  -    whether the e-mail bounced (a flag,
                                                          no address)
        ip_inscription  -  IP            honest      .2   IP address the sign-up came from
    """
    sources = _split("infolettre | facebook | salon | referral | google-ads | site web")
    b.columns(t, spec, {
        "contact": lambda i: people[i].full if v.chance(0.5) else v.phone(),
        "k7": lambda i: v.bitcoin(),
        "nationalite": lambda i: v.pick(_NATIONALITIES),
        "affil": lambda i: v.pick(_POLITICS),
        "prov": lambda i: v.province_name(people[i].french),
        "segment": lambda i: v.pick(("A", "B", "C", "VIP")),
        "score": lambda i: round(v.rng.random() * 100, 1),
        "optin": lambda i: v.pick(("oui", "non", "yes", "no")),
        "source": lambda i: v.pick(sources),
        "lien": lambda i: v.url(),
        "compagnie": lambda i: v.company(),
        "remarque": lambda i: v.pick(_MARKETING_NOTES),
        "courriel_valide": lambda i: v.pick(("vrai", "faux", "true", "false")),
        "ip_inscription": lambda i: v.ipv4(),
    })  # fmt: skip


def _orders(b: _Builder) -> None:
    """Orders of an online shop, English column names."""
    v, t = b.v, b.table("orders", typed=True)
    people = b.people(t.rows, french_share=0.5, other_share=0.2)
    spec = """
        ref          TEXT           -       neutral  -    order number
        sku          TEXT           -       honest   -    SKU
        n            INTEGER        -       neutral  -    quantity
        amount_1     NUMERIC(10,2)  -       neutral  -    unit price
        cur          TEXT           -       neutral  -    currency code
        state        TEXT           -       neutral  -    order status, French or English
        market       TEXT           -       neutral  -    sales market, ISO country code
        created      TIMESTAMP      DT      honest   -    order time
        ship_to      TEXT           PERSON  neutral  -    recipient's name
        line1        TEXT           LOC     neutral  -    shipping street line, French or English
        instructions TEXT           -       neutral  .5   delivery instructions, no personal data
        tracking     TEXT           -       neutral  .2   carrier tracking number (UPS, Canada
                                                          Post, Purolator)
        options      TEXT           -       neutral  -    JSON of options
    """
    states = _split("shipped | pending | cancelled | livré | annulé | EN_COURS")

    def tracking(i: int) -> str:
        kind = v.rng.randrange(3)
        if kind == 0:
            return f"1Z{v.hexes(6).upper()}{v.digits(10)}"
        return _fours(v.digits(16)) if kind == 1 else v.digits(12)

    b.columns(t, spec, {
        "ref": lambda i: v.order_number(),
        "sku": lambda i: v.sku(),
        "n": lambda i: v.rng.randrange(1, 12),
        "amount_1": lambda i: round(v.rng.uniform(2, 900), 2),
        "cur": lambda i: v.pick(("CAD", "CAD", "CAD", "USD", "EUR")),
        "state": lambda i: v.pick(states),
        "market": lambda i: v.pick(("CA", "US", "FR", "BE", "CH")),
        "created": lambda i: v.moment(2021),
        "ship_to": lambda i: v.written_name(people[i]),
        "line1": lambda i: v.street(people[i].french),
        "instructions": lambda i: v.pick(_DELIVERY_NOTES),
        "tracking": tracking,
        "options": lambda i: v.json_blob(),
    })  # fmt: skip


def _catalogue(b: _Builder) -> None:
    """A product catalogue, in French."""
    v, t = b.v, b.table("produits", typed=True)
    spec = """
        nom_produit  TEXT           -     misleading -  product name
        code_2       TEXT           -     neutral    -  SKU
        p1           NUMERIC(10,2)  -     neutral    -  price
        attr_c       TEXT           -     neutral    -  colour
        fw           TEXT           -     neutral    -  firmware version
        uid          TEXT           UUID  neutral    -  product UUID
        fiche        TEXT           URL   neutral    -  product page URL
        maj          TIMESTAMP      DT    honest     -  last update
        fournisseur  TEXT           ORG   honest     -  supplier
        qte          INTEGER        -     neutral    -  units in stock
    """
    b.columns(t, spec, {
        "nom_produit": lambda i: v.pick(_PRODUCTS),
        "code_2": lambda i: v.sku(),
        "p1": lambda i: round(v.rng.uniform(2, 900), 2),
        "attr_c": lambda i: v.pick(_COLOURS),
        "fw": lambda i: v.version(),
        "uid": lambda i: v.uuid(),
        "fiche": lambda i: v.url(),
        "maj": lambda i: v.moment(2022),
        "fournisseur": lambda i: v.company(),
        "qte": lambda i: v.rng.randrange(0, 500),
    })  # fmt: skip


def _tiny_tables(b: _Builder) -> None:
    """A workshop sign-up sheet of 3 rows and a volunteer list of 30."""
    v = b.v
    t = b.table("inscriptions_atelier", typed=True, rows=3)
    people = b.people(3, french_share=0.8, other_share=0.2)
    spec = """
        col_1    TEXT          EMAIL   neutral -  e-mail address
        col_2    TEXT          PERSON  neutral -  full name
        col_3    TEXT          PHONE   neutral -  phone number
        col_4    TEXT          LOC     neutral -  municipality
        x_1      TEXT          -       neutral -  workshop
        x_2      INTEGER       -       neutral -  seats booked
        x_3      NUMERIC(8,2)  -       neutral -  price
        inscrit  TIMESTAMP     DT      honest  -  when signed up
    """
    b.columns(t, spec, {
        "col_1": [v.email(p) for p in people],
        "col_2": [p.full for p in people],
        "col_3": [v.phone("fr") for _ in people],
        "col_4": [v.city() for _ in people],
        "x_1": ["Initiation à Excel", "Initiation à Excel", "Budget 101"],
        "x_2": [2, 1, 1],
        "x_3": [25.0, 25.0, 0.0],
        "inscrit": [v.moment(2025) for _ in people],
    })  # fmt: skip

    t = b.table("benevoles", typed=False, rows=30)
    people = b.people(30, french_share=0.6, other_share=0.25)
    spec = """
        a  -  EMAIL   neutral -  e-mail address
        b  -  PERSON  neutral -  full name
        c  -  PHONE   neutral -  phone number
        d  -  LOC     neutral -  municipality
        e  -  -       neutral -  availability (words)
        f  -  -       neutral -  hours volunteered (integer)
        g  -  -       neutral -  t-shirt size
    """
    b.columns(t, spec, {
        "a": [v.email(p) for p in people],
        "b": [p.full for p in people],
        "c": [v.phone() for _ in people],
        "d": [v.city() for _ in people],
        "e": [v.pick(("samedi", "dimanche", "soir", "weekend")) for _ in people],
        "f": [v.rng.randrange(0, 40) for _ in people],
        "g": [v.pick(("S", "M", "L", "XL")) for _ in people],
    })  # fmt: skip


# ============================================================================ SQLite


def write_sqlite(data: IndependentSet, path: Path) -> str:
    """Write every table into one SQLite file (its tables replaced) and return its URL.

    A table whose declared types are all None is created with no declared types
    (``CREATE TABLE t ("a", "b")``), the others with theirs. Values go in as Python objects:
    integers stay integers, timestamps and dates are written as SQLAlchemy writes them
    (``2024-05-01 10:00:00``, ``2024-05-01``), booleans as 0/1.
    """
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for table, frame in data.tables.items():
                declared = data.declared[table]
                columns = ", ".join(
                    _quoted(c) + (f" {declared[c]}" if declared[c] is not None else "")
                    for c in frame.columns
                )
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_quoted(table)}")
                conn.exec_driver_sql(f"CREATE TABLE {_quoted(table)} ({columns})")
                marks = ", ".join("?" for _ in frame.columns)
                rows = [
                    tuple(_sqlite_value(value) for value in row)
                    for row in frame.itertuples(index=False, name=None)
                ]
                conn.exec_driver_sql(f"INSERT INTO {_quoted(table)} VALUES ({marks})", rows)
    finally:
        engine.dispose()
    return url


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_value(value: object) -> object:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


# ============================================================================ scoring


@dataclass(frozen=True)
class EntityScore:
    """One entity type over the columns: a column predicted with it that holds it is a
    true positive."""

    entity: str
    tp: int
    fp: int
    fn: int

    @property
    def personal(self) -> bool:
        return self.entity in PERSONAL

    @property
    def precision(self) -> float:
        """NaN when no column was predicted with it."""
        return _share(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """NaN when no column holds it."""
        return _share(self.tp, self.tp + self.fn)


Error = tuple[Key, frozenset[str], frozenset[str]]
"""A column whose predicted entities differ from its truth: (key, truth, predicted)."""


@dataclass
class Score:
    """A tool's labels against the truth, per entity type and per column."""

    columns: int
    per_entity: dict[str, EntityScore]
    """Every entity type of PERSONAL and NOT_PERSONAL, and any other one predicted."""
    personal_tp: int
    personal_fp: int
    personal_fn: int
    typed_right: int
    """Columns truly and predicted personal whose predicted personal types are the true ones."""
    typed_both: int
    """Columns truly and predicted personal."""
    errors: list[Error]
    unscored: list[Key] = field(default_factory=list)
    """Predicted columns the truth does not know (left out of every figure)."""

    @property
    def tp(self) -> int:
        """(column, entity) pairs predicted and true, over every entity type."""
        return sum(e.tp for e in self.per_entity.values())

    @property
    def fp(self) -> int:
        return sum(e.fp for e in self.per_entity.values())

    @property
    def fn(self) -> int:
        return sum(e.fn for e in self.per_entity.values())

    @property
    def precision(self) -> float:
        """Over (column, entity) pairs: the share of predicted labels that are true."""
        return _share(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """Over (column, entity) pairs: the share of true labels that were predicted."""
        return _share(self.tp, self.tp + self.fn)

    @property
    def personal_precision(self) -> float:
        return _share(self.personal_tp, self.personal_tp + self.personal_fp)

    @property
    def personal_recall(self) -> float:
        return _share(self.personal_tp, self.personal_tp + self.personal_fn)

    @property
    def type_accuracy(self) -> float:
        return _share(self.typed_right, self.typed_both)

    def figures(self) -> dict[str, object]:
        """The figures as plain data (for a results file)."""
        return {
            "columns": self.columns,
            "personal_precision": self.personal_precision,
            "personal_recall": self.personal_recall,
            "type_accuracy": self.type_accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "per_entity": {
                e.entity: {
                    "tp": e.tp,
                    "fp": e.fp,
                    "fn": e.fn,
                    "precision": e.precision,
                    "recall": e.recall,
                }
                for e in self.per_entity.values()
            },
            "errors": [
                {"column": f"{t}.{c}", "truth": sorted(truth), "predicted": sorted(predicted)}
                for (t, c), truth, predicted in self.errors
            ],
        }

    def markdown(self) -> str:
        """Three tables: the column figures (then the labels' precision and recall over
        (column, entity) pairs), per entity, and the columns labelled wrong."""
        headers = ("Columns", "Personal precision", "Personal recall", "Entity type right")
        summary = _table(
            (*headers, "Label precision", "Label recall"),
            [
                (
                    self.columns,
                    _fmt(self.personal_precision),
                    _fmt(self.personal_recall),
                    f"{_fmt(self.type_accuracy)} ({self.typed_right}/{self.typed_both})",
                    _fmt(self.precision),
                    _fmt(self.recall),
                )
            ],
        )
        per_entity = _table(
            ("Entity", "Personal", "Columns holding it", "TP", "FP", "FN", "Precision", "Recall"),
            [
                (
                    e.entity,
                    "yes" if e.personal else "no",
                    e.tp + e.fn,
                    e.tp,
                    e.fp,
                    e.fn,
                    _fmt(e.precision),
                    _fmt(e.recall),
                )
                for e in self.per_entity.values()
            ],
        )
        errors = (
            _table(
                ("Column", "Truth", "Predicted"),
                [
                    (f"{t}.{c}", _names(truth), _names(predicted))
                    for (t, c), truth, predicted in self.errors
                ],
            )
            if self.errors
            else "No column labelled wrong."
        )
        parts = [summary, per_entity, errors]
        if self.unscored:
            parts.append(
                "Not in the truth (left out): " + ", ".join(f"{t}.{c}" for t, c in self.unscored)
            )
        return "\n\n".join(parts)


def score(predicted: Mapping[Key, Iterable[str]], truth: Mapping[Key, frozenset[str]]) -> Score:
    """Compare a tool's labels with the truth; a column missing from ``predicted`` counts as
    predicted empty. A column is personal when its entity set meets ``PERSONAL``."""
    said = {key: frozenset(entities) for key, entities in predicted.items()}
    entities = set(PERSONAL | NOT_PERSONAL).union(*truth.values(), *said.values())
    counts = {entity: [0, 0, 0] for entity in entities}
    p_tp = p_fp = p_fn = right = both = 0
    errors: list[Error] = []
    for key in sorted(truth):
        true, guess = truth[key], said.get(key, frozenset())
        for entity in true & guess:
            counts[entity][0] += 1
        for entity in guess - true:
            counts[entity][1] += 1
        for entity in true - guess:
            counts[entity][2] += 1
        true_personal, guess_personal = true & PERSONAL, guess & PERSONAL
        if true_personal and guess_personal:
            p_tp += 1
            both += 1
            right += true_personal == guess_personal
        elif guess_personal:
            p_fp += 1
        elif true_personal:
            p_fn += 1
        if true != guess:
            errors.append((key, true, guess))
    order = sorted(entities, key=lambda e: (e not in PERSONAL, e not in NOT_PERSONAL, e))
    return Score(
        columns=len(truth),
        per_entity={e: EntityScore(e, *counts[e]) for e in order},
        personal_tp=p_tp,
        personal_fp=p_fp,
        personal_fn=p_fn,
        typed_right=right,
        typed_both=both,
        errors=errors,
        unscored=sorted(set(said) - set(truth)),
    )


def _share(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _names(entities: frozenset[str]) -> str:
    return ", ".join(sorted(entities)) or "(none)"


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; a ``|`` in a cell cannot split it (the set imports nothing of
    Tenure's, so not the reports' helper)."""

    def line(cells: Sequence[object]) -> str:
        return (
            "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
        )

    return "\n".join(
        [
            line(headers),
            "| " + " | ".join("---" for _ in headers) + " |",
            *(line(row) for row in rows),
        ]
    )


# ============================================================================ description


def describe(data: IndependentSet) -> str:
    """The set in Markdown: per table its rows and whether it declares types, then per
    column its declared type, how its name reads, its truth and what it is."""
    parts: list[str] = []
    for table, frame in data.tables.items():
        typed = any(t is not None for t in data.declared[table].values())
        parts.append(
            f"- **{table}** ({len(frame)} rows, {len(frame.columns)} columns, "
            f"{'declared types' if typed else 'no declared types'})"
        )
        rows = []
        for column in frame.columns:
            key = (table, column)
            nulls = frame[column].isna().mean() if len(frame) else 0.0
            rows.append(
                (
                    f"`{column}`",
                    data.declared[table][column] or "—",
                    data.naming.get(key, ""),
                    _names(data.truth[key]),
                    data.about[key] + (f" ({nulls:.0%} NULL)" if nulls >= 0.5 else ""),
                )
            )
        table_text = _table(("Column", "Declared", "Name", "Truth", "What it is"), rows)
        parts.append("\n".join("  " + line for line in table_text.splitlines()))
    return "\n\n".join(parts)
