"""A package installed the way ``pip`` leaves it on the path, declaring a connector."""

from __future__ import annotations

from pathlib import Path


def install_distribution(site: Path, scheme: str, target: str) -> None:
    """What ``pip install`` of a package declaring the entry point leaves on the path."""
    info = site / "tenure_jsonlog_example-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tenure-jsonlog-example\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(f"[tenure.connectors]\n{scheme} = {target}\n")
