"""Example data sets and pipelines for Sluice (run from the repository root)."""
