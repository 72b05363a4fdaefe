"""The package a person receives for an access or portability request.

The request engine collects, for each bound dataset, the person's records and when each
will be destroyed or anonymized under the policy; this module renders them into one zip:

- ``package.json``, checked against the published schema
  ``flows/schemas/access_package.schema.json`` before anything is written;
- ``<dataset>.csv`` per dataset: UTF-8 with a header, one row per record, then the columns
  ``destroyed_on``, ``destruction``, ``until_event`` and ``held``. A text cell beginning
  with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with ``'`` so that a
  spreadsheet does not run it as a formula (numbers are written as they are; the page and
  ``package.json`` keep every value exact);
- ``index.html``: a self-contained page (no script, no external style, font or image; a
  Content-Security-Policy forbids them) in the person's language, French or English, every
  value escaped.

A portability package (Quebec private-sector act s. 27 para. 3, GDPR art. 20) holds only
the columns the person provided; the columns and datasets left out are counted and named,
never dropped silently. The same package always gives the same bytes (fixed entry order,
timestamps and permissions, sorted JSON keys), so the hash the register keeps identifies it.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from connectors.values import plain
from flows.json_schemas import first_error
from flows.pages import page_environment, write_whole

Language = Literal["fr", "en"]
Destruction = Literal["deleted", "anonymized", "aggregated then deleted"]

#: What the zip's package.json says it is (the schema's ``format`` and ``version``).
FORMAT = "tenure-access-package"
VERSION = 1

#: The CSV columns added after a dataset's own, in this order.
FATE_COLUMNS = ("destroyed_on", "destruction", "until_event", "held")

#: First characters a spreadsheet reads as the start of a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: The zip's entries carry this time when the package's own time is before 1980 (the
#: earliest a zip entry can hold).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class RecordEntry:
    """One record of the person, and its fate under the policy."""

    values: dict[str, Any]
    """Column to value, as the store gave it (dates, decimals and bytes are converted)."""
    destroyed_on: date | None
    """The day it will be destroyed or anonymized under the policy."""
    destruction: str
    """``deleted``, ``anonymized`` or ``aggregated then deleted``."""
    until_event: str | None
    """Set when ``destroyed_on`` is None: how long it is kept, as a phrase completing
    "Kept …" in the package's language ("while the account is open", "tant que le compte
    est ouvert")."""
    held: str | None = None
    """The reason of a legal hold keeping it past that date, if any."""


@dataclass(frozen=True)
class DatasetSection:
    """One bound dataset: what it is, why it is kept, and the person's records in it."""

    dataset: str
    description: str
    store: str
    """The store's name in the policy (never its URL)."""
    source: str
    """Where the records were read: "crm: customers", "mail: inbox", "weblogs: access_log"."""
    purpose: str
    purpose_description: str
    legal_basis: str
    retention: str
    """The retention period as text: "2 years after the account is closed"."""
    categories: dict[str, list[str]]
    provided: dict[str, bool]
    """Column to whether the person provided it (portability keeps only those)."""
    records: list[RecordEntry]
    failed: str | None = None
    undisclosed: tuple[str, ...] = ()
    """Columns left out for everyone (the policy's ``disclose: false``: a password hash):
    named in the package, never shown."""
    """Why the store could not be read (the package says so)."""


@dataclass(frozen=True)
class AccessPackage:
    """Everything one person receives for one access or portability request."""

    request_id: str
    kind: Literal["access", "portability"]
    generated_at: datetime
    """When the package was made; with a time zone (it is shown in that zone)."""
    language: Literal["fr", "en"]
    organisation: str
    person: dict[str, list[str]]
    """The identifiers used, e.g. ``{"customer_id": ["17"], "email": [...]}``."""
    sections: list[DatasetSection]


@dataclass(frozen=True)
class PackageFile:
    """A written package: what the register keeps of it (never its content)."""

    path: Path
    sha256: str
    counts: dict[str, int]
    """Records per dataset in the package (0 for a store that could not be read)."""


class PackageError(ValueError):
    """A package that cannot be written as given (a bug of its caller: nothing written)."""


# --- values -----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """``plain``, with a decimal NaN (quiet or signalling) as None."""
    if isinstance(value, Decimal):
        return None if value.is_nan() else value
    return plain(value)


