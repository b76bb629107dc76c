"""The Helm chart in deploy/helm/ember, rendered by the real `helm` and checked against the Kubernetes JSON
schemas of 1.29-1.32 (kubernetes-validate, strict), the chart's values.schema.json, Pod Security "restricted",
and golden files for the objects an operator reads most."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.helm_render import (
    CHART,
    FIXED_KEYS,
    VALUES,
    env_of,
    find,
    helm,
    needs_helm,
    pod_specs,
    render,
)

pytestmark = needs_helm

KUBE_VERSIONS = ("1.29.0", "1.30.0", "1.31.0", "1.32.0")
GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("values", sorted(VALUES))
def test_lint_strict(values: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    if VALUES[values] is not None:
        args += ["-f", str(VALUES[values])]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", sorted(VALUES))
def test_rendered_objects_match_kubernetes_schemas(values: str) -> None:
    objects = render(values)
    assert len(objects) >= 7
    for version in KUBE_VERSIONS:
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:  # name the object, not just the path
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} on {version}: {error.message} at {error.path}")


def test_strict_validation_rejects_an_unknown_field() -> None:
    """The validator really is strict: the check above would catch a misspelt field."""
    engine = find(render(), "StatefulSet", "demo-ember-engine")
    engine["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(engine, "1.32.0", strict=True)


@pytest.mark.parametrize(("setting", "message"), [
    ("engine.replicas=two", "engine.replicas: Invalid type. Expected: integer, given: string"),
    ("engine.storage.mode=everywhere", "engine.storage.mode"),
    ("engine.numParallel=0", "engine.numParallel"),
    ("database.url=mysql://x", "database.url"),
    ("ingress.enabled=yes", "ingress.enabled"),
    ("enigne.replicas=2", "enigne"),
])
def test_wrong_values_fail_by_the_schema(setting: str, message: str) -> None:
    result = helm("template", "demo", str(CHART), "--set", setting)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr and message in result.stderr


def test_several_web_replicas_without_a_database_fail_clearly() -> None:
    result = helm("template", "demo", str(CHART), "--set", "web.replicas=2")
    assert result.returncode != 0 and "needs database.url or database.existingSecret" in result.stderr


@pytest.mark.parametrize("values", sorted(VALUES))
def test_every_pod_meets_pod_security_restricted(values: str) -> None:
    for where, spec in pod_specs(render(values)):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), where
        assert all("hostPath" not in v for v in spec.get("volumes", [])), where
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (where, container["name"])
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], where
            assert sc["readOnlyRootFilesystem"] is True, where
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, f"{where}/{container['name']}: no writable /tmp"
            assert container["resources"]["requests"]["memory"], where


def test_generated_keys_are_random_and_distinct_and_given_ones_win() -> None:
    secrets = [find(render(), "Secret", "demo-ember-keys") for _ in range(2)]
    first, second = (s["data"] for s in secrets)
    assert first["engine-key"] != first["secret-key"]
    assert first["engine-key"] != second["engine-key"]  # no cluster to look up: a fresh key each render
    assert secrets[0]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    fixed = find(render("default", *FIXED_KEYS), "Secret", "demo-ember-keys")["data"]
    assert fixed == {"secret-key": "dGVzdC1zZWNyZXQta2V5", "engine-key": "dGVzdC1lbmdpbmUta2V5"}


def test_multinode_web_reaches_every_engine_and_reads_urls_from_secrets() -> None:
    objects = render("multinode")
    web = find(objects, "Deployment", "demo-ember-web")["spec"]["template"]["spec"]["containers"][0]
    env = env_of(web)
    assert env["EMBER_ENGINES"].split(",") == [
        f"http://demo-ember-engine-{i}.demo-ember-engine-headless.llm.svc:11434" for i in range(3)]
    assert env["EMBER_DATABASE_URL"] == {"secretKeyRef": {"name": "ember-postgres", "key": "url"}}
    assert env["EMBER_REDIS_URL"] == {"secretKeyRef": {"name": "demo-ember-urls", "key": "redis-url"}}
    assert env["EMBER_ENGINE_KEY"] == {"secretKeyRef": {"name": "demo-ember-keys", "key": "engine-key"}}
    urls = find(objects, "Secret", "demo-ember-urls")["data"]
    assert set(urls) == {"redis-url"}  # the database URL stays in the operator's own Secret
    engine = find(objects, "StatefulSet", "demo-ember-engine")
    claim = engine["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"] and claim["storageClassName"] == "local-nvme"


def test_shared_mode_is_a_deployment_on_one_read_write_many_claim() -> None:
    objects = render("shared")
    engine = find(objects, "Deployment", "demo-ember-engine")
    volumes = {v["name"]: v for v in engine["spec"]["template"]["spec"]["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "demo-ember-engine-models"
    claim = find(objects, "PersistentVolumeClaim", "demo-ember-engine-models")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    web = find(objects, "Deployment", "demo-ember-web")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(web)["EMBER_ENGINES"] == "http://demo-ember-engine.llm.svc:11434"
    assert not [o for o in objects if o["kind"] == "StatefulSet"]


def test_models_come_from_an_init_container_not_a_hook() -> None:
    objects = render("multinode")
    spec = find(objects, "StatefulSet", "demo-ember-engine")["spec"]["template"]["spec"]
    init = spec["initContainers"][0]
    assert init["name"] == "models"
    assert env_of(init)["EMBER_MODELS_TO_PULL"] == "llama3.2:1b qwen3:0.6b"
    assert env_of(init)["EMBER_MODELS_TO_CREATE"] == "support-bot"
    script = find(objects, "ConfigMap", "demo-ember-engine-models")["data"]
    assert script["0"].startswith("FROM llama3.2:1b")
    assert all("lifecycle" not in c for c in spec["containers"])
    default = find(render(), "StatefulSet", "demo-ember-engine")["spec"]["template"]["spec"]
    assert "initContainers" not in default  # nothing to pull: the bundled model is in the image


def test_probes_give_a_first_model_load_ten_minutes() -> None:
    for values in sorted(VALUES):
        for where, spec in pod_specs(render(values)):
            container = spec["containers"][0]
            startup = container["startupProbe"]
            assert startup["httpGet"]["path"] == "/healthz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            if "engine" in where:
                assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_network_policy_lets_only_the_web_role_reach_engines() -> None:
    policy = find(render(), "NetworkPolicy", "demo-ember-engine")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "engine"
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    (peer,) = rule["from"]
    assert peer == {"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "ember", "app.kubernetes.io/instance": "demo", "app.kubernetes.io/component": "web"}}}


def render_notes(tmp_path: Path, *extra: str) -> str:
    """NOTES.txt as `helm install` prints it (install needs a cluster, so render it as a ConfigMap in a copy)."""
    chart = tmp_path / "ember"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes-copy.txt")
    (chart / "templates" / "notes-as-configmap.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n'
        'data: {notes: {{ tpl (.Files.Get "notes-copy.txt") . | quote }}}\n')
    result = helm("template", "demo", str(chart), "--namespace", "llm", *extra,
                  "--show-only", "templates/notes-as-configmap.yaml")
    assert result.returncode == 0, result.stderr
    notes: str = yaml.safe_load(result.stdout)["data"]["notes"]
    return notes


def test_notes_print_the_setup_link_command(tmp_path: Path) -> None:
    notes = render_notes(tmp_path)
    assert "kubectl -n llm logs deploy/demo-ember-web | grep -i 'setup'" in notes
    assert "kubectl -n llm port-forward svc/demo-ember-web 8080:8080" in notes
    assert "exec sts/demo-ember-engine -c engine -- ember health" in notes
    with_ingress = render_notes(tmp_path / "second", "-f", str(VALUES["multinode"]))
    assert "https://llm.example.org/" in with_ingress and "port-forward" not in with_ingress


GOLDEN_OBJECTS = [
    ("multinode", "StatefulSet", "demo-ember-engine"),
    ("multinode", "Deployment", "demo-ember-web"),
    ("multinode", "Ingress", "demo-ember"),
    ("default", "NetworkPolicy", "demo-ember-engine"),
]


@pytest.mark.parametrize(("values", "kind", "name"), GOLDEN_OBJECTS)
def test_golden_objects(values: str, kind: str, name: str) -> None:
    """Rendered objects as reviewed; after an intended change: UPDATE_GOLDEN=1 pytest tests/deploy/test_helm.py."""
    obj = find(render(values, *FIXED_KEYS), kind, name)
    text = yaml.safe_dump(obj, sort_keys=True, width=120)
    path = GOLDEN / f"{values}-{kind.lower()}-{re.sub('[^a-z0-9-]', '-', name)}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text()
