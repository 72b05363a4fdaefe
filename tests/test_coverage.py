"""The coverage gate's rules (``retention_rules.coverage``) and ``--suggest``'s stub."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from anonymizers.detection.entities import DIRECT_IDENTIFIERS, SCANNED_ENTITIES
from retention_rules.coverage import ColumnEvidence, check_coverage
from retention_rules.issues import PolicyError
from retention_rules.loader import load_policy
from retention_rules.model import EntityName, Exemption, Policy, ScanSettings
from retention_rules.suggest import suggest_bindings
from tests.support.paths import SHIPPED_POLICY

POLICY = load_policy(SHIPPED_POLICY, environ={}).policy


_STORES = {d.table: d.store for d in POLICY.datasets}  # table names are unique across stores


def _evidence(table: str, column: str, **entities: float) -> ColumnEvidence:
    return ColumnEvidence(_STORES.get(table, "crm"), None, table, column, entities)


def test_the_policy_names_exactly_the_entities_the_scan_labels() -> None:
    assert set(get_args(EntityName)) == set(SCANNED_ENTITIES)


def test_bound_columns_holding_what_their_category_admits_pass() -> None:
    coverage = check_coverage(
        POLICY,
        [
            _evidence("customers", "email", EMAIL_ADDRESS=0.99),
            _evidence("customers", "street_address", LOCATION=0.9),
            _evidence("support_tickets", "notes", PERSON=1.0, PHONE_NUMBER=0.8),
            _evidence("customers", "id"),  # nothing personal, not bound: fine
        ],
        DIRECT_IDENTIFIERS,
    )
    assert coverage.passed
    assert coverage.bound["crm.customers.email"] == ("contact.email",)


def test_an_unbound_personal_column_is_a_gap_naming_it() -> None:
    coverage = check_coverage(
        POLICY, [_evidence("customers", "cell", PHONE_NUMBER=0.99)], DIRECT_IDENTIFIERS
    )
    (gap,) = coverage.gaps
    assert gap.kind == "unbound"
    assert str(gap).startswith("crm.customers.cell: unbound: holds PHONE_NUMBER (0.99)")


def test_a_direct_identifier_the_category_does_not_admit_contradicts() -> None:
    coverage = check_coverage(
        POLICY,
        [
            _evidence("accounts", "plan", PHONE_NUMBER=0.97),  # account.profile: none
            _evidence("login_events", "user_agent", IP_ADDRESS=0.8),  # usage.device: []
            _evidence("login_events", "os", LOCATION=0.7),  # a quasi identifier: no gap
        ],
        DIRECT_IDENTIFIERS,
    )
    assert [(g.kind, g.evidence.column, g.entities) for g in coverage.gaps] == [
        ("contradiction", "plan", ("PHONE_NUMBER",)),
        ("contradiction", "user_agent", ("IP_ADDRESS",)),
    ]
    assert "dataset accounts declares account.profile" in str(coverage.gaps[0])


def test_an_exemption_silences_a_gap_and_is_reported() -> None:
    exemption = Exemption(
        store="crm", table="customers", column="cell", reason="backfilled, dropped next week"
    )
    policy = POLICY.model_copy(update={"scan": ScanSettings(exempt=[exemption])})
    evidence = [
        _evidence("customers", "cell", PHONE_NUMBER=0.99),
        _evidence("customers", "fax", PHONE_NUMBER=0.99),
    ]
    coverage = check_coverage(policy, evidence, DIRECT_IDENTIFIERS)
    assert [gap.evidence.column for gap in coverage.gaps] == ["fax"]
    assert [(item.column, e.reason) for item, e in coverage.exempt] == [
        ("cell", "backfilled, dropped next week")
    ]


# Any column of the shipped policy's tables, bound or not, holding any entities.
_BOUND = sorted({(d.table, c) for d in POLICY.datasets for c in d.columns})
_COLUMNS = st.one_of(
    st.sampled_from(_BOUND),
    st.tuples(st.sampled_from(sorted({d.table for d in POLICY.datasets})), st.just("extra")),
    st.tuples(st.just("leads"), st.sampled_from(["phone", "notes", "c1"])),
)
_ENTITIES = st.dictionaries(
    st.sampled_from(sorted(set(SCANNED_ENTITIES) - {"URL"})),
    st.floats(min_value=0.5, max_value=1.0),
    max_size=4,
)


def _admitted(policy: Policy, categories: list[str], entity: str) -> bool:
    """An independent reading of the ``entities`` field's documented meaning."""
    for name in categories:
        declared = policy.categories[name]
        if declared.entities == "any" or entity in (declared.entities or ()):
            return True
        if declared.entities is None and declared.identifier != "none":
            return True
    return False


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_COLUMNS, _ENTITIES), max_size=12, unique_by=lambda item: item[0]))
def test_gaps_are_exactly_the_unbound_and_the_contradicting_columns(
    columns: list[tuple[tuple[str, str], dict[str, float]]],
) -> None:
    evidence = [_evidence(table, column, **entities) for (table, column), entities in columns]
    coverage = check_coverage(POLICY, evidence, DIRECT_IDENTIFIERS)
    expected = set()
    for (table, column), entities in columns:
        categories = [
            c for d in POLICY.datasets if d.table == table for c in d.columns.get(column, [])
        ]
        if not categories and entities:
            expected.add((table, column, "unbound"))
        elif any(
            e in DIRECT_IDENTIFIERS and not _admitted(POLICY, categories, e) for e in entities
        ):
            expected.add((table, column, "contradiction"))
    got = [(g.evidence.table, g.evidence.column, g.kind) for g in coverage.gaps]
    assert len(got) == len(set(got)), "one gap per column"
    assert set(got) == expected


