"""``tenure report``: one self-contained HTML page for the privacy officer and analysts.

What was deleted, anonymized, aggregated and held, per purpose and month; what expires
in each of the next twelve months; coverage, re-identification risk and legal holds;
the released statistics and their disclosure; the audit chain's head and whether it
verifies (``flows.reports.overview`` gathers them). In French or English.

The page needs nothing at view time: its style is inline, its charts are inline SVG
rendered here by Vega-Lite (``vl-convert-python``, offline), it has no script, and a
Content-Security-Policy forbids fetching anything. Every value the template shows is
escaped (autoescape); the charts are the converter's SVG. It holds counts and the names
of datasets, columns, purposes, holds and rollups, never a personal value.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from markupsafe import Markup
from sqlalchemy import Engine

from connectors.protocol import Connector
from flows.pages import page_environment, write_whole
from flows.reports.overview import (
    KINDS,
    Activity,
    AuditView,
    CoverageView,
    Forecast,
    HoldView,
    ReleasedRollup,
    RiskView,
    activity,
    audit_view,
    coverage_view,
    forecast,
    holds_view,
    released,
    risk_view,
)
from flows.rights.package import format_date, format_moment
from flows.run.types import RunContext, RunReport, first_line
from flows.state.location import StateLocation
from flows.state.tables import utc
from flows.stores import opened_stores
from retention_rules.clock import PolicyClock
from retention_rules.loader import LoadedPolicy

Language = Literal["fr", "en"]
#: The report's file name, beside the state database by default.
REPORT_NAME = "tenure-report.html"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    """Everything the page shows, gathered once; rendered in either language."""

    policy: str
    policy_sha256: str
    timezone: str
    generated_at: datetime
    state: str
    """Where the state database is, its URL masked."""
    activity: Activity
    forecast: Forecast
    coverage: CoverageView
    risk: RiskView
    holds: list[HoldView]
    releases: list[ReleasedRollup]
    audit: AuditView
    stores_unread: tuple[str, ...] = ()
    """One line per store that could not be opened: its counts are missing, said so."""
    seconds: float = 0.0


def gather(
    loaded: LoadedPolicy,
    state: Engine,
    connectors: Mapping[str, Connector],
    *,
    state_shown: str,
    now: datetime | None = None,
    stores_unread: tuple[str, ...] = (),
) -> Report:
    """Read the state database and count in the stores (``flows.reports.overview``)."""
    started = time.perf_counter()
    policy = loaded.policy
    clock = PolicyClock.at(policy.timezone, now)
    expiring = forecast(policy, connectors, clock)
    return Report(
        policy=policy.name,
        policy_sha256=loaded.sha256,
        timezone=policy.timezone,
        generated_at=clock.local_now(),
        state=state_shown,
        activity=activity(state, policy),
        forecast=expiring,
        coverage=coverage_view(policy, connectors, state),
        risk=risk_view(policy, connectors, state),
        holds=holds_view(policy, clock, expiring.held_by),
        releases=released(state, policy),
        audit=audit_view(state, connectors, [d.name for d in policy.datasets]),
        stores_unread=stores_unread,
        seconds=time.perf_counter() - started,
    )


def report_language(loaded: LoadedPolicy, given: str | None) -> Language:
    """``--lang``, else the policy's ``language:``, else that of its requests."""
    chosen = given or loaded.policy.language or loaded.policy.requests.language
    return "en" if chosen == "en" else "fr"


def default_path(loaded: LoadedPolicy, location: StateLocation) -> Path:
    """Beside the state database when it is a SQLite file, else where ``tenure scan``
    writes its inventory (beside the policy's SQLite store, else beside the policy)."""
    from flows.scan_runner import default_output_dir

    path = location.sqlite_path
    folder = path.absolute().parent if path is not None else default_output_dir(loaded)
    return folder / REPORT_NAME


