"""`ember doctor`: each condition is made for real (a noexec mount, a port held by another process, a closed
models directory checked as a non-root user, a leftover partial download, real PostgreSQL/Redis/engines), and
the finding and the exit code are checked through the command line."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ember.cli.main import cli
from ember.config import Settings
from ember.ops.checks_models import check_memory
from ember.ops.checks_system import check_cpu, check_selinux
from ember.ops.doctor import DoctorContext
from tests.conftest import BUNDLED
from tests.registry_fixture import OciRegistry, oci_registry  # noqa: F401 - the fixture is used by name
from tests.server_harness import RunningServer, free_port, start_server

VENV_EMBER = Path(sys.executable).with_name("ember")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A clean Ember environment in tmp_path; tests add to it before calling doctor()."""
    for name in list(os.environ):
        if name.startswith(("EMBER_", "OLLAMA_")):
            monkeypatch.delenv(name)
    values = {"EMBER_HOME": str(tmp_path / "home"), "EMBER_MODELS": str(tmp_path / "models"),
              "EMBER_HOST": f"127.0.0.1:{free_port()}", "EMBER_WEB_HOST": f"127.0.0.1:{free_port()}"}
    return values


def doctor(env: dict[str, str], *checks: str, model: str | None = None) -> tuple[int, list[dict[str, str]]]:
    args = ["doctor", "--json", *[f"--check={c}" for c in checks], *(["--model", model] if model else [])]
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    report = json.loads(result.output)
    assert report["exit_code"] == result.exit_code
    assert all(f["fix"] for f in report["findings"])
    return result.exit_code, report["findings"]


def only(findings: list[dict[str, str]], check: str) -> dict[str, str]:
    matching = [f for f in findings if f["check"] == check]
    assert len(matching) == 1, findings
    return matching[0]


# -- temp directory ------------------------------------------------------------------------------


@pytest.fixture
def noexec_dir() -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="ember-noexec-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,size=64m", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def test_noexec_tmpdir_is_reported_and_not_a_failure(env: dict[str, str], noexec_dir: Path) -> None:
    code, findings = doctor({**env, "EMBER_TMPDIR": str(noexec_dir)}, "tmpdir")
    assert code == 0
    finding = only(findings, "tmpdir")
    assert finding["result"] == "INFO" and "noexec" in finding["detail"] and str(noexec_dir) in finding["detail"]


