"""Dagster assets by layer: raw, staging, warehouse, publish; the jobs and schedules over them."""
