"""Doctor checks about the host: the temp directory's mount, SELinux, CPU features."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ember.ops.findings import FAIL, INFO, PASS, WARN, Check, DoctorContext, Finding

_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    point: Path
    fstype: str
    options: frozenset[str]


def mounts(proc: Path) -> list[Mount]:
    """Mount points from mountinfo (per-mount options are field 6; escapes like \\040 undone)."""
    found = []
    for line in (proc / "self" / "mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 6:
            continue
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
        found.append(Mount(Path(point), right.split()[0] if right else "", frozenset(fields[5].split(","))))
    return found


def mount_of(path: Path, proc: Path) -> Mount | None:
    """The mount ``path`` is on: the longest mount point that contains it (the last one mounted wins)."""
    real = path.resolve()
    best: Mount | None = None
    for mount in mounts(proc):
        if (real == mount.point or mount.point in real.parents) and (
                best is None or len(mount.point.parts) >= len(best.point.parts)):
            best = mount
    return best


def check_tmpdir(context: DoctorContext) -> list[Finding]:
    settings = context.settings
    where = (settings.tmpdir.expanduser() if settings.tmpdir else Path(tempfile.gettempdir()))
    source = "EMBER_TMPDIR" if settings.tmpdir else "TMPDIR (or the system default)"
    if not where.is_dir():
        return [Finding("tmpdir", FAIL, f"{where} ({source}) does not exist",
                        f"create it (mkdir -p {where}) or point EMBER_TMPDIR at a writable directory")]
    if not os.access(where, os.W_OK | os.X_OK):
        return [Finding("tmpdir", FAIL, f"{where} ({source}) is not writable by this user",
                        "point EMBER_TMPDIR at a directory the service user can write")]
    mount = mount_of(where, context.proc)
    if mount is not None and "noexec" in mount.options:
        return [Finding("tmpdir", INFO,
                        f"{where} is on {mount.point} ({mount.fstype}), mounted noexec: Ember runs nothing from "
                        "it (runners load llama.cpp's library from the installed package), so this is fine",
                        "nothing to do for Ember; tools that build native code there (pip) need EMBER_TMPDIR or "
                        "TMPDIR on an exec-able mount")]
    return [Finding("tmpdir", PASS, f"{where} is writable" + (f" (on {mount.point})" if mount else ""))]


def check_selinux(context: DoctorContext) -> list[Finding]:
    enforce = context.sys / "fs" / "selinux" / "enforce"
    try:
        mode = "enforcing" if enforce.read_text().strip() == "1" else "permissive"
    except FileNotFoundError:
        return [Finding("selinux", PASS, "SELinux is not enabled on this host")]
    except OSError as exc:
        return [Finding("selinux", INFO, f"cannot read the SELinux mode: {exc.strerror}",
                        "run `getenforce` as root to see it")]
    denials = _recent_denials(Path("/var/log/audit/audit.log"))
    if denials:
        return [Finding("selinux", WARN, f"SELinux is {mode}; {len(denials)} denial(s) in the audit log mention "
                        f"python or ember, e.g. {denials[-1][:160]}",
                        "label the models directory for the service (semanage fcontext -a -t var_lib_t "
                        "'/path/to/models(/.*)?' && restorecon -R /path/to/models), or run `audit2why -a`")]
    mode_fix = ("if runners fail with 'Permission denied' on model files, check `ausearch -m avc -ts recent` "
                "and relabel the models directory (restorecon -R)") if mode == "enforcing" else "nothing to do"
    return [Finding("selinux", INFO, f"SELinux is {mode}; no denials found for python or ember", mode_fix)]


def _recent_denials(log: Path) -> list[str]:
    try:
        with log.open(errors="replace") as fh:
            lines = fh.readlines()[-5000:]
    except OSError:
        return []
    return [line.strip() for line in lines
            if "avc:" in line and "denied" in line and ("python" in line or "ember" in line)]


def cpu_flags(proc: Path) -> set[str]:
    for line in (proc / "cpuinfo").read_text().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.partition(":")[2].split())
    return set()


def check_cpu(context: DoctorContext) -> list[Finding]:
    flags = cpu_flags(context.proc)
    cores = len(os.sched_getaffinity(0))
    found = [Finding("cpu", INFO, f"{cores} CPU core(s) available to this process",
                     "set EMBER_NUM_THREAD to the physical cores a runner may use if the host runs other work")]
    if "avx2" in flags:
        found.append(Finding("cpu", PASS, "AVX2: llama.cpp's fast CPU kernels are available"))
    elif flags:
        found.append(Finding("cpu", WARN, "no AVX2: llama.cpp falls back to slower kernels (expect several "
                             "times fewer tokens/s than on a recent x86 CPU)",
                             "run on a CPU with AVX2 (x86 since 2013), or use a smaller or more quantized model"))
    if "avx512f" in flags:
        found.append(Finding("cpu", INFO, "AVX-512: faster prompt processing for quantized models"))
    if {"amx_int8", "amx_tile"} <= flags:
        found.append(Finding("cpu", INFO, "AMX: Ember turns llama.cpp's weight repacking off on this CPU (its AMX "
                             "kernels crash on the first prompt batch, llama.cpp issue 20824); single-stream "
                             "decode is somewhat slower than it could be, batches work",
                             "nothing to do; bench with `ember bench` to see this machine's numbers"))
    return found


CHECKS: dict[str, Check] = {"tmpdir": check_tmpdir, "selinux": check_selinux, "cpu": check_cpu}