def test_suggest_binds_new_tables_and_names_the_dataset_of_known_ones() -> None:
    evidence = [
        ColumnEvidence("crm", None, "leads", "courriel", {"EMAIL_ADDRESS": 0.99}),
        ColumnEvidence("crm", None, "leads", "nas", {"CA_SIN": 0.95}),
        ColumnEvidence("crm", None, "accounts", "recovery", {"EMAIL_ADDRESS": 0.9}),
    ]
    gaps = check_coverage(POLICY, evidence, DIRECT_IDENTIFIERS).gaps
    stub = suggest_bindings(
        POLICY, gaps, {("crm", None, "leads"): ("lead_id",)}, DIRECT_IDENTIFIERS
    )
    document = YAML(typ="safe").load(stub)
    (dataset,) = document["datasets"]
    assert dataset["table"] == "leads"
    assert dataset["primary_key"] == ["lead_id"]
    # The most specific category that lists the entity; a new one when none does.
    assert dataset["columns"] == {"courriel": "contact.email", "nas": "government_id.ca_sin"}
    assert document["categories"]["government_id.ca_sin"]["identifier"] == "direct"
    assert document["categories"]["government_id.ca_sin"]["entities"] == ["CA_SIN"]
    assert "# Add to the columns of dataset 'accounts':" in stub
    assert "#   recovery: contact.email" in stub


def test_a_suggested_dataset_loads_once_its_todos_are_filled(tmp_path: Path) -> None:
    gaps = check_coverage(
        POLICY, [ColumnEvidence("crm", None, "leads", "tel", {"PHONE_NUMBER": 0.99})], ["x"]
    ).gaps
    stub = YAML(typ="safe").load(suggest_bindings(POLICY, gaps, {}, DIRECT_IDENTIFIERS))
    document = YAML(typ="safe").load(SHIPPED_POLICY.read_text())
    document["datasets"].append(stub["datasets"][0])
    path = tmp_path / "policy.yaml"
    YAML(typ="safe").dump(document, path)
    with pytest.raises(PolicyError) as raised:
        load_policy(path, environ={})
    fields = {str(issue).split(": ")[1] for issue in raised.value.issues}
    new = len(POLICY.datasets)  # the appended dataset's index
    assert {f"datasets[{new}].purpose", f"datasets[{new}].retention"} <= fields
    stub["datasets"][0].update(
        purpose="marketing",
        primary_key=["id"],
        subject_key="id",
        clock={"column": "created_at"},
        retention="10 days",
    )
    YAML(typ="safe").dump(document, path)
    loaded = load_policy(path, environ={})
    assert loaded.policy.datasets[new].columns == {"tel": ["contact.phone"]}


def test_suggest_proposes_a_category_of_its_kind_for_every_catalogued_entity(
    tmp_path: Path,
) -> None:
    """Entities the scan looks for since it asks the registry (IBANs, MAC addresses, wallets,
    nationalities) get a category of their kind, which the policy loader accepts."""
    entities = ("IBAN_CODE", "MAC_ADDRESS", "CRYPTO", "NRP", "CA_QC_HEALTH_NUMBER")
    evidence = [
        ColumnEvidence("crm", None, "leads", f"c{i}", {e: 0.9}) for i, e in enumerate(entities)
    ]
    gaps = check_coverage(POLICY, evidence, DIRECT_IDENTIFIERS).gaps
    stub = YAML(typ="safe").load(suggest_bindings(POLICY, gaps, {}, DIRECT_IDENTIFIERS))
    assert stub["datasets"][0]["columns"] == {
        "c0": "financial.iban_code",
        "c1": "device.mac_address",
        "c2": "financial.crypto",
        "c3": "sensitive.nrp",
        "c4": "health.ca_qc_health_number",
    }
    assert {name: c["identifier"] for name, c in stub["categories"].items()} == {
        "financial.iban_code": "direct",
        "device.mac_address": "direct",
        "financial.crypto": "direct",
        "sensitive.nrp": "quasi",
        "health.ca_qc_health_number": "direct",
    }
    document = YAML(typ="safe").load(SHIPPED_POLICY.read_text())
    document["categories"].update(stub["categories"])
    path = tmp_path / "policy.yaml"
    YAML(typ="safe").dump(document, path)
    assert load_policy(path, environ={}).policy.categories["sensitive.nrp"].entities == ["NRP"]
