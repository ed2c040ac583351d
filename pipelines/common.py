"""Small helpers every layer's assets share: metadata, previews with personal data masked."""

from __future__ import annotations

import dagster as dg
import duckdb

from connectors.raw_zone import q

OWNER = "team:data-platform"

# Column names that hold ID or phone numbers in any system or model: masked in every preview.
SENSITIVE_COLUMNS = {
    "id_number": "mask_id", "sfzjh": "mask_id", "idCard": "mask_id", "公民身份号码": "mask_id",
    "phone": "mask_phone", "sjhm": "mask_phone", "mobile": "mask_phone", "联系电话": "mask_phone",
}


def table_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def preview(con: duckdb.DuckDBPyConnection, table: str, limit: int = 5) -> dg.MetadataValue:
    """A Markdown preview of a table with every sensitive column masked."""
    cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if not r[0].startswith("_")][:12]
    select = ", ".join(f"{SENSITIVE_COLUMNS[c]}({q(c)}) AS {q(c)}" if c in SENSITIVE_COLUMNS else q(c)
                       for c in cols)
    df = con.execute(f"SELECT {select} FROM {table} LIMIT {int(limit)}").df()
    return dg.MetadataValue.md(df.to_markdown(index=False) if len(df) else "_empty_")


def record_check(con: duckdb.DuckDBPyConnection, *, check_name: str, asset: str, engine: str, severity: str,
                 passed: bool, evaluated: int | None = None, unexpected: int | None = None,
                 detail: dict | list | None = None, run_id: str | None = None) -> None:
    """Append a check's outcome to quality.check_result: history analysts query (``hub status`` and the demo's
    summary show the latest of each). It decides nothing: the publish gate reads Dagster's check storage
    (pipelines/gate.py)."""
    import json

    con.execute("INSERT INTO quality.check_result (check_name, asset, engine, severity, passed, evaluated, "
                "unexpected, detail, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [check_name, asset, engine, severity, passed, evaluated, unexpected,
                 json.dumps(detail, ensure_ascii=False, default=str) if detail is not None else None, run_id])