def test_a_model_runs_with_tmpdir_on_a_noexec_mount(tmp_path: Path, noexec_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim behind that INFO: runners inherit TMPDIR and still load and generate."""
    monkeypatch.setenv("TMPDIR", str(noexec_dir))
    server = start_server(tmp_path / "models")
    try:
        with server.client() as client:
            answer = client.post("/api/generate", json={"model": BUNDLED, "prompt": "Hi", "stream": False,
                                                        "options": {"num_predict": 4}})
        assert answer.status_code == 200 and answer.json()["eval_count"] > 0
        loaded = next(iter(server.services.scheduler.loaded.values()))
        pid = loaded.runner.pid  # type: ignore[attr-defined]
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"TMPDIR={noexec_dir}".encode() in environ
    finally:
        server.stop()


def test_missing_tmpdir_fails(env: dict[str, str], tmp_path: Path) -> None:
    code, findings = doctor({**env, "EMBER_TMPDIR": str(tmp_path / "nope")}, "tmpdir")
    assert code == 1 and only(findings, "tmpdir")["result"] == "FAIL"


# -- ports and exposure ----------------------------------------------------------------------------


@pytest.fixture
def port_holder() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    code = ("import socket, sys, time\n"
            f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n"
            "print('listening', flush=True); time.sleep(120)\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "listening"
    yield port, process
    process.kill()
    process.wait(10)


def test_a_taken_port_names_the_process(env: dict[str, str],
                                        port_holder: tuple[int, subprocess.Popen[str]]) -> None:
    port, process = port_holder
    code, findings = doctor({**env, "EMBER_HOST": f"127.0.0.1:{port}", "EMBER_ROLE": "engine"}, "port")
    assert code == 1
    finding = only(findings, "port")
    assert finding["result"] == "FAIL" and f"pid {process.pid}" in finding["detail"] and "-c" in finding["detail"]
    assert f"stop pid {process.pid}" in finding["fix"]


def test_free_ports_pass(env: dict[str, str]) -> None:
    code, findings = doctor(env, "port")
    assert code == 0 and [f["result"] for f in findings] == ["PASS", "PASS"]  # engine and web


@pytest.mark.parametrize(("extra", "verdict", "code"), [
    ({}, "FAIL", 1),
    ({"EMBER_ALLOW_OPEN_ENGINE": "1"}, "WARN", 0),
    ({"EMBER_ENGINE_KEY": "s3cret"}, "PASS", 0),
])
def test_an_engine_bound_off_loopback_needs_a_key(env: dict[str, str], extra: dict[str, str], verdict: str,
                                                  code: int) -> None:
    found_code, findings = doctor({**env, "EMBER_HOST": "0.0.0.0:11434", "EMBER_ROLE": "engine", **extra},
                                  "exposure")
    assert found_code == code and only(findings, "exposure")["result"] == verdict


# -- the models directory --------------------------------------------------------------------------


def test_a_closed_models_dir_fails_for_a_non_root_user(tmp_path: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot run doctor as a non-root user")
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the nobody user")
    base = Path(tempfile.mkdtemp(prefix="ember-closed-"))
    try:
        base.chmod(0o755)
        models = base / "models"
        (models / "manifests").mkdir(parents=True)
        models.chmod(0o000)
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(VENV_EMBER), "doctor",
                   "--json", "--check=models_dir"]
        env = {"PATH": os.environ["PATH"], "EMBER_HOME": str(base / "home"), "EMBER_MODELS": str(models)}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result.stderr
        finding = json.loads(result.stdout)["findings"][0]
        assert finding["result"] == "FAIL" and "not readable and traversable" in finding["detail"]
        assert "uid 65534" in finding["detail"] and "chown" in finding["fix"]
    finally:
        (base / "models").chmod(0o755)
        shutil.rmtree(base)


def test_root_is_told_it_bypasses_permissions(env: dict[str, str], tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root bypasses permissions")
    (tmp_path / "models").mkdir()
    (tmp_path / "models").chmod(0o000)
    try:
        code, findings = doctor(env, "models_dir")
    finally:
        (tmp_path / "models").chmod(0o755)
    assert code == 0 and "bypasses permissions" in only(findings, "models_dir")["detail"]


def test_a_stale_partial_download_is_found_and_a_pull_in_progress_is_not(env: dict[str, str],
                                                                          tmp_path: Path) -> None:
    blobs = tmp_path / "models" / "blobs"
    blobs.mkdir(parents=True)
    stale = blobs / ("sha256-" + "a" * 64 + "-partial")
    stale.write_bytes(b"x" * 4096)
    busy = blobs / ("sha256-" + "b" * 64 + "-partial")
    busy.write_bytes(b"y" * 4096)
    old = time.time() - 3600
    for path in (stale, busy):
        os.utime(path, (old, old))
    with busy.open("ab") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # as a running pull holds it
        code, findings = doctor(env, "partials")
    finding = only(findings, "partials")
    assert code == 0 and finding["result"] == "WARN"
    assert "1 leftover" in finding["detail"] and stale.name[:40] in finding["detail"]
    assert "b" * 30 not in finding["detail"]
    assert "rm " in finding["fix"]


def test_no_partials_pass(env: dict[str, str]) -> None:
    assert doctor(env, "partials") == (0, [{"check": "partials", "result": "PASS", "fix": "nothing to do",
                                             "detail": "no readable blobs directory, so no leftover downloads"}])


# -- memory ----------------------------------------------------------------------------------------


def test_too_little_memory_fails_naming_the_need(env: dict[str, str]) -> None:
    code, findings = doctor({**env, "EMBER_DOCTOR_MEMORY_LIMIT": "300M"}, "memory")
    assert code == 1
    finding = only(findings, "memory")
    assert finding["result"] == "FAIL" and BUNDLED in finding["detail"] and "300.0 MiB available" in finding["detail"]
    assert "OLLAMA_NUM_PARALLEL" in finding["fix"]


def test_enough_memory_passes_and_a_smaller_cache_shrinks_the_need(env: dict[str, str]) -> None:
    code, findings = doctor({**env, "EMBER_DOCTOR_MEMORY_LIMIT": "4G"}, "memory")
    assert code == 0 and only(findings, "memory")["result"] == "PASS"
    code, findings = doctor({**env, "EMBER_DOCTOR_MEMORY_LIMIT": "500M", "OLLAMA_NUM_PARALLEL": "1"}, "memory")
    assert code == 0 and "num_ctx 4096 x 1 parallel" in only(findings, "memory")["detail"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("models"))
    yield running
    running.stop()


def test_the_kv_cache_estimate_matches_what_the_runner_allocates(engine: RunningServer) -> None:
    with engine.client() as client:
        client.post("/api/generate", json={"model": BUNDLED, "options": {"num_ctx": 1024}})
        loaded = next(m for m in client.get("/api/ps").json()["models"] if m["name"] == BUNDLED)
    settings = Settings.from_env({}, models_dir=engine.settings.models_path, context_length=1024,
                                 num_parallel=engine.settings.num_parallel, doctor_memory_limit=1 << 40)
    finding = check_memory(DoctorContext(settings))[0]
    runner_kv = loaded["kv_size_per_slot"] * engine.settings.num_parallel  # what llama.cpp allocated
    estimate = float(finding.detail.split("KV cache ")[1].split(" MiB")[0]) * (1 << 20)
    assert abs(estimate - runner_kv) <= 0.02 * runner_kv, (estimate, runner_kv)


# -- services --------------------------------------------------------------------------------------


def test_reachable_postgres_redis_and_engine_pass(env: dict[str, str], engine: RunningServer) -> None:
    code, findings = doctor({**env, "EMBER_ROLE": "web", "EMBER_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
                             "EMBER_REDIS_URL": "redis://127.0.0.1:6379/0", "EMBER_ENGINES": engine.url},
                            "database", "redis", "engines")
    assert code == 0, findings
    assert [(f["check"], f["result"]) for f in findings] == [("database", "PASS"), ("redis", "PASS"),
                                                             ("engines", "PASS")]


def test_unreachable_services_fail(env: dict[str, str]) -> None:
    closed = free_port()
    code, findings = doctor({**env, "EMBER_ROLE": "web",
                             "EMBER_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed}/test",
                             "EMBER_REDIS_URL": f"redis://127.0.0.1:{closed}/0",
                             "EMBER_ENGINES": f"http://127.0.0.1:{closed}"}, "database", "redis", "engines")
    assert code == 1
    assert [(f["check"], f["result"]) for f in findings] == [("database", "FAIL"), ("redis", "FAIL"),
                                                             ("engines", "FAIL")]
    assert "unreachable" in findings[2]["detail"] and "NetworkPolicy" in findings[2]["fix"]


def test_an_engine_that_is_not_ready_fails_naming_the_check(env: dict[str, str], tmp_path: Path) -> None:
    broken = start_server(tmp_path / "engine-models", bundled_model="")
    try:
        shutil.rmtree(broken.settings.models_path / "manifests")
        code, findings = doctor({**env, "EMBER_ROLE": "web", "EMBER_ENGINES": broken.url}, "engines")
    finally:
        broken.stop()
    assert code == 1 and findings[0]["result"] == "FAIL"
    assert "not ready: store: cannot read" in findings[0]["detail"]


# -- one model by name -----------------------------------------------------------------------------


def test_model_in_the_store_is_sized(env: dict[str, str], engine: RunningServer) -> None:
    code, findings = doctor({**env, "EMBER_MODELS": str(engine.settings.models_path),
                             "EMBER_DOCTOR_MEMORY_LIMIT": "100M"}, "model", model=BUNDLED)
    finding = only(findings, "model")
    assert code == 1 and finding["result"] == "FAIL" and "will not fit" in finding["detail"]


def test_a_model_in_a_registry_is_sized_before_the_pull(env: dict[str, str], engine: RunningServer,
                                                        oci_registry: OciRegistry) -> None:  # noqa: F811
    remote = f"{oci_registry.host}/library/doctor:135m"
    with engine.client() as client:
        assert client.post("/api/copy", json={"source": BUNDLED, "destination": remote}).status_code == 200
        pushed = client.post("/api/push", json={"model": remote, "insecure": True, "stream": False})
        assert pushed.status_code == 200, pushed.text
    name = f"http://{remote}"
    code, findings = doctor({**env, "EMBER_DOCTOR_MEMORY_LIMIT": "4G"}, "model", model=name)
    assert code == 0, findings
    disk, memory = findings
    assert disk["result"] == "PASS" and "93.8 MiB to download" in disk["detail"]
    assert memory["result"] == "PASS" and "file 93.8 MiB" in memory["detail"]
    code, findings = doctor({**env, "EMBER_DOCTOR_MEMORY_LIMIT": "200M"}, "model", model=name)
    assert code == 1 and findings[1]["result"] == "FAIL" and "will not fit" in findings[1]["detail"]
    assert not (Path(env["EMBER_MODELS"]) / "manifests").exists()  # sized without pulling anything


def test_a_model_no_registry_has_fails(env: dict[str, str]) -> None:
    code, findings = doctor(env, "model", model=f"http://127.0.0.1:{free_port()}/library/none:1b")
    assert code == 1 and "registry manifest could not be read" in only(findings, "model")["detail"]


# -- host facts from a fake /proc and /sys ---------------------------------------------------------


def test_cpu_features_are_explained(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f amx_tile amx_int8\n")
    verdicts = {f.detail.split(":")[0]: f.verdict for f in check_cpu(DoctorContext(Settings(), proc=tmp_path))}
    assert verdicts["AVX2"] == "PASS" and verdicts["AVX-512"] == "INFO" and verdicts["AMX"] == "INFO"
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu sse2 avx\n")
    old = [f for f in check_cpu(DoctorContext(Settings(), proc=tmp_path)) if f.verdict == "WARN"]
    assert len(old) == 1 and "no AVX2" in old[0].detail


def test_selinux_mode_is_read(tmp_path: Path) -> None:
    enforce = tmp_path / "fs" / "selinux" / "enforce"
    enforce.parent.mkdir(parents=True)
    enforce.write_text("1\n")
    finding = check_selinux(DoctorContext(Settings(), sys=tmp_path))[0]
    assert finding.verdict == "INFO" and "enforcing" in finding.detail and "restorecon" in finding.fix
    enforce.write_text("0\n")
    assert "permissive" in check_selinux(DoctorContext(Settings(), sys=tmp_path))[0].detail


def test_a_cgroup_limit_caps_available_memory(tmp_path: Path) -> None:
    proc, sys_dir = tmp_path / "proc", tmp_path / "sys"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("0::/pod/ember\n")
    (proc / "meminfo").write_text("MemTotal: 64000000 kB\nMemAvailable: 32000000 kB\n")
    group = sys_dir / "fs" / "cgroup" / "pod" / "ember"
    group.mkdir(parents=True)
    (group / "memory.max").write_text(str(512 << 20))
    (group / "memory.current").write_text(str(12 << 20))
    from ember.ops.checks_models import available_memory

    context = DoctorContext(Settings(), proc=proc, sys=sys_dir)
    assert available_memory(context) == (500 << 20, "the cgroup's memory.max")
    (group / "memory.max").write_text("max\n")
    assert available_memory(context) == (32000000 * 1024, "MemAvailable")



@pytest.mark.parametrize(("command", "ember"), [
    ("/opt/ember/.venv/bin/python3 /opt/ember/.venv/bin/ember serve", True),
    ("python -m ember.cli.main serve --role engine", True),
    ("ollama serve", False),
    ("/usr/bin/python3 -m http.server 11434", False),
])
def test_an_ember_server_holding_the_port_is_recognised(command: str, ember: bool) -> None:
    from ember.ops.checks_network import _is_ember_server

    assert _is_ember_server(command) is ember


def test_a_privileged_port_fails_for_a_non_root_user(tmp_path: Path) -> None:
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run doctor as the nobody user")
    start = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    if start.exists() and int(start.read_text()) <= 81:
        pytest.skip("this kernel lets any user bind port 81 (net.ipv4.ip_unprivileged_port_start)")
    command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(VENV_EMBER), "doctor", "--json",
               "--check=port"]
    env = {"PATH": os.environ["PATH"], "EMBER_HOME": str(tmp_path), "EMBER_ROLE": "engine",
           "EMBER_HOST": "127.0.0.1:81"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    finding = json.loads(result.stdout)["findings"][0]
    assert result.returncode == 1 and finding["result"] == "FAIL" and "CAP_NET_BIND_SERVICE" in finding["fix"]
