"""Prefect flows, reports and the tenure CLI: the wiring between the other rooms."""
