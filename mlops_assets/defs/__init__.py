"""Thin Dagster wiring, one package per domain."""
