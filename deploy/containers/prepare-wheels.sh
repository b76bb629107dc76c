#!/usr/bin/env bash
# Fill deploy/containers/wheels/ with every wheel the image needs, so the image builds with no network.
# llama-cpp-python has no binary wheel on PyPI: pip builds it once (5-10 min on 2 cores) and reuses its cache after.
# The wheels must match the image's Python (3.11) and C library (glibc 2.36 on bookworm, or older).
# usage: deploy/containers/prepare-wheels.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:-python3}
# pip resolves markers for the host's Python; bookworm's is 3.11.2, where redis also needs async-timeout
# (python_full_version < "3.11.3"), so it is named here.
"$PY" -m pip wheel -q -w deploy/containers/wheels . 'setuptools>=77' wheel 'async-timeout>=4.0.3'
ls deploy/containers/wheels | grep -c '\.whl$' | xargs echo "wheels:"
