#!/usr/bin/env bash
# Test hosts on one machine (root): a Linux bridge and one network namespace per host, each with
# a real IPv4 address, so a coordinator and workers talk over their own addresses as on a cluster.
#
#   cluster/netns/hosts.sh up N          # hosts 0..N-1: namespace ${PREFIX}-h<k>, address 10.77.0.(10+k)
#   cluster/netns/hosts.sh exec K CMD... # run CMD on host K
#   cluster/netns/hosts.sh addr K        # print host K's address
#   cluster/netns/hosts.sh down          # remove everything `up` made
#
# PROCLIP_NETNS_PREFIX (default pcl) names the bridge and namespaces; PROCLIP_NETNS_SUBNET (default
# 10.77.0) the /24 they live on. The root namespace gets .1 on the bridge, so it reaches every host.
set -euo pipefail
PREFIX=${PROCLIP_NETNS_PREFIX:-pcl}
SUBNET=${PROCLIP_NETNS_SUBNET:-10.77.0}
BRIDGE="${PREFIX}-br"

need_root() { [ "$(id -u)" -eq 0 ] || { echo "hosts.sh: network namespaces need root" >&2; exit 1; }; }
addr() { echo "${SUBNET}.$((10 + $1))"; }

case "${1:-}" in
up)
    need_root
    n=${2:?usage: hosts.sh up N}
    "$0" down >/dev/null 2>&1 || true
    ip link add "$BRIDGE" type bridge
    ip addr add "${SUBNET}.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    # Bridged frames must not be filtered by the host's firewall (e.g. a FORWARD DROP policy).
    if [ -w /proc/sys/net/bridge/bridge-nf-call-iptables ]; then echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables; fi
    for ((k = 0; k < n; k++)); do
        ns="${PREFIX}-h$k"
        ip netns add "$ns"
        ip link add "${PREFIX}-v$k" type veth peer name "${PREFIX}-p$k"
        ip link set "${PREFIX}-p$k" netns "$ns"
        ip -n "$ns" link set "${PREFIX}-p$k" name eth0
        ip -n "$ns" addr add "$(addr "$k")/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        ip link set "${PREFIX}-v$k" master "$BRIDGE" up
    done
    # Every host reaches every other before we return.
    for ((k = 1; k < n; k++)); do
        for _ in $(seq 50); do
            ip netns exec "${PREFIX}-h0" ping -c1 -W1 "$(addr "$k")" >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
    echo "hosts.sh: $n host(s) up: $(for ((k = 0; k < n; k++)); do printf '%s ' "$(addr "$k")"; done)" >&2
    ;;
exec)
    need_root
    k=${2:?usage: hosts.sh exec K CMD...}
    shift 2
    exec ip netns exec "${PREFIX}-h$k" "$@"
    ;;
addr)
    addr "${2:?usage: hosts.sh addr K}"
    ;;
down)
    need_root
    for ns in $(ip netns list | awk '{print $1}' | grep "^${PREFIX}-h" || true); do ip netns del "$ns"; done
    ip link del "$BRIDGE" 2>/dev/null || true
    ;;
*)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
