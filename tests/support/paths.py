"""Where the tests find the repository, their policy fixtures and the shipped policy."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED_POLICY = REPO / "retention_rules" / "policies" / "crm_pro.yaml"
FIXTURES = REPO / "tests" / "fixtures"
