"""Every setting a run uses comes through Dagster (issue 16, section 4): the process environment is read
in hub/settings.py and hub/resources.py only.

The hub's packages are parsed (ast, not grep: an alias such as ``import os as _os`` or ``from os import
getenv`` is caught too). Outside the two modules nothing may touch ``os.environ``/``os.getenv`` &c.; the
command-line modules read what they need through hub.settings' accessors (``environ``, ``env_value``),
and library modules (models, quality, pipelines, the connectors) get their values as parameters from
the resources, so they may not use those accessors either. campus_sim is not scanned: it stands in for
the campus's own systems, it is not part of the hub.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hub.settings import PROJECT_ROOT

PACKAGES = ("hub", "connectors", "models", "pipelines", "quality")
ENV_READERS = ("hub/settings.py", "hub/resources.py")
OS_ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
# hub.settings' readers of the environment, for the modules that run a command (or expand sources.yaml's
# ${VAR}, or find the secrets to redact) rather than an asset: everything else takes parameters.
ACCESSORS = {"environ", "env_value"}
COMMAND_LINE = {"hub/cli.py", "hub/demo.py", "hub/status.py", "hub/recovery.py", "hub/instance.py",
                "hub/keys.py", "hub/encryption.py", "hub/province.py", "connectors/config.py",
                "connectors/redact.py"}


def offences(source: str, where: str) -> list[str]:
    """Every read of the process environment in ``source`` that ``where`` (a path under the project) may
    not make, as ``where:line: what``."""
    tree = ast.parse(source, filename=where)
    os_names = {"os"}  # names bound to the os module here (import os as _os)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names |= {a.asname or a.name for a in node.names if a.name == "os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in OS_ENV_NAMES and isinstance(node.value, ast.Name) \
                and node.value.id in os_names:
            found.append(f"{where}:{node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{where}:{node.lineno}: from os import {a.name}" for a in node.names if a.name in OS_ENV_NAMES]
        elif isinstance(node, ast.ImportFrom) and node.module == "hub.settings" and where not in COMMAND_LINE:
            found += [f"{where}:{node.lineno}: from hub.settings import {a.name} (a library module takes "
                      "parameters)" for a in node.names if a.name in ACCESSORS]
    return found


def scan(root: Path) -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            where = path.relative_to(root).as_posix()
            if where not in ENV_READERS:
                found += offences(path.read_text(encoding="utf-8"), where)
    return found


def test_no_module_reads_the_environment_but_settings_and_resources():
    found = scan(PROJECT_ROOT)
    assert not found, "read the environment in hub/settings.py (Settings, accessors) or a resource:\n" + \
        "\n".join(found)


@pytest.mark.parametrize(("source", "where", "caught"), [
    ("import os\nx = os.environ.get('HUB_AS_OF')", "models/standards.py", "os.environ"),
    ("import os as _os\nx = _os.getenv('HUB_AS_OF')", "quality/business_rules.py", "_os.getenv"),
    ("from os import environ\n", "pipelines/snapshot.py", "from os import environ"),
    ("import os\nos.environ['X'] = '1'", "hub/demo.py", "os.environ"),  # writes go through hub.settings too
    ("from hub.settings import env_value\n", "pipelines/national.py", "from hub.settings import env_value"),
    ("from hub.settings import environ\n", "models/plausibility.py", "from hub.settings import environ"),
])
def test_the_scan_catches_each_form(source, where, caught):
    [line] = offences(source, where)
    assert caught in line and line.startswith(where)


@pytest.mark.parametrize(("source", "where"), [
    ("from hub.settings import env_value\nx = env_value('HUB_MODE')", "hub/demo.py"),  # a command-line module
    ("import os\nos.chmod('f', 0o600)\nos.getpid()", "pipelines/snapshot.py"),
    ("from hub.settings import Settings, export\n", "quality/expectations.py"),  # a write, not a read
])
def test_the_scan_lets_be_what_is_allowed(source, where):
    assert offences(source, where) == []


def test_each_setting_is_a_resource_field_the_ui_shows(tmp_path):
    """HUB_* values become the resources' fields (what the UI lists and the launchpad overrides), and a bad
    one is one line naming it."""
    from hub.factory import build_definitions
    from hub.resources import WarehouseResource
    from hub.settings import Settings

    rules = tmp_path / "rules.yaml"
    rules.write_text((PROJECT_ROOT / "quality" / "rules.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "s.yaml").write_text((PROJECT_ROOT / "models" / "assessment_standards.yaml").read_text(encoding="utf-8"),
                                     encoding="utf-8")
    env = {"HUB_VAR_DIR": str(tmp_path), "HUB_AS_OF": "2026-06-30", "HUB_RULES_FILE": str(rules),
           "HUB_PLAUSIBILITY_FILE": str(tmp_path / "p.yaml"), "HUB_STANDARDS_FILE": str(tmp_path / "s.yaml"),
           "HUB_DUCKDB_MEMORY_LIMIT": "300MB", "HUB_QUALITY_GX_MAX_ROWS": "1000", "HUB_FULL_REBUILD": "1",
           "HUB_SCHOOL_CODE": "4512345678", "HUB_ANALYST_GROUP": "analysts", "HUB_RAW_SPOOL_DIR": "/spool",
           "HUB_RAW_MEMORY_LIMIT": "64MB"}
    settings = Settings.from_env(env)
    resources = build_definitions(settings).resources
    run = resources["run_settings"]
    assert (run.as_of, run.rules_file, run.plausibility_file, run.standards_file, run.full_rebuild, run.school_code) \
        == ("2026-06-30", str(rules), str(tmp_path / "p.yaml"), str(tmp_path / "s.yaml"), True, "4512345678")
    assert run.as_of_date().isoformat() == "2026-06-30"
    assert (resources["warehouse"].memory_limit, resources["warehouse"].analyst_group) == ("300MB", "analysts")
    assert resources["quality"].gx_max_rows == 1000
    assert (resources["campus_sources"].spool_dir, resources["campus_sources"].landing_memory) == ("/spool", "64MB")

    # the warehouse resource's memory limit is the one its connections get
    with WarehouseResource(path=str(tmp_path / "w.duckdb"), memory_limit="300MB").connect() as con:
        assert con.execute("SELECT getvariable('hub_memory_limit')").fetchone()[0] == "300MB"

    for name, value in (("HUB_AS_OF", "30/06/2026"), ("HUB_QUALITY_GX_MAX_ROWS", "lots"),
                        ("HUB_DUCKDB_MEMORY_LIMIT", "two gigs")):
        with pytest.raises(ValueError) as err:
            Settings.from_env({**env, name: value})
        assert name in str(err.value) and "\n" not in str(err.value)