def json_value(value: Any) -> Any:
    """A stored value as JSON: dates and timestamps as ISO 8601 text, a decimal as its exact
    text, bytes as ``{"base64": ...}``, a non-finite number as text; a JSON column's
    lists and objects keep their shape."""
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    value = _plain(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    return str(value)


def neutralise(text: str) -> str:
    """A CSV cell's text, prefixed with ``'`` when a spreadsheet would read a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_cell(value: Any) -> str:
    """How a value is written into a CSV cell: empty for null, a number as it is, text
    (dates, decimals' text, base64 of bytes, a JSON column's JSON) neutralised against
    formula injection."""
    if isinstance(value, Mapping | list | tuple):
        return neutralise(json.dumps(json_value(value), sort_keys=True, ensure_ascii=False))
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "base64:" + base64.b64encode(bytes(value)).decode("ascii")
    return neutralise(str(json_value(value)))


# --- what a package holds ---------------------------------------------------------------------


def _columns(section: DatasetSection) -> list[str]:
    """The records' columns in the order the store gave them, then any column of the
    policy that no record holds."""
    seen: dict[str, None] = {}
    for record in section.records:
        seen.update(dict.fromkeys(record.values))
    seen.update(dict.fromkeys(section.categories))
    return list(seen)


def portable(section: DatasetSection) -> DatasetSection:
    """The section restricted to the columns the person provided."""
    keep = {column for column, provided in section.provided.items() if provided}
    return replace(
        section,
        categories={c: v for c, v in section.categories.items() if c in keep},
        provided={c: v for c, v in section.provided.items() if c in keep},
        records=[
            replace(record, values={c: v for c, v in record.values.items() if c in keep})
            for record in section.records
        ],
    )


@dataclass(frozen=True)
class _Part:
    """A section as the package shows it, with what portability left out."""

    section: DatasetSection
    columns: list[str]
    withheld: list[str]


def _parts(package: AccessPackage) -> tuple[list[_Part], list[DatasetSection]]:
    """The sections the package holds, and (portability) those holding nothing provided."""
    names = [section.dataset for section in package.sections]
    for name in names:
        if not _DATASET_NAME.fullmatch(name):
            raise PackageError(f"dataset name {name!r} cannot name a file of the package")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise PackageError(f"datasets given twice: {', '.join(duplicated)}")
    parts: list[_Part] = []
    left_out: list[DatasetSection] = []
    for section in package.sections:
        every = [c for c in _columns(section) if c not in section.undisclosed]
        if package.kind == "access":
            parts.append(_Part(section, every, []))
            continue
        kept = portable(section)
        columns = [column for column in every if kept.provided.get(column, False)]
        if not columns and section.failed is None:
            left_out.append(section)
            continue
        withheld = [column for column in every if column not in columns]
        parts.append(_Part(kept, columns, withheld))
    return parts, left_out


def _record(record: RecordEntry, columns: list[str]) -> dict[str, Any]:
    return {
        "values": {column: json_value(record.values.get(column)) for column in columns},
        "destroyed_on": None if record.destroyed_on is None else record.destroyed_on.isoformat(),
        "destruction": record.destruction,
        "until_event": record.until_event,
        "held": record.held,
    }


def document(package: AccessPackage) -> dict[str, Any]:
    """``package.json``'s content (checked against the schema by ``write_package``)."""
    parts, left_out = _parts(package)
    return {
        "format": FORMAT,
        "version": VERSION,
        "request_id": package.request_id,
        "kind": package.kind,
        "generated_at": _aware(package.generated_at).isoformat(),
        "language": package.language,
        "organisation": package.organisation,
        "person": {name: list(values) for name, values in package.person.items()},
        "derived_data_included": package.kind == "access",
        "datasets": [
            {
                "dataset": part.section.dataset,
                "description": part.section.description,
                "store": part.section.store,
                "source": part.section.source,
                "purpose": part.section.purpose,
                "purpose_description": part.section.purpose_description,
                "legal_basis": part.section.legal_basis,
                "retention": part.section.retention,
                "categories": {c: list(v) for c, v in part.section.categories.items()},
                "provided": dict(part.section.provided),
                "columns": part.columns,
                "withheld_columns": part.withheld,
                "undisclosed_columns": list(part.section.undisclosed),
                "csv": f"{part.section.dataset}.csv",
                "failed": part.section.failed,
                "record_count": len(part.section.records),
                "records": [_record(record, part.columns) for record in part.section.records],
            }
            for part in parts
        ],
        "not_included": [
            {
                "dataset": section.dataset,
                "description": section.description,
                "records": len(section.records),
            }
            for section in left_out
        ],
    }


def check(content: Mapping[str, Any]) -> None:
    """Raise ``PackageError`` naming the first place where ``content`` breaks the schema."""
    error = first_error("access_package.schema.json", content)
    if error is not None:
        where, message = error
        raise PackageError(f"package.json invalid at {where or '(package)'}: {message}")


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PackageError("generated_at needs a time zone (a package says when it was made)")
    return moment


# --- CSV --------------------------------------------------------------------------------------


def render_csv(part: _Part) -> str:
    """One dataset's CSV: a header, one row per record (RFC 4180, CRLF line ends)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralise(column) for column in [*part.columns, *FATE_COLUMNS]])
    for record in part.section.records:
        fate = [record.destroyed_on, record.destruction, record.until_event, record.held]
        writer.writerow(
            [csv_cell(record.values.get(column)) for column in part.columns]
            + [csv_cell(value) for value in fate]
        )
    return out.getvalue()


# --- the page ---------------------------------------------------------------------------------

_MONTHS_FR = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
              "septembre", "octobre", "novembre", "décembre")  # fmt: skip
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")  # fmt: skip
_MONTHS: dict[Language, tuple[str, ...]] = {"fr": _MONTHS_FR, "en": _MONTHS_EN}

#: Every text of the page, in both languages (the same keys: a test holds them equal).
LABELS: dict[Language, dict[str, str]] = {
    "fr": {
        "title_access": "Vos renseignements personnels",
        "title_portability": "Vos renseignements personnels : copie portable",
        "request_access": "Demande d'accès",
        "request_portability": "Demande de portabilité",
        "organisation": "Organisation",
        "request": "Demande",
        "generated": "Produit le",
        "intro": "Ce dossier contient chaque renseignement personnel vous concernant que "
        "nous avons trouvé dans nos systèmes, regroupé par ensemble de données : ce qu'il "
        "contient, pourquoi il est conservé (finalité et fondement juridique), les catégories "
        "de renseignements, leur source et, pour chaque enregistrement, la date à laquelle il "
        "sera détruit ou anonymisé.",
        "portability_note": "Copie portable : seuls les renseignements que vous nous avez "
        "fournis y figurent. Les données dérivées (statistiques d'utilisation, calculs, "
        "déductions) ne sont pas incluses.",
        "identifiers": "Identifiants utilisés pour vous retrouver",
        "contents": "Sommaire",
        "dataset": "Ensemble de données",
        "source": "Source",
        "records": "Enregistrements",
        "unread": "n'a pas pu être lu",
        "what": "Ce que c'est",
        "purpose": "Finalité",
        "legal_basis": "Fondement juridique",
        "retention": "Durée de conservation",
        "categories": "Catégories de renseignements",
        "column": "Champ",
        "value": "Valeur",
        "record": "Enregistrement {n} sur {total}",
        "kept_until": "Conservé jusqu'au {date}, puis {destruction}.",
        "kept_while": "Conservé {until}, puis {destruction}.",
        "held": "Conservé au-delà de cette date en raison d'une suspension légale de la "
        "destruction : {reason}.",
        "deleted": "supprimé",
        "anonymized": "anonymisé",
        "aggregated then deleted": "intégré à des statistiques anonymes, puis supprimé",
        "failed": "Cette source n'a pas pu être lue : ses renseignements ne figurent pas dans "
        "ce dossier, et la demande reste ouverte pour elle. Motif : {reason}",
        "no_records": "Aucun enregistrement vous concernant.",
        "withheld": "Non inclus, car vous ne les avez pas fournis ({n}) : {columns}.",
        "undisclosed": "Non montrés, car les remettre affaiblirait la sécurité du compte "
        "({n}) : {columns}.",
        "not_included": "Ensembles non inclus dans la copie portable",
        "not_included_note": "Ces ensembles ne contiennent que des données dérivées, aucun "
        "renseignement que vous avez fourni.",
        "not_included_records": "{n} enregistrement(s) non inclus",
        "files": "Fichiers de ce dossier",
        "files_json": "package.json : les mêmes renseignements en JSON, selon le schéma "
        "publié access_package.schema.json ; chaque valeur y est exacte.",
        "files_csv": "Un fichier CSV par ensemble de données (UTF-8, avec une ligne "
        "d'en-tête), suivi des colonnes destroyed_on, destruction, until_event et held.",
        "csv_formula": "Dans les fichiers CSV, un texte qui commence par =, +, -, @, une "
        "tabulation ou un retour chariot est précédé d'une apostrophe (') afin qu'un tableur "
        "ne l'exécute pas comme une formule.",
        "empty": "(vide)",
        "yes": "oui",
        "no": "non",
        "binary": "(données binaires, {n} octets : voir package.json)",
        "at": "à",
        "consent": "Consentement",
        "contract": "Exécution d'un contrat",
        "legal_obligation": "Obligation légale",
        "legitimate_interest": "Intérêt légitime",
    },
    "en": {
        "title_access": "Your personal information",
        "title_portability": "Your personal information: portable copy",
        "request_access": "Access request",
        "request_portability": "Portability request",
        "organisation": "Organisation",
        "request": "Request",
        "generated": "Generated on",
        "intro": "This package holds every piece of personal information about you that we "
        "found in our systems, grouped by dataset: what it is, why it is kept (purpose and "
        "legal basis), the categories of information, where it comes from and, for each "
        "record, the date on which it will be destroyed or anonymized.",
        "portability_note": "Portable copy: only the information you provided to us is "
        "included. Derived data (usage statistics, calculations, inferences) is not included.",
        "identifiers": "Identifiers used to find you",
        "contents": "Contents",
        "dataset": "Dataset",
        "source": "Source",
        "records": "Records",
        "unread": "could not be read",
        "what": "What it is",
        "purpose": "Purpose",
        "legal_basis": "Legal basis",
        "retention": "Retention",
        "categories": "Categories of information",
        "column": "Field",
        "value": "Value",
        "record": "Record {n} of {total}",
        "kept_until": "Kept until {date}, then {destruction}.",
        "kept_while": "Kept {until}, then {destruction}.",
        "held": "Kept past that date under a legal hold: {reason}.",
        "deleted": "deleted",
        "anonymized": "anonymized",
        "aggregated then deleted": "added to anonymous statistics, then deleted",
        "failed": "This source could not be read: its information is not in this package, "
        "and the request stays open for it. Reason: {reason}",
        "no_records": "No record about you.",
        "withheld": "Not included, as you did not provide them ({n}): {columns}.",
        "undisclosed": "Not shown, as handing them out would weaken the account's security "
        "({n}): {columns}.",
        "not_included": "Datasets not in the portable copy",
        "not_included_note": "These datasets hold only derived data, nothing you provided.",
        "not_included_records": "{n} record(s) not included",
        "files": "Files in this package",
        "files_json": "package.json: the same information as JSON, following the published "
        "schema access_package.schema.json; every value in it is exact.",
        "files_csv": "One CSV file per dataset (UTF-8, with a header line), followed by the "
        "columns destroyed_on, destruction, until_event and held.",
        "csv_formula": "In the CSV files, text beginning with =, +, -, @, a tab or a carriage "
        "return is preceded by an apostrophe (') so that a spreadsheet does not run it as a "
        "formula.",
        "empty": "(empty)",
        "yes": "yes",
        "no": "no",
        "binary": "(binary data, {n} bytes: see package.json)",
        "at": "at",
        "consent": "Consent",
        "contract": "Performance of a contract",
        "legal_obligation": "Legal obligation",
        "legitimate_interest": "Legitimate interest",
    },
}


def format_date(day: date, language: Language) -> str:
    """A day as written in the language: ``1er mars 2027``, ``March 1, 2027``."""
    month = _MONTHS[language][day.month - 1]
    if language == "fr":
        return f"{day.day}{'er' if day.day == 1 else ''} {month} {day.year}"
    return f"{month} {day.day}, {day.year}"


def _format_time(moment: time, language: Language) -> str:
    if language == "fr":
        shown = f"{moment.hour} h {moment.minute:02d}"
        return shown + (f" min {moment.second:02d} s" if moment.second else "")
    shown = f"{moment.hour:02d}:{moment.minute:02d}"
    return shown + (f":{moment.second:02d}" if moment.second else "")


def _format_offset(moment: datetime | time) -> str:
    offset = moment.utcoffset()
    if offset is None:
        return ""
    if not offset:
        return " UTC"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "\u2212"
    hours, minutes = divmod(abs(minutes), 60)
    return f" (UTC{sign}{hours:02d}:{minutes:02d})"


def format_moment(moment: datetime, language: Language) -> str:
    """A timestamp as written in the language, with its UTC offset when it has one."""
    when = f"{format_date(moment.date(), language)} {LABELS[language]['at']} "
    return when + _format_time(moment.timetz(), language) + _format_offset(moment)


def _shown(value: Any, language: Language) -> str:
    """A value as the page shows it (the template escapes it)."""
    labels = LABELS[language]
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(json_value(value), sort_keys=True, ensure_ascii=False)
    value = _plain(value)
    if value is None:
        return labels["empty"]
    if isinstance(value, bool):
        return labels["yes"] if value else labels["no"]
    if isinstance(value, datetime):
        return format_moment(value, language)
    if isinstance(value, date):
        return format_date(value, language)
    if isinstance(value, time):
        return _format_time(value, language) + _format_offset(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return labels["binary"].format(n=len(bytes(value)))
    return str(json_value(value))


def _fate(record: RecordEntry, language: Language) -> list[str]:
    labels = LABELS[language]
    destruction = labels.get(record.destruction, record.destruction)
    if record.destroyed_on is not None:
        date_text = format_date(record.destroyed_on, language)
        lines = [labels["kept_until"].format(date=date_text, destruction=destruction)]
    else:
        until = record.until_event or ""
        lines = [labels["kept_while"].format(until=until, destruction=destruction)]
    if record.held:
        lines.append(labels["held"].format(reason=record.held.rstrip(".")))
    return lines


def _page_section(part: _Part, language: Language) -> dict[str, Any]:
    labels = LABELS[language]
    section = part.section
    total = len(section.records)
    return {
        "id": f"dataset-{section.dataset}",
        "dataset": section.dataset,
        "description": section.description,
        "source": section.source,
        "purpose": section.purpose,
        "purpose_description": section.purpose_description,
        "legal_basis": labels.get(section.legal_basis, section.legal_basis),
        "retention": section.retention,
        "categories": [
            (column, ", ".join(categories)) for column, categories in section.categories.items()
        ],
        "failed": None
        if section.failed is None
        else labels["failed"].format(reason=section.failed),
        "withheld": labels["withheld"].format(
            n=len(part.withheld), columns=", ".join(part.withheld)
        )
        if part.withheld
        else None,
        "undisclosed": labels["undisclosed"].format(
            n=len(section.undisclosed), columns=", ".join(section.undisclosed)
        )
        if section.undisclosed
        else None,
        "count": total,
        "records": [
            {
                "title": labels["record"].format(n=number, total=total),
                "fields": [
                    (column, _shown(record.values.get(column), language)) for column in part.columns
                ],
                "fate": _fate(record, language),
            }
            for number, record in enumerate(section.records, start=1)
        ],
    }


def render_html(package: AccessPackage) -> str:
    """``index.html``: the package as a page in the person's language."""
    parts, left_out = _parts(package)
    language: Language = package.language
    labels = LABELS[language]
    return (
        page_environment("flows.rights")
        .get_template("index.html.j2")
        .render(
            language=language,
            L=labels,
            title=labels[f"title_{package.kind}"],
            request_kind=labels[f"request_{package.kind}"],
            portability=package.kind == "portability",
            organisation=package.organisation,
            request_id=package.request_id,
            generated=format_moment(_aware(package.generated_at), language),
            person=[(name, ", ".join(values)) for name, values in package.person.items()],
            sections=[_page_section(part, language) for part in parts],
            left_out=[
                (
                    section.dataset,
                    section.description,
                    labels["not_included_records"].format(n=len(section.records)),
                )
                for section in left_out
            ],
        )
    )


# --- the zip ----------------------------------------------------------------------------------


def _entries(package: AccessPackage) -> Iterable[tuple[str, bytes]]:
    content = document(package)
    check(content)
    yield (
        "package.json",
        (json.dumps(content, sort_keys=True, ensure_ascii=False, indent=2) + "\n").encode(),
    )
    yield "index.html", render_html(package).encode()
    parts, _ = _parts(package)
    for part in parts:
        yield f"{part.section.dataset}.csv", render_csv(part).encode()


def _zip_time(moment: datetime) -> tuple[int, int, int, int, int, int]:
    utc = moment.astimezone(UTC)
    stamp = (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)
    return max(stamp, _ZIP_EPOCH)


def package_bytes(package: AccessPackage) -> bytes:
    """The zip's bytes: the same package always gives the same bytes."""
    stamp = _zip_time(_aware(package.generated_at))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in _entries(package):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so that the permissions below are read
            info.external_attr = 0o100644 << 16
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def write_package(package: AccessPackage, out: Path) -> PackageFile:
    """Write the package's zip to ``out`` (readable by its owner only, replaced whole or not
    at all) and return its hash and counts."""
    data = package_bytes(package)
    write_whole(data, out, 0o600)
    parts, _ = _parts(package)
    counts = {part.section.dataset: len(part.section.records) for part in parts}
    return PackageFile(path=out, sha256=hashlib.sha256(data).hexdigest(), counts=counts)
