#!/usr/bin/env bash
# Build preflog's image from the repository: the Debian base (cached, build-base.sh), then the Containerfile.
#
#   deploy/container/build.sh [IMAGE] [BASE]
#       IMAGE  default localhost/preflog:latest
#       BASE   default localhost/preflog-base:bookworm (made by build-base.sh when missing);
#              any other value (e.g. debian:bookworm-slim) is used as is, pulled if need be.
# Extra podman build options: PODMAN_BUILD_OPTS="--no-cache" deploy/container/build.sh
# PIP_CA_BUNDLE (default: the host's /etc/ssl/certs/ca-certificates.crt) is handed to pip as a build secret,
# for networks whose proxy intercepts TLS; it is not stored in the image. PIP_CA_BUNDLE= (empty) skips it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
image="${1:-localhost/preflog:latest}"
base="${2:-localhost/preflog-base:bookworm}"
# shellcheck source=deploy/container/podman-env.sh
source "$here/podman-env.sh"
# one build at a time on this machine (parallel test workers, two engineers): they share the tag and the base
exec 9>"${TMPDIR:-/tmp}/preflog-container-build.lock"
flock 9

if [[ "$base" == localhost/preflog-base:* ]]; then
    "$here/build-base.sh" "$base"
fi
secret=()
ca="${PIP_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
if [[ -n "$ca" && -s "$ca" ]]; then
    secret=(--secret "id=pip-ca,src=$ca")
fi
previous="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
start=$(date +%s)
# --network host: RUN steps reach PyPI and the Debian mirror through the host's network (no CNI setup needed)
# shellcheck disable=SC2086
podman build --network host --layers "${secret[@]}" ${PODMAN_BUILD_OPTS:-} \
    -f "$here/Containerfile" --build-arg BASE="$base" -t "$image" "$repo"
now="$(podman image inspect --format '{{.Id}}' "$image")"
if [[ -n "$previous" && "$previous" != "$now" ]]; then
    # the image this build replaced, now untagged: drop it unless a container or another tag still uses it
    podman rmi "$previous" >/dev/null 2>&1 || true
fi
echo "built $image in $(($(date +%s) - start)) s ($(podman image inspect --format '{{.Size}}' "$image") bytes)"
