#!/bin/sh
# A Debian-based Python base image made from Debian's packages, for building the Dockerfile
# where the registry's python image cannot be pulled:
#
#   buildah bud --build-arg PYTHON_IMAGE="$(sh hack/python-base-image.sh)" .
#
# Prints the image's name. The root filesystem (debootstrap, about a minute) is cached as a
# tarball under ~/.cache/placement-operator/images, beside the control-plane tools, so later
# runs only import it. Needs root, debootstrap and buildah.
set -eu

name="${1:-localhost/placement-python-base:bookworm}"
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/placement-operator/images"
tarball="$cache/python-base-$suite.tar"

if buildah inspect --type image "$name" >/dev/null 2>&1; then
    echo "$name"
    exit 0
fi

if [ ! -s "$tarball" ]; then
    mkdir -p "$cache"
    root="$(mktemp -d)"
    trap 'rm -rf "$root"' EXIT
    # python3-venv: the build stage makes /opt/venv with `python3 -m venv` (ensurepip inside).
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$suite" "$root" "$mirror" >&2
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
    tar -C "$root" --numeric-owner -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
fi

container="$(buildah from scratch)"
buildah add --quiet "$container" "$tarball" / >/dev/null  # a local tarball is unpacked
# The CAs this host trusts beyond Debian's (a company's, a TLS-inspecting proxy's), so pip in
# the build stage reaches the package index as the host does; pip uses the system bundle.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    buildah add --quiet "$container" /usr/local/share/ca-certificates/ \
        /usr/local/share/ca-certificates/ >/dev/null
    buildah run --isolation chroot "$container" update-ca-certificates >/dev/null
fi
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"${TMPDIR:-/tmp}/pip.conf.$$"
buildah add --quiet "$container" "${TMPDIR:-/tmp}/pip.conf.$$" /etc/pip.conf >/dev/null
rm -f "${TMPDIR:-/tmp}/pip.conf.$$"
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$container"
buildah commit --quiet --rm "$container" "$name" >/dev/null
echo "$name"
