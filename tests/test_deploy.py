"""Deployment files: each passes its validator, and they agree with the code and with each other.

`make image-test` (scripts/image_test.sh) builds and runs the image itself; these checks are fast.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from app.config import app_settings, server_settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # hadolint, check-jsonschema, ... come with requirements-dev.txt
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILES = [ROOT / "docker-compose.yml", ROOT / "deploy" / "compose" / "replicas.yml"]
K8S = ROOT / "deploy" / "k8s"
SHELL_SCRIPTS = [
    ROOT / "scripts" / "image_test.sh",
    ROOT / "deploy" / "docker" / "install-requirements.sh",
    ROOT / "deploy" / "ec2" / "user-data.sh",
]
# HOST is left out of the deployment files on purpose: a container must listen on every address.
# HOST is fixed by the image; the metrics directory defaults to a fresh one in the writable /tmp.
NOT_DEPLOYED = {"HOST", "PROMETHEUS_MULTIPROC_DIR"}


def run_tool(*args: str | Path) -> subprocess.CompletedProcess:
    """Run a validator from the venv and return what it printed."""
    return subprocess.run(
        [str(BIN / str(args[0])), *map(str, args[1:])], capture_output=True, text=True, cwd=ROOT
    )


class RecordingEnviron(dict):
    """An empty environment that notes every variable name it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def get(self, key, default=None):
        self.names.add(key)
        return default


@pytest.fixture(scope="module")
def setting_names() -> set[str]:
    """Return the names of the environment variables that app/config.py reads."""
    environ = RecordingEnviron()
    app_settings(environ)
    server_settings(environ)
    return environ.names


def pinned_tensorflow() -> str:
    """Return the tensorflow-cpu version pinned in requirements.txt."""
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    return re.search(r"^tensorflow-cpu==(\S+)$", text, re.MULTILINE).group(1)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return the Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def graceful_timeout() -> int:
    """Return the seconds gunicorn gives requests in flight after SIGTERM (app/gunicorn_conf.py)."""
    text = (ROOT / "app" / "gunicorn_conf.py").read_text(encoding="utf-8")
    return int(re.search(r"^graceful_timeout = (\d+)$", text, re.MULTILINE).group(1))


def load_yaml(path: Path) -> dict:
    """Parse one YAML document."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# Dockerfile


def test_hadolint_finds_nothing_in_the_dockerfile():
    result = run_tool("hadolint", DOCKERFILE)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_default_base_image_has_the_pinned_tensorflow():
    base_args = [
        args for keyword, args in dockerfile_instructions() if keyword == "ARG" and "BASE_IMAGE=" in args
    ]
    assert base_args == [f"BASE_IMAGE=tensorflow/tensorflow:{pinned_tensorflow()}"]
    for path in COMPOSE_FILES:
        build_args = load_yaml(path)["services"]["app"]["build"]["args"]
        assert build_args["BASE_IMAGE"] == f"${{BASE_IMAGE:-tensorflow/tensorflow:{pinned_tensorflow()}}}"


def test_image_runs_gunicorn_as_pid_1_as_a_numeric_non_root_user():
    instructions = dockerfile_instructions()
    final_stage = instructions[max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM") :]
    users = [args for keyword, args in final_stage if keyword == "USER"]
    assert users == ["10001:10001"]
    commands = [args for keyword, args in final_stage if keyword in {"CMD", "ENTRYPOINT"}]
    # Exec form: no shell in between, so gunicorn itself gets SIGTERM.
    assert commands == ['["gunicorn", "--config", "app/gunicorn_conf.py"]']
    healthchecks = [args for keyword, args in final_stage if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and healthchecks[0].endswith('CMD ["python", "healthcheck.py"]')


def dockerignore_regex(pattern: str) -> re.Pattern:
    """Translate a .dockerignore pattern: `**` spans folders, `*` and `?` stay within one."""
    parts = re.split(r"(\*\*/?|\*|\?)", pattern.strip("/"))
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts))


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Say whether .dockerignore leaves path out: a pattern matches it or a parent; the last one wins."""
    parents = [path.split("/")[: i + 1] for i in range(path.count("/") + 1)]
    excluded = False
    for pattern in patterns:
        regex = dockerignore_regex(pattern.removeprefix("!"))
        if any(regex.fullmatch("/".join(parent)) for parent in parents):
            excluded = not pattern.startswith("!")
    return excluded


