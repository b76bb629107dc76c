#!/usr/bin/env bash
# Fetch the web UI's third-party browser libraries from npm at pinned versions, with their licences, into
# src/ember/web/static/vendor/. The result is committed, so installing Ember needs no Node.js.
#
# To update: change a version below, run this script (needs npm and the npm registry), check the UI tests
# (pytest tests/web tests/ui), and commit the changed files under src/ember/web/static/vendor/.
set -euo pipefail

MARKED=18.2.1
DOMPURIFY=3.4.18
HIGHLIGHT=11.12.0

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/src/ember/web/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fetch() {  # fetch SPEC DIRNAME: unpack the package's tarball into $work/DIRNAME and record its integrity
  local spec="$1" dir="$2"
  (cd "$work" && npm pack --silent --json "$spec" > "$dir.json")
  mkdir -p "$work/$dir"
  tar xzf "$work/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["filename"])' "$work/$dir.json")" \
    -C "$work/$dir" --strip-components=1
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))[0]; print(d["name"] + "@" + d["version"], d["integrity"])' \
    "$work/$dir.json" >> "$work/VERSIONS"
}

fetch "marked@$MARKED" marked
fetch "dompurify@$DOMPURIFY" dompurify
fetch "@highlightjs/cdn-assets@$HIGHLIGHT" highlight

rm -rf "$dest"
mkdir -p "$dest/marked" "$dest/dompurify" "$dest/highlight"
cp "$work/marked/lib/marked.umd.js" "$work/marked/LICENSE" "$dest/marked/"
cp "$work/dompurify/dist/purify.min.js" "$work/dompurify/LICENSE" "$dest/dompurify/"
cp "$work/highlight/highlight.min.js" "$work/highlight/LICENSE" "$dest/highlight/"
cp "$work/highlight/styles/github.min.css" "$work/highlight/styles/github-dark.min.css" "$dest/highlight/"
{
  echo "Fetched by scripts/fetch-web-vendor.sh from the npm registry; do not edit by hand."
  echo "package@version and the npm tarball's integrity:"
  cat "$work/VERSIONS"
} > "$dest/VERSIONS.txt"
# The bundles end with a sourceMappingURL comment for files we do not ship; browsers would request them.
sed -i '/^\/\/# sourceMappingURL=/d' "$dest/marked/marked.umd.js" "$dest/dompurify/purify.min.js"
echo "vendor libraries in $dest:"
cat "$dest/VERSIONS.txt"
