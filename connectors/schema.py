"""The typed model of ``sources.yaml``: every option, its type and its default, in one place.

``load_sources`` validates a file against :class:`SourcesFile` before anything runs, and turns the first
problems into one line naming the key path (``sources.hr.entities.staff.paginator.page_size: …``). The
same model writes the JSON Schema that editors use to check the file as it is typed
(``docs/sources.schema.json``; regenerate with ``python -m connectors.schema > docs/sources.schema.json``,
a test fails when it is stale).

Any scalar may be written as ``${VAR}`` or ``${VAR:-default}``: it is resolved from the environment when
the source is used, so a number or a flag can come from the environment too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

ENV_REF = r".*\$\{[A-Z0-9_]+(?::-[^}]*)?\}.*"
EnvRef = Annotated[str, StringConstraints(pattern=ENV_REF)]
Int = int | EnvRef
Float = float | EnvRef
Bool = bool | EnvRef
Duration = Annotated[str, StringConstraints(pattern=r"^\s*\d+(\.\d+)?\s*[smhd]\s*$")] | int | EnvRef
Columns = str | list[str]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- shared ---------------------------------------------------------------------------------------
class Incremental(_Model):
    """Read only what changed since the last load: ``cursor_field >= stored cursor``."""

    cursor_field: str = Field(description="The record field (or column) whose highest value is the cursor.")
    param: str | None = Field(None, description="REST: the query parameter that takes the stored cursor.")
    type: Literal["string", "int", "epoch_ms", "epoch_s"] = Field(
        "string", description="How text cursor values compare: ISO text in order, an integer sequence, or "
                              "epoch milliseconds/seconds. Typed database columns compare as their own type.")
    future_tolerance: Duration = Field(
        "1d", description="A value beyond now plus this (30s, 15m, 6h, 1d) is reported as a finding and "
                          "never moves the cursor.")


class _Entity(_Model):
    primary_key: Columns = Field(description="The column (or columns) that identify a record.")
    incremental: Incremental | None = None
    required_columns: list[str] = Field(default_factory=list,
                                        description="Columns a load must carry besides the key, else it fails.")


class _Source(_Model):
    description: str = ""
    owner: str = Field("team:data-platform", description="The Dagster owner of the source's assets.")


# -- REST -----------------------------------------------------------------------------------------
class NoAuth(_Model):
    type: Literal["none"]


class BearerAuth(_Model):
    type: Literal["bearer"]
    token: str


class ApiKeyAuth(_Model):
    type: Literal["api_key"]
    key: str = Field(description="The key; use ${VAR}.")
    location: Literal["header", "query"] = "header"
    header: str = Field("X-API-Key", description="The header that carries the key (location: header).")
    name: str | None = Field(None, description="The query parameter that carries the key (location: query).")

    @model_validator(mode="after")
    def _named(self) -> ApiKeyAuth:
        if self.location == "query" and not self.name:
            raise ValueError("name is required when location is query")
        return self


class BasicAuth(_Model):
    type: Literal["basic"]
    username: str
    password: str


class OAuth2ClientCredentials(_Model):
    type: Literal["oauth2_client_credentials"]
    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None
    client_auth: Literal["basic", "body"] = Field(
        "basic", description="How the client credentials reach the token URL: HTTP Basic, or in the form body.")


Auth = Annotated[NoAuth | BearerAuth | ApiKeyAuth | BasicAuth | OAuth2ClientCredentials, Field(discriminator="type")]


PosInt = Annotated[int, Field(gt=0)] | EnvRef
MemorySize = Annotated[str, StringConstraints(pattern=r"(?i)^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?\s*$")] \
    | Annotated[int, Field(gt=0)] | EnvRef


class _Paginator(_Model):
    """What ends a load, common to every paginator: the server's own signal, never a short page."""

    total_path: str | None = Field(None, description="Dotted path to the total count of records; the load "
                                                     "fails if it reads a different number.")
    total_header: str | None = Field(None, description="A response header holding the total count (e.g. X-Total-Count).")
    has_more_path: str | None = Field(None, description="Dotted path to a boolean saying more pages follow.")
    max_pages: PosInt | None = Field(None, description="Fail the load rather than read more pages (default 100000).")


class PageNumber(_Paginator):
    type: Literal["page_number"]
    page_param: str
    size_param: str
    page_size: PosInt = 500
    start: Annotated[int, Field(ge=0)] | EnvRef = 1
    total_pages_path: str | None = None


class Offset(_Paginator):
    type: Literal["offset"]
    offset_param: str
    limit_param: str
    limit: PosInt = 500
    next_url_path: str | None = Field(None, description="Dotted path to the next page's URL, if the server gives one.")


class CursorPaginator(_Paginator):
    type: Literal["cursor"]
    cursor_param: str
    limit_param: str
    limit: PosInt = 500
    next_cursor_path: str


class LinkHeader(_Paginator):
    type: Literal["link_header"]
    page_param: str
    size_param: str
    page_size: PosInt = 500