def test_dockerignore_keeps_what_the_dockerfile_copies_and_drops_the_rest():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for pattern in patterns:  # a path it lets through by name is still there (no stale entries)
        kept = pattern.removeprefix("!")
        if pattern.startswith("!") and not any(wildcard in kept for wildcard in "*?["):
            assert (ROOT / kept).exists(), f".dockerignore keeps {kept}: not in the repository"
    sources = []
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            sources += args.split()[:-1]
    assert sources, "the Dockerfile copies nothing"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not dockerignore_excludes(source.rstrip("/"), patterns), (
            f"COPY {source}: .dockerignore leaves it out"
        )
    for path in [".git/config", ".venv/bin/python", "build/lib/x.py", "tests/conftest.py", ".env"]:
        assert dockerignore_excludes(path, patterns), f"{path} would be sent to the Docker daemon"
    assert dockerignore_excludes("chatbot/__pycache__/text.cpython-311.pyc", patterns)
    # A developer's conversation log (issue 21, item 8) and anything else in models/ but bundles.
    for path in [
        "models/conversations.sqlite3",
        "models/conversations.sqlite3-wal",
        "models/conversations.sqlite3-shm",
        "models/conversations.sqlite3.migrate-lock",
        "models/log.db",
        "models/chatbot_model.png",
    ]:
        assert dockerignore_excludes(path, patterns), f"{path} would be sent to the Docker daemon"
    assert not dockerignore_excludes("models/chatbot_model.h5", patterns)


def test_the_image_keeps_only_model_bundles_in_models():
    """Whatever .dockerignore lets through, the build deletes everything in models/ but bundles."""
    runs = [args for keyword, args in dockerfile_instructions() if keyword == "RUN" and "models" in args]
    assert any("find models -mindepth 1 ! -name '*.h5' -delete" in args for args in runs), runs


def test_shell_scripts_pass_shellcheck():
    result = run_tool("shellcheck", *SHELL_SCRIPTS)
    assert result.returncode == 0, result.stdout + result.stderr


def make_wheel(directory: Path, name: str, version: str) -> Path:
    """Write a minimal pure-Python wheel, so pip can install it with no index."""
    path = directory / f"{name}-{version}-py3-none-any.whl"
    dist_info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", "")
        wheel.writestr(f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(
            f"{dist_info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{dist_info}/RECORD", "")
    return path


def fake_distribution(directory: Path, name: str, version: str) -> Path:
    """Make an installed-looking distribution, as the tensorflow/tensorflow image has TensorFlow."""
    dist_info = directory / f"{name}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return directory


@pytest.mark.slow
@pytest.mark.parametrize(
    ("base_tensorflow", "installs_tensorflow"), [(None, True), ("2.20.0", True), ("pin", False)]
)
def test_install_requirements_skips_tensorflow_only_when_the_base_has_the_pinned_one(
    tmp_path: Path, base_tensorflow: str | None, installs_tensorflow: bool
):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "servingdep", "1.0")  # no tensorflow-cpu wheel: pip fails if it asks for one
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"tensorflow-cpu=={pinned_tensorflow()}\nservingdep==1.0\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    if base_tensorflow:
        version = pinned_tensorflow() if base_tensorflow == "pin" else base_tensorflow
        env["PYTHONPATH"] = str(fake_distribution(tmp_path / "site", "tensorflow", version))
    result = subprocess.run(
        ["sh", str(ROOT / "deploy/docker/install-requirements.sh"), tmp_path / "venv", requirements, wheels],
        capture_output=True,
        text=True,
        env=env,
    )
    if installs_tensorflow:
        assert result.returncode != 0 and "tensorflow-cpu" in result.stdout + result.stderr
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "is not installed again" in result.stdout
        assert list((tmp_path / "venv" / "lib").glob("python3.*/site-packages/servingdep-1.0.dist-info"))


