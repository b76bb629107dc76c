"""The chart against a real Kubernetes API server (slow suite): `kubectl apply --dry-run=server` accepts every
rendered object, and a real `helm install` + `helm upgrade` keeps the generated keys (the chart's `lookup`).

The server is kube-apiserver 1.20 built from Debian's source (scripts/deploy-tools.sh) on etcd, both on
loopback; there is no kubelet, so nothing runs. Kinds newer than 1.20 are covered by test_helm.py's schema checks.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.helm_render import CHART, VALUES, needs_helm
from tests.server_harness import free_port

pytestmark = [pytest.mark.slow, needs_helm]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ember-test-admin-token"


def _kube_apiserver() -> str | None:
    local = ROOT / ".tools" / "kube" / "bin" / "kube-apiserver"
    return str(local) if local.exists() else shutil.which("kube-apiserver")


class ControlPlane:
    """etcd + kube-apiserver on loopback ports, state in a temporary directory."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.processes: list[subprocess.Popen[bytes]] = []
        self.port = free_port()
        self.kubeconfig = state / "kubeconfig"

    def start(self, apiserver: str) -> None:
        client, peer = free_port(), free_port()
        self._spawn("etcd", ["etcd", "--name", "test", "--data-dir", str(self.state / "etcd"),
                             "--listen-client-urls", f"http://127.0.0.1:{client}",
                             "--advertise-client-urls", f"http://127.0.0.1:{client}",
                             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-cluster", f"test=http://127.0.0.1:{peer}"])
        key = self.state / "sa.key"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True, timeout=60)
        (self.state / "tokens.csv").write_text(f"{TOKEN},admin,admin,system:masters\n")
        self._spawn("apiserver", [
            apiserver, f"--etcd-servers=http://127.0.0.1:{client}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1", f"--secure-port={self.port}", "--insecure-port=0",
            f"--cert-dir={self.state / 'certs'}", f"--token-auth-file={self.state / 'tokens.csv'}",
            "--authorization-mode=RBAC", f"--service-account-key-file={key}",
            f"--service-account-signing-key-file={key}",
            "--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.96.0.0/16"])
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": f"https://127.0.0.1:{self.port}",
                                                      "insecure-skip-tls-verify": True}}],
            "users": [{"name": "admin", "user": {"token": TOKEN}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}]}))
        self._wait_ready()

    def _spawn(self, name: str, argv: list[str]) -> None:
        with (self.state / f"{name}.log").open("wb") as log:
            self.processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL, start_new_session=True))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                break
            try:
                answer = httpx.get(f"https://127.0.0.1:{self.port}/readyz", verify=False, timeout=2,
                                   headers={"Authorization": f"Bearer {TOKEN}"})
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        logs = "\n".join(p.read_text()[-2000:] for p in sorted(self.state.glob("*.log")))
        raise AssertionError(f"kube-apiserver did not become ready:\n{logs}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)

    def run(self, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=180, env=env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    apiserver = _kube_apiserver()
    if apiserver is None:
        pytest.skip("kube-apiserver is not built (scripts/deploy-tools.sh builds it from Debian's source as root)")
    for tool in ("etcd", "openssl", "kubectl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    plane = ControlPlane(tmp_path_factory.mktemp("kube"))
    try:
        plane.start(apiserver)
        yield plane
    finally:
        plane.stop()


def _namespace(cluster: ControlPlane, name: str) -> None:
    made = cluster.run("kubectl", "create", "namespace", name)
    assert made.returncode == 0 or "AlreadyExists" in made.stderr, made.stderr


@pytest.mark.parametrize("values", sorted(VALUES))
def test_server_dry_run_accepts_every_object(cluster: ControlPlane, values: str) -> None:
    _namespace(cluster, "llm")
    args = ["helm", "template", "demo", str(CHART), "--namespace", "llm"]
    if VALUES[values] is not None:
        args += ["-f", str(VALUES[values])]
    rendered = cluster.run(*args)
    assert rendered.returncode == 0, rendered.stderr
    applied = cluster.run("kubectl", "apply", "--dry-run=server", "-n", "llm", "-f", "-", stdin=rendered.stdout)
    assert applied.returncode == 0, applied.stderr
    created = [line for line in applied.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(created) == rendered.stdout.count("\nkind: "), applied.stdout


def test_server_dry_run_rejects_a_wrong_field(cluster: ControlPlane) -> None:
    """The server really validates: the same apply with a misspelt field fails."""
    _namespace(cluster, "llm")
    rendered = cluster.run("helm", "template", "demo", str(CHART), "--namespace", "llm",
                           "--show-only", "templates/services.yaml")
    broken = rendered.stdout.replace("clusterIP: None", "clusterIp: None")
    assert broken != rendered.stdout
    applied = cluster.run("kubectl", "apply", "--dry-run=server", "-n", "llm", "-f", "-", stdin=broken)
    assert applied.returncode != 0 and "clusterIp" in applied.stderr


def _keys(cluster: ControlPlane, namespace: str) -> dict[str, str]:
    got = cluster.run("kubectl", "get", "secret", "demo-ember-keys", "-n", namespace, "-o", "json")
    assert got.returncode == 0, got.stderr
    return {k: base64.b64decode(v).decode() for k, v in json.loads(got.stdout)["data"].items()}


def test_install_generates_keys_and_upgrade_keeps_them(cluster: ControlPlane) -> None:
    installed = cluster.run("helm", "install", "demo", str(CHART), "-n", "keys", "--create-namespace")
    assert installed.returncode == 0, installed.stderr
    assert "kubectl -n keys logs deploy/demo-ember-web | grep -i 'setup'" in installed.stdout  # NOTES
    first = _keys(cluster, "keys")
    assert len(first["engine-key"]) == 48 and len(first["secret-key"]) == 48
    assert first["engine-key"] != first["secret-key"]
    upgraded = cluster.run("helm", "upgrade", "demo", str(CHART), "-n", "keys", "--set", "engine.numParallel=2")
    assert upgraded.returncode == 0, upgraded.stderr
    assert _keys(cluster, "keys") == first
    sts = json.loads(cluster.run("kubectl", "get", "statefulset", "demo-ember-engine", "-n", "keys",
                                 "-o", "json").stdout)
    env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OLLAMA_NUM_PARALLEL"] == "2"  # the upgrade did apply