def make_report(
    loaded: LoadedPolicy,
    state: Engine,
    location: StateLocation,
    *,
    language: Language,
    out: Path | None = None,
    now: datetime | None = None,
    connectors: Mapping[str, Connector] | None = None,
) -> tuple[Path, Report]:
    """Gather, render and write the report (replaced whole or not at all); the stores
    are opened read-only unless ``connectors`` are given (a run's own)."""
    target = out or default_path(loaded, location)
    if connectors is not None:
        report = gather(loaded, state, connectors, state_shown=location.shown, now=now)
    else:
        with opened_stores(loaded.policy) as (opened, issues):
            unread = tuple(str(issue) for issue in loaded.locate(issues))
            broken = {issue.loc[1] for issue in issues if issue.loc[:1] == ("stores",)}
            usable = {name: c for name, c in opened.items() if name not in broken}
            report = gather(
                loaded, state, usable, state_shown=location.shown, now=now, stores_unread=unread
            )
    return write_html(render(report, language), target), report


def report_after_run(context: RunContext, run: RunReport) -> Path | None:
    """After a real run, its report beside the state database, counted with the run's
    own stores at the run's instant; None for a dry run. A report that cannot be
    written is logged and leaves the run's outcome alone: the run is done."""
    if run.dry_run or context.state is None or context.location is None:
        return None
    loaded = context.loaded
    try:
        path, _ = make_report(
            loaded,
            context.state,
            context.location,
            language=report_language(loaded, None),
            now=context.options.now,
            connectors=context.connectors,
        )
    except Exception as exc:  # the run's work stands; the report says nothing wrong
        _log.warning("the HTML report was not written: %s", first_line(exc))
        return None
    return path


def write_html(page: str, out: Path) -> Path:
    """Write ``page`` to ``out``, replaced whole: a reader sees the old page or the new one."""
    write_whole(page.encode(), out, 0o644)
    return out


# --- words -----------------------------------------------------------------------------