@pytest.mark.slow
def test_healthcheck_script_reports_a_live_and_a_dead_server(serve, tiny_model_path: Path):
    server = serve(tiny_model_path)
    script = ROOT / "deploy" / "docker" / "healthcheck.py"
    alive = subprocess.run(
        [sys.executable, script], env={**os.environ, "PORT": str(server.port)}, capture_output=True
    )
    assert alive.returncode == 0, alive.stderr
    server.stop()
    dead = subprocess.run(
        [sys.executable, script], env={**os.environ, "PORT": str(server.port)}, capture_output=True, text=True
    )
    assert dead.returncode == 1 and "/healthz" in dead.stderr


# docker compose


def test_compose_files_match_the_compose_specification():
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", *COMPOSE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def compose_environment_names(path: Path) -> set[str]:
    """Return the variable names that a compose file sets in the app container."""
    return set(load_yaml(path)["services"]["app"]["environment"])


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda path: path.name)
def test_compose_passes_every_setting_and_only_real_ones(path: Path, setting_names: set[str]):
    names = compose_environment_names(path)
    assert names <= setting_names, f"not read by app/config.py: {names - setting_names}"
    # PORT is fixed at 5000 inside the container; the published host port is CHATBOT_HOST_PORT.
    assert setting_names - NOT_DEPLOYED - {"PORT"} <= names, f"not passed: {setting_names - names}"


def test_replicas_app_is_the_single_app_less_the_published_port():
    single = load_yaml(COMPOSE_FILES[0])["services"]
    replicas = load_yaml(COMPOSE_FILES[1])["services"]
    different = {"build", "ports", "deploy", "environment"}
    assert {k: v for k, v in single["app"].items() if k not in different} == {
        k: v for k, v in replicas["app"].items() if k not in different
    }
    # The same settings, except that the replicas trust the one proxy in front of them, nginx.
    single_env, replicas_env = single["app"]["environment"], replicas["app"]["environment"]
    assert single_env.pop("CHATBOT_TRUSTED_PROXIES") == "${CHATBOT_TRUSTED_PROXIES:-0}"
    assert replicas_env.pop("CHATBOT_TRUSTED_PROXIES") == "${CHATBOT_TRUSTED_PROXIES:-1}"
    assert single_env == replicas_env
    assert single["app"]["build"]["args"] == replicas["app"]["build"]["args"]
    assert (COMPOSE_FILES[1].parent / replicas["app"]["build"]["context"]).resolve() == ROOT
    assert "ports" not in replicas["app"] and replicas["app"]["deploy"]["replicas"] > 1
    assert single["redis"] == replicas["redis"]
    # Issue 21, item 20: /metrics and the admin login are not published to every interface.
    assert single["app"]["ports"] == ["${CHATBOT_HOST_ADDRESS:-127.0.0.1}:${CHATBOT_HOST_PORT:-5000}:5000"]
    assert int(single["app"]["stop_grace_period"].removesuffix("s")) > graceful_timeout()
    nginx_conf = (COMPOSE_FILES[1].parent / "nginx.conf").read_text(encoding="utf-8")
    assert re.search(r"^\s*server app:5000\b", nginx_conf, re.MULTILINE)
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in replicas["nginx"]["volumes"]


# Kubernetes


@pytest.fixture(scope="module")
def rendered_k8s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Render deploy/k8s with kubectl's kustomize into one file."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl (with kustomize) is missing; CI must render deploy/k8s")
        pytest.skip("kubectl is not installed")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("k8s") / "rendered.yaml"
    path.write_text(result.stdout, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def k8s_objects(rendered_k8s: Path) -> dict[str, dict]:
    """Return the rendered objects by kind."""
    documents = list(yaml.safe_load_all(rendered_k8s.read_text(encoding="utf-8")))
    return {document["kind"]: document for document in documents}


def test_kustomization_renders_every_manifest_in_the_folder(k8s_objects: dict[str, dict]):
    kustomization = load_yaml(K8S / "kustomization.yaml")
    manifests = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    assert set(k8s_objects) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }


