# Sourced by build-base.sh and build.sh: podman settings for machines (CI runners, containers)
# where podman's defaults fail. Set CONTAINERS_CONF yourself to skip this.
#
# Seen on Debian 12 runners that are themselves containers: crun fails to apply the default
# rlimits and cgroups, runc works once the default ulimits are dropped.
if [[ -z "${CONTAINERS_CONF:-}" ]]; then
    export CONTAINERS_CONF
    CONTAINERS_CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf"
fi
