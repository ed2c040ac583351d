"""sources.yaml: the shipped file loads; a bad one fails with one line naming the key."""

from pathlib import Path

import pytest

from connectors.config import ConfigError, interpolate, load_sources
from hub.settings import PROJECT_ROOT


def test_shipped_sources_file_declares_every_system():
    sources = load_sources(PROJECT_ROOT / "sources.yaml")
    assert {s.kind for s in sources.values()} == {"rest", "sql", "files"}
    assert set(sources) == {"hr", "student", "academic", "party", "activity", "learning"}
    assert sources["party"].entities["dues"].primary_key == ("人员编号", "缴费月份")


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sources.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("text,needle", [
    ("sources:\n  hr:\n    kind: soap\n    entities: {a: {primary_key: id}}\n", "sources.hr.kind"),
    ("sources:\n  hr:\n    kind: rest\n    base_url: http://x\n    entities:\n      staff:\n        path: /s\n"
     "        paginator: {type: page_number, page_param: p, size_param: s}\n", "sources.hr.entities.staff.primary_key"),
    ("sources:\n  hr:\n    kind: rest\n    base_url: http://x\n    entities:\n      staff:\n        path: /s\n"
     "        primary_key: id\n        paginator: {type: magic}\n", "paginator.type"),
    ("sources:\n  p:\n    kind: files\n    inbox: /tmp\n    entities:\n      m: {pattern: ../etc/*.csv, primary_key: id}\n",
     "would leave the inbox"),
    ("sources:\n  db:\n    kind: sql\n    url: sqlite://\n    entities:\n      t: {primary_key: id}\n",
     "exactly one of 'table' or 'query'"),
    ("sources:\n  db:\n    kind: sql\n    url: sqlite://\n    colour: blue\n    entities:\n      t: {table: t, primary_key: id}\n",
     "unknown key(s) ['colour']"),
    ("sources: [\n", "not valid YAML"),
])
def test_bad_config_names_the_key(tmp_path, text, needle):
    with pytest.raises(ConfigError) as err:
        load_sources(_write(tmp_path, text))
    message = str(err.value)
    assert needle in message and "\n" not in message and "sources.yaml" in message


def test_interpolation_reads_the_environment_when_used():
    assert interpolate("${A:-x}/${B}", {"B": "b"}) == "x/b"
    with pytest.raises(ConfigError, match="SECRET_TOKEN is not set"):
        interpolate("${SECRET_TOKEN}", {}, where="sources.hr.auth.token")


def test_committed_json_schema_is_current_and_accepts_the_shipped_file():
    import json

    import jsonschema
    import yaml

    from connectors.schema import schema_text

    committed = (PROJECT_ROOT / "docs" / "sources.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "regenerate: python -m connectors.schema > docs/sources.schema.json"
    doc = yaml.safe_load((PROJECT_ROOT / "sources.yaml").read_text(encoding="utf-8"))
    jsonschema.validate(doc, json.loads(committed))
    doc["sources"]["hr"]["entities"]["staff"]["paginator"]["page_size"] = "two hundred"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, json.loads(committed))


@pytest.mark.parametrize("fragment,needle", [
    ("timeout: abc", "sources.hr.timeout: must be a number, got 'abc'"),
    ("timeout: ${HUB_HTTP_TIMEOUT:-30}", None),
    ("auth: {type: oauth2_client_credentials, token_url: http://t/token}", "sources.hr.auth.client_id: is required"),
    ("auth: {type: api_key, key: k, location: query}", "name is required when location is query"),
    ("auth: {type: kerberos}", "sources.hr.auth.type"),
])
def test_typed_options_fail_with_one_line(tmp_path, fragment, needle):
    text = (f"sources:\n  hr:\n    kind: rest\n    base_url: http://x\n    {fragment}\n    entities:\n"
            "      staff:\n        path: /s\n        primary_key: id\n"
            "        paginator: {type: page_number, page_param: p, size_param: s}\n")
    if needle is None:
        assert load_sources(_write(tmp_path, text))["hr"].options["timeout"] == "${HUB_HTTP_TIMEOUT:-30}"
        return
    with pytest.raises(ConfigError) as err:
        load_sources(_write(tmp_path, text))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_every_option_of_the_typed_model_is_documented():
    """docs/connectors.md lists every sources.yaml option the typed model accepts."""
    import typing

    from pydantic import BaseModel

    from connectors.schema import SourcesFile

    doc = (PROJECT_ROOT / "docs" / "connectors.md").read_text(encoding="utf-8")
    seen, missing = set(), []

    def models_in(annotation):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield annotation
        for arg in typing.get_args(annotation):
            yield from models_in(arg)

    def walk(model):
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            key = field.alias or name
            if f"`{key}`" not in doc and f"{key}:" not in doc:
                missing.append(f"{model.__name__}.{key}")
            for sub in models_in(field.annotation):
                walk(sub)

    walk(SourcesFile)
    assert len(seen) > 10
    assert not missing, f"undocumented options: {missing}"