def test_rendered_manifests_pass_strict_kubernetes_validation(rendered_k8s: Path):
    result = run_tool("kubernetes-validate", "--strict", rendered_k8s)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deployment_probes_ports_and_security(k8s_objects: dict[str, dict]):
    pod = k8s_objects["Deployment"]["spec"]["template"]["spec"]
    container, orders = pod["containers"]
    # The example order service runs beside the app, from the same image, on the default allowlist's port.
    assert (orders["name"], orders["image"]) == ("orders", container["image"])
    assert orders["command"][:2] == ["python", "orders.py"] and "8081" in orders["command"]
    assert orders["securityContext"]["readOnlyRootFilesystem"] is True
    assert k8s_objects["ConfigMap"]["data"]["CHATBOT_ACTION_ALLOWLIST"] == "http://127.0.0.1:8081/"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"] == [
        {"name": "http", "containerPort": int(k8s_objects["ConfigMap"]["data"]["PORT"])}
    ]
    assert set(container["resources"]) == {"requests", "limits"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The same user as the Dockerfile's USER.
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (10001, 10001)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["image"] == "registry.example.com/chatbot:0.1.0"  # set by the kustomization
    strategy = k8s_objects["Deployment"]["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0
    # gunicorn's graceful_timeout after the preStop pause must fit in the grace period.
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] >= graceful_timeout() + pause


def test_service_hpa_and_pdb_point_at_the_deployment(k8s_objects: dict[str, dict]):
    deployment = k8s_objects["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert k8s_objects["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert k8s_objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert k8s_objects["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    target = k8s_objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    (env_from,) = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert env_from["configMapRef"]["name"] == k8s_objects["ConfigMap"]["metadata"]["name"]


def test_configmap_sets_real_settings_with_valid_values(
    k8s_objects: dict[str, dict], setting_names: set[str]
):
    data = k8s_objects["ConfigMap"]["data"]
    assert set(data) <= setting_names, f"not read by app/config.py: {set(data) - setting_names}"
    # The admin token, the webhook secret and the channels' secrets come from Secrets, not the ConfigMap.
    secrets = {"CHATBOT_ADMIN_TOKEN", "CHATBOT_ACTION_SECRET"} | {
        f"CHATBOT_{name}"
        for name in ("TELEGRAM_TOKEN", "TELEGRAM_SECRET", "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN")
    }
    assert setting_names - NOT_DEPLOYED - {"CHATBOT_THRESHOLD"} - secrets <= set(data)
    assert not secrets & set(data)
    # The values parse: a bad one would stop every pod at start.
    app_settings(data)
    server_settings(data)


# EC2 and the deployment guide


def test_ec2_user_data_runs_the_image_with_restart_always():
    script = (ROOT / "deploy" / "ec2" / "user-data.sh").read_text(encoding="utf-8")
    run = script[script.index("docker run") :]
    assert "--restart always" in run and '-p "$PORT:$PORT"' in run and "--env-file /etc/chatbot.env" in run
    assert "systemctl enable --now docker" in script


def test_ec2_files_keep_secrets_private_and_clients_apart():
    """Issue 21, item 9: the env file is 0600, the ALB is one trusted proxy, /admin and /metrics stay inside."""
    script = (ROOT / "deploy" / "ec2" / "user-data.sh").read_text(encoding="utf-8")
    created = script[: script.index("docker pull")]
    assert "umask 077" in created[: created.index("cat >/etc/chatbot.env")]
    assert "chmod 600 /etc/chatbot.env" in created
    assert re.search(r"^CHATBOT_TRUSTED_PROXIES=1$", script, re.MULTILINE)
    guide = (ROOT / "deploy" / "ec2" / "README.md").read_text(encoding="utf-8")
    for pattern in ["'/admin','/admin/*'", "Values='/metrics'"]:
        rule = guide[guide.index(pattern) - 200 : guide.index(pattern) + 200]
        assert "fixed-response" in rule and "StatusCode=404" in rule, pattern


def test_deployment_guide_commands_name_files_that_exist():
    section = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    for command in ["docker run", "docker compose up", "kubectl apply -k deploy/k8s", "make image-test"]:
        assert command in section, command
    paths = set(re.findall(r"\b(?:deploy|scripts|wheels)/[\w./-]*\w", section))
    assert paths
    for path in paths:
        assert (ROOT / path).exists(), f"docs/deployment.md names {path}, which does not exist"
