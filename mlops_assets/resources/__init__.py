"""Dagster resources and IO managers."""