Paginator = Annotated[PageNumber | Offset | CursorPaginator | LinkHeader, Field(discriminator="type")]


class Envelope(_Model):
    """Where a vendor's JSON envelope says a request failed although the HTTP status is 200."""

    success_path: str | None = Field(None, description="A boolean that is false on failure.")
    code_path: str | None = Field(None, description="A status code in the body.")
    ok_codes: list[int | str] = Field(default_factory=list, description="Codes that mean success (default 0 and 200).")
    error_path: str | None = Field(None, description="A non-empty value here is an error.")
    message_path: str | None = Field(None, description="The server's message to quote.")


EnvelopeOption = Envelope | Literal[False, "none"]


class RestEntity(_Entity):
    path: str = Field(description="The endpoint, relative to base_url.")
    params: dict[str, Any] = Field(default_factory=dict, description="Fixed query parameters.")
    records_path: str | None = Field(None, description="Dotted path to the list of records; the body itself if absent.")
    paginator: Paginator
    envelope: EnvelopeOption | None = Field(None, description="Overrides the source's envelope rules; false: none.")


class RestSource(_Source):
    kind: Literal["rest"]
    base_url: str
    auth: Auth = Field(default_factory=lambda: NoAuth(type="none"))
    timeout: Float = Field(30, description="Seconds per request.")
    verify_tls: Bool = True
    max_retries: Int = Field(8, description="Retries of 429, 5xx, timeouts and dropped connections.")
    deadline: Float = Field(120, description="Seconds one request may take in all (connect, wait, headers and "
                                             "body), however slowly the server sends.")
    connect_timeout: Float = Field(5, description="Seconds to open a connection; a server that is not "
                                                  "reachable fails the load at once, without retries.")
    retry_budget: Float = Field(300, description="Seconds one load may spend on failed attempts and backoff.")
    max_retries_per_load: Int = Field(50, description="Retries one load may make over all its requests.")
    load_timeout: Float = Field(3600, description="Seconds one load of one entity may read, every page.")
    max_response_bytes: MemorySize = Field("256MB", description="The largest answer body (after gzip) read; "
                                                                "a larger one fails the load.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent with every request.")
    envelope: EnvelopeOption | None = Field(
        None, description="How error envelopes are recognised; by default success: false, a code other than 0/200 "
                          "(code, errcode, error_code) or a non-empty error fail the load.")
    entities: dict[str, RestEntity] = Field(min_length=1)


# -- SQL ------------------------------------------------------------------------------------------
NonEmpty = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]
PositiveInt = Annotated[int, Field(gt=0)] | EnvRef


class SqlEntity(_Entity):
    table: NonEmpty | None = Field(None, description="A table (or view) to read whole; `schema.table` allowed.")
    query: NonEmpty | None = Field(None, description="A SELECT to read instead of a table.")
    schema_: NonEmpty | None = Field(None, alias="schema",
                                     description="The table's schema (on MariaDB/MySQL: its database).")

    @field_validator("schema_")
    @classmethod
    def _schema_for_tables(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("table") is None:
            raise ValueError("applies to 'table' only (a query names its own schemas)")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> SqlEntity:
        if (self.table is None) == (self.query is None):
            raise ValueError("needs exactly one of 'table' or 'query'")
        return self


class SqlSource(_Source):
    kind: Literal["sql"]
    url: str = Field(description="A SQLAlchemy database URL; put the password in ${VAR}.")
    chunk_rows: PositiveInt = Field(50_000, description="Rows fetched and landed at a time (bounds memory).")
    entities: dict[str, SqlEntity] = Field(min_length=1)


# -- files ----------------------------------------------------------------------------------------
class Footer(_Model):
    first_cell: list[Annotated[str, StringConstraints(pattern=r"\S")]] | None = Field(
        None, description="Words that make a row a footer when its first non-empty cell begins with one.")
    last_rows: Annotated[int, Field(ge=0)] = Field(0, description="The last n rows of a file are footer rows.")


class FilesEntity(_Entity):
    pattern: str = Field(description="A glob inside the inbox, e.g. 党员信息*.xlsx.")
    format: Literal["csv", "xlsx"] | None = Field(None, description="csv or xlsx; from the pattern's suffix if absent.")
    sheet: str | None = Field(None, description="XLSX: the sheet to read; the first if absent.")
    header_row: Annotated[int, Field(ge=1)] | None = Field(
        None, description="The row (1 = first, as a spreadsheet counts) where the header starts; rows above are "
                          "titles and are skipped.")
    skip_rows: Annotated[int, Field(ge=0)] | None = Field(None, description="Rows to skip before the header (header_row - 1).")
    header_rows: Annotated[int, Field(ge=1)] = Field(
        1, description="Header rows: with 2, a merged top cell's name is joined with each name below it.")
    header_separator: str = Field("_", description="Joins the names of several header rows.")
    identifier_columns: list[str] = Field(
        default_factory=list,
        description="XLSX: columns holding identifiers (ID numbers, 工号) besides the key, which always counts. "
                    "A number cell in one with more than 15 significant digits cannot survive a float: its row is "
                    "quarantined as precision_lost. Text cells are read as the text they hold.")
    footer: Footer | Literal[False, "none"] | None = Field(
        None, description="Rows set aside as footers (合计, 总计, 小计, 制表人, …) by default; none: no footer rule.")

    @model_validator(mode="after")
    def _inside(self) -> FilesEntity:
        p = Path(self.pattern)
        if p.is_absolute() or ".." in p.parts:
            raise ValueError(f"pattern {self.pattern!r} would leave the inbox")
        if self.header_row is not None and self.skip_rows is not None:
            raise ValueError("give header_row or skip_rows, not both (header_row = skip_rows + 1)")
        return self


class FilesSource(_Source):
    kind: Literal["files"]
    inbox: str = Field(description="The folder exports are dropped into.")
    archive: str | None = Field(None, description="Where loaded files go; <inbox>/../_archive/<name> if absent.")
    rejected: str | None = Field(None, description="Where unreadable files go, with a .reason.txt.")
    max_xlsx_cells: PosInt = Field(10_000_000, description="The largest sheet range (rows × columns), declared "
                                                         "or used, an XLSX file may have; checked before parsing.")
    max_xlsx_bytes: MemorySize = Field("1GB", description="The largest size an XLSX file may unpack to.")
    max_shared_strings_bytes: MemorySize = Field("200MB", description="The largest size an XLSX file's shared "
                                                                      "strings may unpack to.")
    entities: dict[str, FilesEntity] = Field(min_length=1)


AnySource = Annotated[RestSource | SqlSource | FilesSource, Field(discriminator="kind")]


class SourcesFile(_Model):
    """sources.yaml: the campus systems the hub reads."""

    model_config = ConfigDict(extra="forbid", title="Campus Data Hub sources.yaml")
    sources: dict[str, AnySource] = Field(min_length=1)


# -- errors as one line ---------------------------------------------------------------------------
_TAGGED = {"paginator", "auth"}
_KINDS = {"rest", "sql", "files"}
_MEMBERS = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "text",
            "constrained-str": None, "constrained-int": "a positive integer", "list[str]": "a list of names", "none": None}


