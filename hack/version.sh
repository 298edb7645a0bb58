#!/bin/sh
# The release version has one source: `version` in pyproject.toml. The chart's version and
# appVersion and the package's __version__ must repeat it; the release workflow and
# tests/packaging/test_release.py run this script.
#
#   sh hack/version.sh            print the version
#   sh hack/version.sh check [TAG]  fail unless every copy (and the tag vX.Y.Z) agrees
set -eu

root="$(cd "$(dirname "$0")/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml")"
[ -n "$version" ] || { echo "no version in pyproject.toml" >&2; exit 1; }

if [ "${1:-}" != check ]; then
    echo "$version"
    exit 0
fi

chart="$root/charts/placement-operator/Chart.yaml"
status=0
expect() {  # what, found
    if [ "$2" != "$version" ]; then
        echo "$1 is '$2', pyproject.toml says '$version'" >&2
        status=1
    fi
}
expect "Chart.yaml version" "$(sed -n 's/^version: *//p' "$chart")"
expect "Chart.yaml appVersion" "$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$chart")"
expect "placement.__version__" \
    "$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/operator/placement/__init__.py")"
if [ -n "${2:-}" ]; then
    expect "the tag $2 (without its v)" "${2#v}"
fi
[ "$status" = 0 ] && echo "$version"
exit "$status"
