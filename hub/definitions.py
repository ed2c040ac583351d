"""The Dagster code location (see workspace.yaml)."""

from hub.factory import build_definitions

defs = build_definitions()
