"""Benchmarks of Tenure against the hand-written SQL it replaces."""