LABELS: dict[Language, dict[str, str]] = {
    "fr": {
        "title": "Rapport de conservation",
        "policy": "Politique",
        "policy_sha256": "Empreinte SHA-256 du fichier",
        "generated": "Produit le",
        "state": "Base d'état",
        "took": "Produit en {s} s",
        "unread": "Magasin non lu (ses comptes manquent) : {line}",
        "contents": "Sommaire",
        "activity": "Ce qui a été fait, par finalité et par mois",
        "activity_note": (
            "Lignes traitées par les exécutions réelles, d'après le registre des lots de la "
            "base d'état, par mois du début de l'exécution (fuseau {zone}). « Retenues » : le "
            "plus grand nombre de lignes échues qu'une exécution du mois a gardées sous "
            "suspension légale, d'après le journal d'audit ; c'est un état et non un flux : "
            "une ligne retenue tout le mois compte une fois, et de nouveau chaque mois où "
            "elle le reste."
        ),
        "activity_none": "Aucune exécution réelle n'a encore rien traité.",
        "request_writes": (
            "{n} lignes réécrites par des demandes de personnes (rectifications, retraits "
            "de consentement) ne sont pas comptées ici."
        ),
        "unbound": "Lots de jeux de données que la politique ne lie plus (non comptés) : {names}.",
        "deleted": "Supprimées",
        "anonymized": "Anonymisées",
        "aggregated": "Agrégées",
        "held": "Retenues",
        "purpose": "Finalité",
        "month": "Mois",
        "rows": "Lignes",
        "kind": "Action",
        "dataset": "Jeu de données",
        "forecast": "Ce qui arrive à échéance",
        "forecast_note": (
            "Par jeu de données, les lignes qui atteignent leur date limite dans chacun des "
            "douze prochains mois : la planification exécutée à la fin de chaque mois "
            "(minuit le 1er du mois suivant, fuseau {zone}), comptée dans les magasins. Les "
            "lignes d'un mois sont celles sélectionnées à sa fin moins celles sélectionnées "
            "à la fin du mois précédent (maintenant, pour le mois en cours). Une ligne sous "
            "suspension légale active n'arrive pas à échéance : elle est comptée le mois où "
            "la suspension prend fin. Compté sur les magasins tels qu'ils sont : les lignes "
            "écrites et les événements survenus plus tard ne sont pas prévus. « Échues "
            "maintenant » : déjà passées leur date limite ; la prochaine exécution les traite."
        ),
        "forecast_at": "Au {when}.",
        "overdue": "Échues maintenant",
        "total12": "Total sur 12 mois",
        "held_now": "Retenues aujourd'hui",
        "not_computed": "non calculé : {reason}",
        "forecast_none": "Aucune ligne n'arrive à échéance dans les douze prochains mois.",
        "oversight": "Couverture, risque et suspensions légales",
        "coverage": "Couverture (dernier balayage)",
        "scanned_at": "Dernier balayage",
        "never": "jamais",
        "tables": "Tables balayées",
        "columns": "Colonnes",
        "personal": "Colonnes de renseignements personnels",
        "bound": "Colonnes liées à un jeu de données",
        "exempt": "Colonnes exemptées",
        "gaps": "Écarts",
        "gate_passed": "Le contrôle de couverture passe : aucun écart.",
        "not_scanned": "Jamais balayé : {stores}.",
        "risk": "Risque de réidentification par sortie",
        "output": "Sortie",
        "table": "table",
        "records": "Enregistrements",
        "individualization": "Individualisation",
        "correlation": "Corrélation",
        "inference": "Inférence",
        "verdict": "Verdict",
        "risk_none": "Aucune table anonymisée ni statistique publiée.",
        "risk_error": "{dataset} : risque non évalué : {reason}",
        "holds": "Suspensions légales",
        "hold": "Suspension",
        "reason": "Motif",
        "datasets": "Jeux de données",
        "selects": "Sélection",
        "expires": "Prend fin le",
        "status": "État",
        "active": "active",
        "lapsed": "levée",
        "held_rows": "Lignes échues retenues",
        "holds_none": "La politique ne déclare aucune suspension légale.",
        "releases": "Statistiques publiées",
        "releases_note": (
            "Par cumul : sa méthode de protection et ses paramètres, les périodes et les "
            "cellules publiées ; en confidentialité différentielle, le budget ε dépensé et "
            "restant par année."
        ),
        "rollup": "Cumul",
        "period": "Période",
        "method": "Méthode",
        "parameters": "Paramètres",
        "periods": "Périodes",
        "cells": "Cellules publiées",
        "withheld": "Masquées",
        "budget": "ε dépensé / restant",
        "released_at": "Dernière publication",
        "releases_none": "La politique ne garde aucune statistique.",
        "not_yet": "pas encore",
        "published": "publiées",
        "audit": "Journal d'audit",
        "entries": "Entrées",
        "head": "Tête de la chaîne",
        "verification": "Vérification",
        "intact": "intacte : la chaîne et chaque témoin concordent",
        "broken": "ÉCHEC : {n} problème(s)",
        "unverified": "non vérifiée",
        "head_note": (
            "Consignez la tête hors de la base d'état : tenure audit verify --head HASH "
            "montre ensuite qu'aucune entrée jusqu'à elle n'a été retirée."
        ),
        "chart": "Graphique : {title}",
        "suppression": "suppression des petites cellules",
        "differential_privacy": "confidentialité différentielle",
        "delete": "suppression",
        "anonymize": "anonymisation",
        "aggregate_then_delete": "agrégation puis suppression",
        "met": "atteint",
        "failed": "non atteint",
        "not assessed": "non évalué",
        "anonymized_verdict": "anonymisé",
        "de-identified": "dépersonnalisé",
        "pseudonymized": "pseudonymisé",
        "identifiable": "identifiable",
        "day": "jour",
        "week": "semaine",
        "quarter": "trimestre",
        "year": "année",
    },
    "en": {
        "title": "Retention report",
        "policy": "Policy",
        "policy_sha256": "Policy file SHA-256",
        "generated": "Generated on",
        "state": "State database",
        "took": "Made in {s} s",
        "unread": "Store not read (its counts are missing): {line}",
        "contents": "Contents",
        "activity": "What was done, by purpose and month",
        "activity_note": (
            "Rows processed by real runs, from the state database's ledger of committed "
            "chunks, by the month each run started ({zone}). Held: the most expired rows a "
            "run of the month kept under a legal hold, from the audit log; a count at a run, "
            "not a flow: a row held all month counts once in it, and again in every month "
            "it stays held."
        ),
        "activity_none": "No real run has processed anything yet.",
        "request_writes": (
            "{n} rows rewritten by people's requests (corrections, consent withdrawals) are "
            "not counted here."
        ),
        "unbound": "Chunks of datasets the policy no longer binds (not counted): {names}.",
        "deleted": "Deleted",
        "anonymized": "Anonymized",
        "aggregated": "Aggregated",
        "held": "Held",
        "purpose": "Purpose",
        "month": "Month",
        "rows": "Rows",
        "kind": "Action",
        "dataset": "Dataset",
        "forecast": "What expires next",
        "forecast_note": (
            "Per dataset, the rows reaching their cut-off in each of the next twelve months: "
            "the plan run at each month's end (midnight on the next month's first day, "
            "{zone}), counted in the stores. A month's rows are those selected at its end "
            "less those selected at the end of the month before (now, for the current "
            "month). A row under an active legal hold is not expiring: it is counted in the "
            "month the hold lapses. Counted on the stores as they are: rows written and "
            "events happening later are not foreseen. Past cut-off now: the next run takes "
            "them."
        ),
        "forecast_at": "As of {when}.",
        "overdue": "Past cut-off now",
        "total12": "12-month total",
        "held_now": "Held now",
        "not_computed": "not computed: {reason}",
        "forecast_none": "No row reaches its cut-off in the next twelve months.",
        "oversight": "Coverage, risk and legal holds",
        "coverage": "Coverage (last scan)",
        "scanned_at": "Last scanned",
        "never": "never",
        "tables": "Tables scanned",
        "columns": "Columns",
        "personal": "Columns holding personal information",
        "bound": "Columns bound to a dataset",
        "exempt": "Columns exempted",
        "gaps": "Gaps",
        "gate_passed": "The coverage gate passes: no gap.",
        "not_scanned": "Never scanned: {stores}.",
        "risk": "Re-identification risk per output",
        "output": "Output",
        "table": "table",
        "records": "Records",
        "individualization": "Individualization",
        "correlation": "Correlation",
        "inference": "Inference",
        "verdict": "Verdict",
        "risk_none": "No anonymized table or released statistic.",
        "risk_error": "{dataset}: risk not assessed: {reason}",
        "holds": "Legal holds",
        "hold": "Hold",
        "reason": "Reason",
        "datasets": "Datasets",
        "selects": "Selects by",
        "expires": "Expires",
        "status": "Status",
        "active": "active",
        "lapsed": "lapsed",
        "held_rows": "Expired rows held",
        "holds_none": "The policy declares no legal hold.",
        "releases": "Released statistics",
        "releases_note": (
            "Per rollup: its disclosure method and parameters, the periods and cells "
            "released; under differential privacy, the budget ε spent and left per year."
        ),
        "rollup": "Rollup",
        "period": "Period",
        "method": "Method",
        "parameters": "Parameters",
        "periods": "Periods",
        "cells": "Cells released",
        "withheld": "Withheld",
        "budget": "ε spent / left",
        "released_at": "Last release",
        "releases_none": "The policy keeps no statistics.",
        "not_yet": "not yet",
        "published": "released",
        "audit": "Audit log",
        "entries": "Entries",
        "head": "Chain head",
        "verification": "Verification",
        "intact": "intact: the chain and every witness agree",
        "broken": "FAILED: {n} problem(s)",
        "unverified": "not verified",
        "head_note": (
            "Record the head outside the state database: tenure audit verify --head HASH "
            "then shows that no entry up to it was removed."
        ),
        "chart": "Chart: {title}",
        "suppression": "small-cell suppression",
        "differential_privacy": "differential privacy",
        "delete": "delete",
        "anonymize": "anonymize",
        "aggregate_then_delete": "aggregate then delete",
        "met": "met",
        "failed": "failed",
        "not assessed": "not assessed",
        "anonymized_verdict": "anonymized",
        "de-identified": "de-identified",
        "pseudonymized": "pseudonymized",
        "identifiable": "identifiable",
        "day": "day",
        "week": "week",
        "quarter": "quarter",
        "year": "year",
    },
}
#: The activity chart's colours, one per kind (``KINDS``), and the forecast's scheme.
_KIND_COLOURS = ("#b3261e", "#3a6ea5", "#5b8c3a", "#c98a00")


