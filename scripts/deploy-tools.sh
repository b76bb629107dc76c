#!/usr/bin/env bash
# Tools the deploy/ tests use, installed where missing (scripts/test.sh calls this):
#   always:       systemd-analyze (Debian `systemd`), helm and kubectl (scripts/install-helm.sh, into .tools/bin)
#   slow suite:   podman + debootstrap (image build), checkov (its own venv, in the cache below),
#                 etcd and kube-apiserver v1.20 built from Debian's `kubernetes` source package (.tools/kube/bin,
#                 kept between runs: the build takes ~10 minutes on 2 cores)
# usage: scripts/deploy-tools.sh [--quick]      Debian packages need root; without it they are reported and the
# tests that need them skip with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=$PWD/.tools
# The slow builds (kube-apiserver ~10 min, checkov's venv) live in a per-user cache, like pip's wheel cache, so a
# fresh clone on the same machine reuses them; .tools/ only links to them.
CACHE=${EMBER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ember-tools}
mkdir -p "$TOOLS/bin" "$CACHE/kube/bin"
[ -e "$TOOLS/kube" ] || ln -s "$CACHE/kube" "$TOOLS/kube"
export PATH="$TOOLS/bin:$PATH"
quick=${1:-}

apt_install() {
  if [ "$(id -u)" != 0 ]; then echo "deploy tests: missing Debian packages: $* (run as root)" >&2; return 0; fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ "$quick" != --quick ]; then
  command -v podman >/dev/null 2>&1 || need+=(podman runc uidmap fuse-overlayfs slirp4netns)
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
fi
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

command -v helm >/dev/null 2>&1 || bash scripts/install-helm.sh "$TOOLS/bin"

[ "$quick" != --quick ] || exit 0

if ! command -v checkov >/dev/null 2>&1; then
  [ -x "$CACHE/checkov/bin/checkov" ] || { python3 -m venv "$CACHE/checkov" && "$CACHE/checkov/bin/pip" install -q checkov; }
  ln -sf "$CACHE/checkov/bin/checkov" "$TOOLS/bin/checkov"
fi

build_kube_apiserver() (
  # Debian ships Kubernetes 1.20's full source (vendored) but no server binaries; its Go 1.19 builds them.
  # A subshell: the temporary deb-src list and the 2.3 GB build tree go away however it ends.
  list=/etc/apt/sources.list.d/ember-deb-src.sources
  work=$(mktemp -d)
  trap 'rm -f "$list"; rm -rf "$work"' EXIT
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$list"
  apt-get update -qq -o Dir::Etc::sourcelist="$list" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go dpkg-dev rsync openssl
  cd "$work"
  apt-get source -qq --download-only kubernetes
  dpkg-source -x --no-check kubernetes_*.dsc src
  # The Makefile's code generators need rsync; CGO off gives a static binary.
  cd src && CGO_ENABLED=0 make WHAT=cmd/kube-apiserver
  mkdir -p "$TOOLS/kube/bin"
  cp _output/bin/kube-apiserver "$TOOLS/kube/bin/"
)
if [ ! -x "$TOOLS/kube/bin/kube-apiserver" ] && ! command -v kube-apiserver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    start=$(date +%s)
    build_kube_apiserver
    echo "kube-apiserver built in $(( $(date +%s) - start )) s"
  else
    echo "deploy tests: kube-apiserver is missing and building it needs root" >&2
  fi
fi
