#!/usr/bin/env bash
# Build preflog's base image from Debian packages, without any container registry:
# debootstrap (minbase) of bookworm with Python 3.11, imported into podman as IMAGE.
#
#   deploy/container/build-base.sh [IMAGE]        # default localhost/preflog-base:bookworm
#   deploy/container/build-base.sh --force IMAGE  # rebuild even if IMAGE exists
#
# Idempotent: when IMAGE already exists and was made by this recipe (label
# org.preflog.base-recipe), nothing is done, so repeated builds and test runs cost nothing.
# Needs root (debootstrap), debootstrap and podman: apt-get install podman buildah debootstrap runc
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian), SUITE (default bookworm).
set -euo pipefail

force=0
if [[ "${1:-}" == "--force" ]]; then
    force=1
    shift
fi
image="${1:-localhost/preflog-base:bookworm}"
suite="${SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3 + python3-venv: the interpreter and `python3 -m venv` (Debian splits ensurepip out);
# ca-certificates: TLS to Kafka, Schema Registry and S3; tini: PID 1 that forwards signals and reaps children.
packages="python3,python3-venv,ca-certificates,tini"
recipe="4:${suite}:${packages}"  # bump the leading number when the steps below change

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=deploy/container/podman-env.sh
source "$here/podman-env.sh"
# one base build at a time on this machine; a second caller then finds the image made
exec 9>"${TMPDIR:-/tmp}/preflog-container-base.lock"
flock 9

if [[ $force == 0 ]] && podman image exists "$image"; then
    have="$(podman image inspect --format '{{ index .Labels "org.preflog.base-recipe" }}' "$image" 2>/dev/null || true)"
    if [[ "$have" == "$recipe" ]]; then
        echo "base image $image is up to date (recipe $recipe)"
        exit 0
    fi
    echo "base image $image was made by recipe '${have}', rebuilding for '$recipe'"
fi

for tool in debootstrap podman; do
    command -v "$tool" >/dev/null || { echo "$tool missing: apt-get install podman buildah debootstrap runc" >&2; exit 2; }
done

start=$(date +%s)
work="$(mktemp -d "${TMPDIR:-/var/tmp}/preflog-base.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 40 "$work/debootstrap.log" >&2
    exit 1
}

# A base for images, not a machine: apt sources for later layers, no package caches, docs or locales
# (the compiled Python files stay: a read-only container could not write them, and would compile at each start).
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
EOF
# debootstrap installs the suite's packages as released; the security and point updates come from apt
chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update -qq && apt-get dist-upgrade -y -qq' \
    >>"$work/debootstrap.log" 2>&1 || {
    tail -n 40 "$work/debootstrap.log" >&2
    exit 1
}
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
    "$root"/var/log/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/tmp/* "$root"/var/tmp/*
# debootstrap writes the build machine's resolv.conf and hostname; podman supplies both at run time.
: >"$root/etc/resolv.conf"
rm -f "$root/etc/hostname"

tar --numeric-owner -C "$root" -c . | podman import --quiet \
    --change 'CMD ["/bin/bash"]' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL org.preflog.base-recipe=$recipe" \
    - "$image" >/dev/null
echo "built base image $image in $(($(date +%s) - start)) s ($(podman image inspect --format '{{.Size}}' "$image") bytes)"
