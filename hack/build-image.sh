#!/bin/sh
# Build the Dockerfile without a Docker engine: buildah with chroot isolation (no daemon, no
# user namespaces), as the tests do. Users build with `docker build -t IMAGE .`; this is the
# same Dockerfile.
#
#   sh hack/build-image.sh [IMAGE]        (default localhost/placement-operator:dev)
#
# The base is the Dockerfile's PYTHON_IMAGE when the registry answers, else a Debian-based
# Python made from Debian's packages (hack/python-base-image.sh). Needs root and buildah.
set -eu

image="${1:-localhost/placement-operator:dev}"
source_dir="$(cd "$(dirname "$0")/.." && pwd)"
default_base="$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$source_dir/Dockerfile")"

if buildah inspect --type image "$default_base" >/dev/null 2>&1 \
    || buildah pull --quiet "docker.io/library/$default_base" >/dev/null 2>&1; then
    base="$default_base"
else
    echo "build-image: $default_base cannot be pulled; using a Python base from Debian's packages" >&2
    base="$(sh "$source_dir/hack/python-base-image.sh")"
fi

buildah bud --isolation chroot --layers --quiet \
    --build-arg "PYTHON_IMAGE=$base" --tag "$image" "$source_dir" >&2
echo "$image"
