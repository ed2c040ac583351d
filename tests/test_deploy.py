"""deploy/ checked against the code: each file parsed, and what it names (module, attribute, code
location, image, ports, environment variables, the instance's queue) is what the hub has."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import yaml

from hub.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
CODE_DIRS = ("hub", "connectors", "pipelines", "quality", "models", "campus_sim")
GRPC_ARGS = ["-m", "hub.definitions", "-a", "defs"]
SECRETS = {"HUB_PERSON_KEY_SECRET", "HUB_NATIONAL_KEY_SECRET", "HUB_KMS_MASTER_KEYS"}


def _load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))


def _variables_the_hub_reads() -> set[str]:
    """Every HUB_* name quoted in the code, and those sources.yaml reads (${HUB_…})."""
    names = set()
    for folder in CODE_DIRS:
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r"[\"'](HUB_[A-Z0-9_]+)[\"']", path.read_text(encoding="utf-8")))
    names |= set(re.findall(r"\$\{(HUB_[A-Z0-9_]+)", (PROJECT_ROOT / "sources.yaml").read_text(encoding="utf-8")))
    return names


def _definitions_attribute() -> set[str]:
    tree = ast.parse((PROJECT_ROOT / "hub" / "definitions.py").read_text(encoding="utf-8"))
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def _grpc_args(command: list[str]) -> list[str]:
    i = command.index("-m")
    return command[i:i + 4]


def _location_name(command: list[str]) -> str:
    return command[command.index("--location-name") + 1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return _load("docker-compose.yaml")


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_the_code_location_is_the_hubs_definitions(compose, dockerfile):
    assert "defs" in _definitions_attribute(), "hub/definitions.py defines defs"
    [location] = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
    name = location["python_module"]["location_name"]
    assert location["python_module"]["module_name"] == "hub.definitions"
    code = compose["services"]["code"]["command"]
    assert _grpc_args(code) == GRPC_ARGS and _location_name(code) == name
    [grpc] = _load("workspace.yaml")["load_from"]
    assert grpc["grpc_server"] == {"host": "code", "port": int(code[code.index("-p") + 1]), "location_name": name}
    cmd = ast.literal_eval(dict(dockerfile)["CMD"])
    assert _grpc_args(cmd) == GRPC_ARGS and _location_name(cmd) == name
    for service in ("webserver", "daemon"):
        command = compose["services"][service]["command"]
        assert command[command.index("-w") + 1] == "/opt/dagster/app/deploy/workspace.yaml"
    values = _load("helm/values.yaml")
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == GRPC_ARGS


def test_compose_has_the_four_services_on_one_image_built_by_the_dockerfile(compose, dockerfile):
    services = compose["services"]
    assert set(services) == {"postgres", "code", "webserver", "daemon"}
    hub_images = {services[s]["image"] for s in ("code", "webserver", "daemon")}
    assert len(hub_images) == 1
    [image] = hub_images
    for s in ("code", "webserver", "daemon"):
        assert services[s]["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (DEPLOY.parent / services["code"]["build"]["dockerfile"]).exists()
    values = _load("helm/values.yaml")
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert f"{deployment['image']['repository']}:{deployment['image']['tag']}" == image
    tomlish = (PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert image.split(":")[1] == re.search(r'^version = "([^"]+)"', tomlish, re.M).group(1), "image tag = version"
    # the Dockerfile: the scale extra, the instance yaml in DAGSTER_HOME, the ports the services use
    run = " ".join(a for i, a in dockerfile if i == "RUN")
    assert "'.[scale]'" in run and "cp deploy/dagster.yaml \"$DAGSTER_HOME/dagster.yaml\"" in run
    env = dict(item.split("=", 1) for i, a in dockerfile if i == "ENV" for item in shlex.split(a))
    assert env["DAGSTER_HOME"] == services["code"]["environment"]["DAGSTER_HOME"]
    exposed = {int(p) for i, a in dockerfile if i == "EXPOSE" for p in a.split()}
    assert {4000, 3000} <= exposed
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000"]
    for copied in [a.split()[0] for i, a in dockerfile if i == "COPY"]:
        assert (PROJECT_ROOT / copied).exists(), f"the Dockerfile copies {copied}, which exists"
    for package in CODE_DIRS:
        assert any(i == "COPY" and a.split()[0] == package for i, a in dockerfile), f"{package} is in the image"


def test_environment_names_are_the_ones_the_hub_reads_and_secrets_are_not_written(compose):
    reads = _variables_the_hub_reads()
    env = compose["services"]["code"]["environment"]
    hub_vars = {k for k in env if k.startswith("HUB_")}
    assert hub_vars <= reads, f"unknown to the hub: {sorted(hub_vars - reads)}"
    assert {"HUB_DAGSTER_PG_URL", "HUB_SCHOOL_CODE", "HUB_VAR_DIR", *SECRETS} <= hub_vars
    for name in SECRETS | {"HUB_SCHOOL_CODE"}:
        assert re.fullmatch(r"\$\{" + name + r":\?[^}]+\}", env[name]), f"{name} must come from the environment"
    pg = compose["services"]["postgres"]["environment"]
    url = env["HUB_DAGSTER_PG_URL"]
    assert url.startswith("postgresql+psycopg2://"), "the driver dagster-postgres speaks (hub/instance.py)"
    assert re.fullmatch(rf"postgresql\+psycopg2://{pg['POSTGRES_USER']}:\$\{{HUB_PG_PASSWORD[^}}]*\}}@postgres:5432/"
                        rf"{pg['POSTGRES_DB']}", url)
    assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"

    values = _load("helm/values.yaml")
    [deployment] = values["dagster-user-deployments"]["deployments"]
    helm_vars = {e["name"] for e in deployment["env"]}
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    helm_vars |= {e.split("=", 1)[0] for e in launcher["envVars"]}
    assert {v for v in helm_vars if v.startswith("HUB_")} <= reads
    assert not SECRETS & helm_vars, "secrets come from the hub-secrets Secret, not values"
    assert {s["name"] for s in deployment["envSecrets"]} == {s["name"] for s in launcher["envSecrets"]} == {"hub-secrets"}
    assert not re.search(r"(?i)password:\s*\S", (DEPLOY / "helm" / "values.yaml").read_text(encoding="utf-8"))


def test_helm_runs_each_college_in_its_own_pod_with_the_instance_queue():
    values = _load("helm/values.yaml")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert set(launcher) <= {"image", "labels", "failPodOnRunFailure", "resources", "schedulerName",
                             "securityContext", "runK8sConfig", "jobNamespace", "kubeconfigFile", "imagePullPolicy",
                             "loadInclusterConfig", "envConfigMaps", "envSecrets", "envVars", "volumeMounts",
                             "volumes"}, "keys of the chart's K8sRunLauncherConfig"
    assert set(launcher["runK8sConfig"]) <= {"containerConfig", "podSpecConfig", "podTemplateSpecMetadata",
                                             "jobSpecConfig", "jobMetadata"}
    limits = launcher["runK8sConfig"]["containerConfig"]["resources"]["limits"]["memory"]
    assert limits.endswith("Gi")
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    instance = _load("dagster.yaml")
    assert coordinator["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"] == \
        instance["concurrency"]["runs"]["tag_concurrency_limits"], "the same per-college limit as the instance"
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance["storage"]["postgres"]["postgres_url"] == {"env": "HUB_DAGSTER_PG_URL"}
    # the run pods and the code location see the same hub-var volume (the colleges' DuckDB files)
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert launcher["volumes"] == deployment["volumes"] and launcher["volumeMounts"] == deployment["volumeMounts"]
    assert values["postgresql"]["enabled"] is False and values["global"]["postgresqlSecretName"]


def test_the_instance_yaml_is_the_one_the_hub_selects():
    from hub.colleges import PARTITION_TAG
    from hub.instance import COLLEGE_TAG, PG_INSTANCE_YAML, PG_URL_VAR

    assert PG_INSTANCE_YAML == DEPLOY / "dagster.yaml"
    instance = _load("dagster.yaml")
    limits = instance["concurrency"]["runs"]["tag_concurrency_limits"]
    per_value = {"value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert limits == [{"key": COLLEGE_TAG, **per_value}, {"key": PARTITION_TAG, **per_value}]
    default = yaml.safe_load((PROJECT_ROOT / "dagster_home" / "dagster.yaml").read_text(encoding="utf-8"))
    assert default["concurrency"]["runs"]["tag_concurrency_limits"] == [{"key": PARTITION_TAG, **per_value}]
    assert instance["storage"]["postgres"]["postgres_url"]["env"] == PG_URL_VAR
    assert "storage" not in default, "the single-college default stays on SQLite"
    init = (DEPLOY / "postgres-init.sql").read_text(encoding="utf-8")
    compose = _load("docker-compose.yaml")
    iceberg_db = compose["services"]["code"]["environment"]["HUB_ICEBERG_CATALOG_URI"].rsplit("/", 1)[1]
    assert f"CREATE DATABASE {iceberg_db}" in init
    mounted = compose["services"]["postgres"]["volumes"][1].split(":")[0]
    assert (DEPLOY / mounted).resolve() == (DEPLOY / "postgres-init.sql").resolve()


def test_docs_name_the_deploy_files():
    doc = (PROJECT_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for path in sorted(p.relative_to(PROJECT_ROOT) for p in DEPLOY.rglob("*") if p.is_file()):
        assert str(path) in doc, f"docs/deploy.md says what {path} is for"


def test_yaml_files_parse():
    for path in [*DEPLOY.rglob("*.yaml")]:
        assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict), path
    assert Path(DEPLOY / "Dockerfile").read_text().startswith("#")


def test_the_code_server_that_evaluates_automation_runs_with_its_environment(compose):
    """hub_automation is evaluated in the code location's server (pipelines/automation.py); its tick settles
    (hub/instance.py AUTOMATION_ENV). Every place that starts a code server gives it that environment."""
    from hub.instance import AUTOMATION_ENV
    from pipelines.automation import automation_sensor

    assert automation_sensor()._use_user_code_server, "the hub's own condition runs in the code server"
    assert int(AUTOMATION_ENV["DAGSTER_AUTOMATION_TICK_SETTLE_SECONDS"]) > 0
    code_env = compose["services"]["code"]["environment"]
    for name, value in AUTOMATION_ENV.items():
        assert str(code_env.get(name)) == value, f"deploy/docker-compose.yaml: the code server's {name}"
    [deployment] = _load("helm/values.yaml")["dagster-user-deployments"]["deployments"]
    helm_env = {e["name"]: str(e["value"]) for e in deployment["env"]}
    assert {k: helm_env.get(k) for k in AUTOMATION_ENV} == AUTOMATION_ENV, "deploy/helm/values.yaml: the user deployment"
    ui = re.search(r"^ui:.*?(?=^\S)", (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8"), re.M | re.S).group(0)
    dev = next(line for line in ui.splitlines() if "dagster dev" in line)
    for name, value in AUTOMATION_ENV.items():
        assert f"{name}={value} " in dev, f"Makefile ui: `dagster dev` runs its code server with {name}={value}"
    for path in (PROJECT_ROOT / "benchmarks" / "colleges.py", PROJECT_ROOT / "tests" / "test_dagster_postgres.py"):
        text = path.read_text(encoding="utf-8")
        servers = text.count('"api", "grpc"')
        assert servers and servers <= text.count("AUTOMATION_ENV"), f"{path.name}: each code server it starts"
