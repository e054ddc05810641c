#!/usr/bin/env bash
# Lab 02: network namespaces and a veth pair, the article's r1/r2 ping; then
# the same shape bocker gives a container (one end on a bridge, a default route).
#
# Concept: a network namespace has its own network stack: its own interfaces,
# addresses, routes, firewall and sockets. A new one holds only `lo`, and that
# is down. A veth pair is a virtual cable: two interfaces, what goes in one
# comes out of the other; move each end into a namespace and they can talk.
# `ip netns add NAME` makes a namespace and keeps it alive by a bind mount on
# /run/netns/NAME; `ip netns exec NAME CMD` runs CMD in it (as nsenter --net).
# A bridge is a virtual switch: bocker plugs the host's end of every
# container's pair into br1 (172.18.0.1), the containers' gateway.
#
# Read: network_namespaces(7), veth(4), ip-netns(8), ip-link(8), ip-address(8),
#       ip-route(8)
#       https://man7.org/linux/man-pages/man7/network_namespaces.7.html
#       https://man7.org/linux/man-pages/man4/veth.4.html
#
# In bocker: bocker_run's ten `ip` lines (bocker.py: setup()); the end of the
# output names them. The addresses here exist only inside the sandbox's own
# network namespace (tests/sandbox.py), so none of it is seen on the host.
#
# Run: labs/02-veth-netns.sh (as root; it runs itself in a sandbox), or make labs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
sandboxed "$@"

trap 'for n in r1 r2 c1; do ip netns del $n 2>/dev/null || true; done; ip link del br-lab 2>/dev/null || true' EXIT

say 'a veth pair: two linked interfaces, both here for now (and down)'
run 'ip link add veth0_11 type veth peer name veth1_11'
run 'ip -br link show type veth'
say 'two network namespaces; each end of the cable goes into one'
run 'ip netns add r1'
run 'ip netns add r2'
run 'ip netns list'
run 'ip link set veth0_11 netns r1'
run 'ip link set veth1_11 netns r2'
say 'gone from here: an interface is in exactly one network namespace'
run 'ip -br link show type veth'
say 'in r1: only lo (down) and our end of the cable'
run 'ip netns exec r1 ip -br link'
run 'ip netns exec r1 ip addr add 172.18.0.11/24 dev veth0_11'
run 'ip netns exec r1 ip link set veth0_11 up'
run 'ip netns exec r2 ip addr add 172.18.0.12/24 dev veth1_11'
run 'ip netns exec r2 ip link set veth1_11 up'
run 'ip netns exec r2 ip -br addr show dev veth1_11'
say 'r1 pings r2 across the cable, and back (busybox ping: Debian 12 has no ping by default)'
run 'ip netns exec r1 busybox ping -c 2 172.18.0.12'
run 'ip netns exec r2 busybox ping -c 1 172.18.0.11'
say 'lo is down in a new namespace: even 127.0.0.1 is unreachable until it is up'
run 'ip netns exec r1 busybox ping -c 1 127.0.0.1 2>&1 || true'
run 'ip netns exec r1 ip link set dev lo up'
run 'ip netns exec r1 busybox ping -c 1 127.0.0.1'

say 'as bocker does it: the host end on a bridge, the other in the container'\''s namespace'
run 'ip link add br-lab type bridge'
run 'ip addr add 172.19.0.1/24 dev br-lab'
run 'ip link set br-lab up'
run 'ip link add dev veth0_c1 type veth peer name veth1_c1'
run 'ip link set dev veth0_c1 up'
run 'ip link set veth0_c1 master br-lab'
run 'ip netns add c1'
run 'ip link set veth1_c1 netns c1'
run 'ip netns exec c1 ip link set dev lo up'
say 'a MAC of 02:42:ac:11:...: 02 = locally administered, unicast (no vendor'\''s); 02:42 is Docker'\''s'
say 'prefix, ac:11 = 172.17 in hex (Docker'\''s default network); bocker keeps it, then 00:<last digits>'
run 'ip netns exec c1 ip link set veth1_c1 address 02:42:ac:11:00:02'
run 'ip netns exec c1 ip addr add 172.19.0.2/24 dev veth1_c1'
run 'ip netns exec c1 ip link set dev veth1_c1 up'
say 'without a default route the container reaches only its own /24; via .1 (the bridge) it reaches the host'
run 'ip netns exec c1 ip route add default via 172.19.0.1'
run 'ip netns exec c1 ip route'
run 'ip -br link show master br-lab'
run 'ip netns exec c1 busybox ping -c 1 172.19.0.1'
run 'busybox ping -c 1 172.19.0.2'
say 'bocker'\''s cleanup: deleting one end of a veth pair deletes its peer, in whichever namespace'
run 'ip link del dev veth0_c1'
run 'ip netns exec c1 ip -br link'
run 'ip netns del c1'
in_bocker 'ip link add dev veth0_"$uuid" type veth' 'ip link set veth0_"$uuid" master br1' \
	'ip netns add netns_"$uuid"' 'ip link set veth1_"$uuid" netns' 'ip link set dev lo up' \
	'address 02:42:ac:11:00' 'ip route add default via 172.18.0.1' 'ip netns exec netns_"$uuid" \' \
	'ip link del dev veth0_"$uuid"' 'ip netns del netns_"$uuid"'