def number(value: int | float, language: Language) -> str:
    """``12 345`` (a narrow no-break space) in French, ``12,345`` in English."""
    shown = f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
    if language == "fr":
        return shown.replace(",", "\u202f").replace(".", ",")
    return shown


def _word(labels: Mapping[str, str], key: str) -> str:
    if key == "anonymized":  # a verdict here, not the activity's column
        return labels["anonymized_verdict"]
    return labels.get(key, key)


# --- charts ----------------------------------------------------------------------------


def chart_svg(spec: dict[str, Any], language: Language, name: str) -> Markup:
    """A Vega-Lite chart as inline SVG (rendered offline), its ids made unique on the
    page by ``name``: two charts never share a clip path."""
    import vl_convert

    if language == "fr":
        svg = vl_convert.vegalite_to_svg(spec, format_locale="fr-CA", time_format_locale="fr-CA")
    else:
        svg = vl_convert.vegalite_to_svg(spec, format_locale="en-CA", time_format_locale="en-CA")
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{name}-\1"', svg)
    svg = svg.replace("<svg ", f'<svg role="img" aria-labelledby="{name}-title" ', 1)
    return Markup(svg)  # the converter's SVG, drawn from counts and policy names


def _rows_by_month(
    labels: Mapping[str, str], months: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Stacked bars: a month per bar (every one of ``months``, when given), its rows summed."""
    x: dict[str, Any] = {"field": "month", "type": "ordinal", "title": labels["month"]}
    if months is not None:
        x["scale"] = {"domain": months}
    y = {"field": "rows", "type": "quantitative", "aggregate": "sum", "title": labels["rows"]}
    return {"x": x, "y": y}


def _activity_spec(activity: Activity, labels: Mapping[str, str]) -> dict[str, Any]:
    kinds = [labels[kind] for kind in KINDS]
    values = [
        {
            "purpose": row.purpose,
            "month": row.month,
            "kind": labels[kind],
            "order": KINDS.index(kind),
            "rows": row.count(kind),
        }
        for row in activity.months
        for kind in KINDS
        if row.count(kind)
    ]
    return {
        "data": {"values": values},
        "facet": {"field": "purpose", "type": "nominal", "title": labels["purpose"]},
        "columns": 4,
        "resolve": {"scale": {"y": "independent"}},
        "spec": {
            "width": 150,
            "height": 140,
            "mark": "bar",
            "encoding": {
                **_rows_by_month(labels),
                "color": {
                    "field": "kind",
                    "type": "nominal",
                    "title": labels["kind"],
                    "scale": {"domain": kinds, "range": list(_KIND_COLOURS)},
                },
                "order": {"field": "order", "type": "quantitative"},
            },
        },
    }


def _forecast_spec(forecast: Forecast, labels: Mapping[str, str]) -> dict[str, Any]:
    values = [
        {"dataset": row.dataset, "month": month, "rows": count}
        for row in forecast.rows
        for month, count in zip(forecast.months, row.expiring, strict=False)
        if count > 0
    ]
    return {
        "data": {"values": values},
        "width": 640,
        "height": 260,
        "mark": "bar",
        "encoding": {
            **_rows_by_month(labels, list(forecast.months)),
            "color": {
                "field": "dataset",
                "type": "nominal",
                "title": labels["dataset"],
                "scale": {"scheme": "tableau20"},
            },
        },
    }


def _releases_spec(releases: list[ReleasedRollup], labels: Mapping[str, str]) -> dict[str, Any]:
    values = [
        {"rollup": release.rollup, "kind": labels[kind], "cells": count, "order": order}
        for release in releases
        for order, (kind, count) in enumerate(
            (("published", release.cells), ("withheld", release.withheld))
        )
        if count
    ]
    return {
        "data": {"values": values},
        "width": 520,
        "mark": "bar",
        "encoding": {
            "y": {"field": "rollup", "type": "nominal", "title": labels["rollup"]},
            "x": {"field": "cells", "type": "quantitative", "title": labels["cells"]},
            "color": {
                "field": "kind",
                "type": "nominal",
                "title": None,
                "scale": {
                    "domain": [labels["published"], labels["withheld"]],
                    "range": ["#3a6ea5", "#bbbbbb"],
                },
            },
            "order": {"field": "order", "type": "quantitative"},
        },
    }


# --- the page --------------------------------------------------------------------------


def render(report: Report, language: Language) -> str:
    """The page in ``language``."""
    labels = LABELS[language]

    def n(value: int | float) -> str:
        return number(value, language)

    charts: dict[str, Markup | None] = {
        "activity": chart_svg(_activity_spec(report.activity, labels), language, "activity")
        if report.activity.months
        else None,
        "forecast": chart_svg(_forecast_spec(report.forecast, labels), language, "forecast")
        if any(row.total > 0 for row in report.forecast.rows)
        else None,
        "releases": chart_svg(_releases_spec(report.releases, labels), language, "releases")
        if any(r.cells or r.withheld for r in report.releases)
        else None,
    }
    return (
        page_environment("flows.reports")
        .get_template("report.html.j2")
        .render(
            language=language,
            L=labels,
            r=report,
            n=n,
            word=lambda key: _word(labels, key),
            charts=charts,
            risk_rows=risk_rows(report.risk, language),
            kinds=KINDS,
            generated=format_moment(report.generated_at, language),
            when=lambda moment: "" if moment is None else format_moment(utc(moment), language),
            day=lambda value: format_date(value, language),
            parameters=lambda values: ", ".join(
                f"{key} {_parameter(value, language)}" for key, value in values.items()
            ),
            budget=lambda release: budget_lines(release, language),
            forecast_when=format_moment(report.forecast.now, language),
            seconds=f"{report.seconds:.1f}".replace(".", "," if language == "fr" else "."),
        )
    )


#: The measure each criterion's cell shows beside its status, and how.
_KEY_MEASURES = {
    "individualization": ("k", "{:d}"),
    "correlation": ("journalist_max", "{:.4f}"),
    "inference": ("l", "{:d}"),
}


def risk_rows(risk: RiskView, language: Language) -> list[dict[str, str]]:
    """``tenure risk``'s lines as the page shows them: each criterion's status with its
    key measure (k; the journalist's risk; l), and the verdict, in the language."""
    labels = LABELS[language]
    rows = []
    for line in risk.lines:
        criteria: dict[str, dict[str, Any]] = line.measures.get("criteria", {})
        cells: dict[str, str] = {}
        for name, (measure, shape) in _KEY_MEASURES.items():
            result = criteria.get(name)
            if result is None:
                cells[name] = "—"
                continue
            status = _word(labels, str(result["status"]))
            value = result.get("measures", {}).get(measure)
            shown = shape.format(value) if value is not None else ""
            if language == "fr":
                shown = shown.replace(".", ",")
            cells[name] = f"{status} ({measure.split('_')[0]} {shown})" if shown else status
        rows.append(
            {
                "dataset": line.dataset,
                "output": labels["table"] if line.output == "table" else line.output,
                "records": number(int(line.measures.get("records") or 0), language),
                **cells,
                "verdict": _word(labels, line.verdict),
            }
        )
    return rows


def budget_lines(release: ReleasedRollup, language: Language) -> list[str]:
    """``2026: 11 / 1``: per year, the privacy loss spent and what is left of the budget."""
    colon = " : " if language == "fr" else ": "
    return [
        f"{year}{colon}{_epsilon(spent, language)} / "
        f"{_epsilon(release.left.get(year, 0.0), language)}"
        for year, spent in sorted(release.spent.items())
    ]


def _epsilon(value: float, language: Language) -> str:
    shown = f"{value:g}"
    return shown.replace(".", ",") if language == "fr" else shown


def _parameter(value: Any, language: Language) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} {_parameter(v, language)}" for k, v in value.items()) + "}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return number(value, language) if isinstance(value, int) else _epsilon(value, language)
