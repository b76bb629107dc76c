#!/usr/bin/env bash
# Build a Debian bookworm base image with Python 3.11 from Debian's archive (debootstrap), for podman builds
# on a host that cannot pull from a registry. Needs root, debootstrap, podman; about 2 minutes.
# usage: deploy/containers/make-base.sh [IMAGE]      (default localhost/ember-base:bookworm)
set -euo pipefail
IMAGE=${1:-localhost/ember-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
# python3-venv for the build stage's venv; libgomp1 is llama.cpp's OpenMP runtime.
debootstrap --variant=minbase --include=python3,python3-venv,libgomp1 bookworm "$ROOT" "$MIRROR"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
tar -C "$ROOT" -c . | podman import - "$IMAGE"
podman image inspect --format '{{.Id}} {{.Size}}' "$IMAGE"