_MODEL_NAMES = {"Envelope", "Footer", "literal[False,'none']"}


def _path(loc: tuple[Any, ...]) -> str:
    """The key path of an error, without pydantic's union tags and validator names."""
    out: list[str] = []
    for i, part in enumerate(loc):
        part = str(part)
        if i == 2 and loc[0] == "sources" and part in _KINDS:
            continue
        if out and out[-1] in _TAGGED and i > 0 and str(loc[i - 1]) in _TAGGED:
            continue
        if part in _MODEL_NAMES and i > 0 and str(loc[i - 1]) in ("envelope", "footer"):
            continue
        if part == "schema_":
            part = "schema"
        if part.startswith(("function-", "union[", "tagged-union[")) or part in _MEMBERS:
            continue
        out.append(part)
    return ".".join(out)


def validation_message(exc: ValidationError) -> str:
    """The first problem of a validation, as ``key.path: what is wrong``; unknown keys grouped."""
    errors = exc.errors(include_url=False)
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    if extra:
        parent = _path(extra[0]["loc"][:-1])
        keys = sorted(str(e["loc"][-1]) for e in extra if _path(e["loc"][:-1]) == parent)
        return f"{parent}: unknown key(s) {keys}"
    e = errors[0]
    path = _path(e["loc"])
    member = str(e["loc"][-1]) if e["loc"] else ""
    if e["type"] == "string_type" and _path(e["loc"]).endswith((".table", ".query", ".schema")):
        return f"{_path(e['loc'])}: must be a non-empty string, got {e.get('input')!r}"
    if member in _MEMBERS and e["type"] != "missing":
        expected = [_MEMBERS[str(x["loc"][-1])] for x in errors
                    if _path(x["loc"]) == path and _MEMBERS.get(str(x["loc"][-1]))]
        wanted = " or ".join(dict.fromkeys(expected)) or "a value"
        return f"{path}: must be {wanted}, got {e.get('input')!r}"[:300]
    if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
        path = f"{path}.{str(e.get('ctx', {}).get('discriminator', 'type')).strip(chr(39))}"
    message = e["msg"].removeprefix("Value error, ")
    if e["type"] == "string_too_short" or (e["type"] == "string_pattern_mismatch"
                                           and e.get("ctx", {}).get("pattern") == r"\S"):
        message = "must be a non-empty string"
    if e["type"] not in ("missing", "union_tag_invalid", "union_tag_not_found", "value_error") and "input" in e:
        message += f", got {e['input']!r}"[:120]
    if e["type"] == "missing":
        message = "is required"
    return f"{path}: {message}"


def json_schema() -> dict[str, Any]:
    schema = SourcesFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m connectors.schema > docs/sources.schema.json
    print(schema_text(), end="")

__all__ = ["SourcesFile", "ValidationError", "json_schema", "schema_text", "validation_message"]
