"""Canonical schema, code sets (as data files) and the SQL that builds them."""

from pathlib import Path

models_dir = Path(__file__).resolve().parent
sql_dir = models_dir / "sql"
codesets_dir = models_dir / "codesets"
