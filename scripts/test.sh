#!/usr/bin/env bash
# Install everything the test suites need on a fresh machine, then run checks and tests.
# Usage: bash scripts/test.sh [--quick]   (--quick skips the slow suites)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
[ -x /usr/bin/chromium ] || need_apt+=(chromium fonts-liberation)  # the web UI's browser tests (Playwright)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  else
    echo "missing Debian packages: ${need_apt[*]} (run as root, or install them)" >&2
  fi
fi

# deploy/ tests: systemd-analyze, helm, kubectl; the slow suite also podman, checkov and a kube-apiserver (.tools/)
bash scripts/deploy-tools.sh "${1:-}"
export PATH="$PWD/.tools/bin:$PWD/.tools/kube/bin:$PATH"

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q -e '.[test,bench]'

ruff check src tests bench
mypy
if [ "${1:-}" = "--quick" ]; then
  pytest -q -m "not slow"
else
  pytest -q -m "not slow"
  # the browser suite runs against SQLite and the machine's PostgreSQL
  EMBER_UI_DATABASES=sqlite,postgres pytest -q -m slow || [ $? = 5 ]  # 5: no slow tests selected
fi
