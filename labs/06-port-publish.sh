#!/usr/bin/env bash
# Lab 06: publishing a port by hand: a DNAT rule between two network namespaces,
# its packet counter, and the localhost case that docker-proxy exists for.
#
# Concept: netfilter's nat table rewrites the first packet of each new
# connection; conntrack then rewrites the rest of it and every reply. DNAT
# changes the destination: a connection to the host's port 8080 becomes one to
# the web server's 172.19.0.2:80, in another network namespace behind a veth
# pair. PREROUTING sees packets that arrive from elsewhere, OUTPUT the host's
# own; `-m addrtype --dst-type LOCAL` keeps the rule to the host's addresses.
# 127.0.0.1 is the odd one: a packet from 127.0.0.1 may not leave by a real
# interface (the kernel drops it as a martian) unless that interface has
# route_localnet=1, and even then the server could not answer 127.0.0.1: it
# has to leave masqueraded. Docker solves it with a process (docker-proxy),
# bocker with those two kernel switches, and a guard: route_localnet would let
# a neighbour send to the host's 127.0.0.1 (CVE-2020-8558), so the raw table
# drops what arrives for 127.0.0.0/8 on that interface.
#
# Read: iptables-extensions(8) (DNAT, MASQUERADE, addrtype, conntrack),
#       iptables(8), conntrack(8), ip-sysctl (route_localnet)
#       https://man7.org/linux/man-pages/man8/iptables-extensions.8.html
#       https://docs.kernel.org/networking/ip-sysctl.html
#
# In bocker: `bocker run -p 8080:80` makes these rules in chains of its own
# (bocker.py: publish(), "Published ports"); the bash has no such step, so the
# lines named at the end are where it wires the address the rule points to.
# Everything here lives in the sandbox's own network namespace (tests/sandbox.py):
# the host's nat table never sees it.
#
# Run: labs/06-port-publish.sh (as root; it runs itself in a sandbox), or make labs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
sandboxed "$@"

www=$(mktemp -d /tmp/port_demo.XXXXXX)
trap 'ip netns pids web 2>/dev/null | xargs -r kill 2>/dev/null || true; ip netns del web 2>/dev/null || true; rm -rf "$www"' EXIT
echo 'served from the web namespace' > "$www/index.html"
get() { curl -sS --noproxy '*' -m 2 "http://$1/" 2>/dev/null || echo "no answer (curl exit $?)"; }

say 'a web server in a network namespace of its own, behind a veth pair (lab 02)'
run 'ip netns add web'
run 'ip link add veth-host type veth peer name veth-web'
run 'ip link set veth-web netns web'
run 'ip addr add 172.19.0.1/24 dev veth-host && ip link set veth-host up'
run 'ip netns exec web ip addr add 172.19.0.2/24 dev veth-web'
run 'ip netns exec web ip link set veth-web up && ip netns exec web ip link set lo up'
run 'ip netns exec web busybox httpd -p 80 -h "$www"'
run 'get 172.19.0.2:80'
say 'the host'\''s own port 8080: nothing listens there'
run 'get 172.19.0.1:8080'
say 'DNAT: a new connection to a local address, port 8080, goes to 172.19.0.2:80 instead'
run 'iptables -t nat -N LAB'
run 'iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j LAB'
run 'iptables -t nat -A OUTPUT -m addrtype --dst-type LOCAL -j LAB'
run 'iptables -t nat -A LAB -p tcp --dport 8080 -j DNAT --to-destination 172.19.0.2:80'
run 'get 172.19.0.1:8080'
say 'the localhost case: the rule matches, but a packet from 127.0.0.1 may not leave by veth-host'
run 'get 127.0.0.1:8080'
run 'sysctl -w net.ipv4.conf.veth-host.route_localnet=1'
say 'now it leaves, still from 127.0.0.1: the server'\''s answer to 127.0.0.1 stays in its namespace'
run 'get 127.0.0.1:8080'
say 'so it leaves as the host'\''s 172.19.0.1 (MASQUERADE), and conntrack maps the answer back'
run 'iptables -t nat -A POSTROUTING -o veth-host -s 127.0.0.0/8 -j MASQUERADE'
run 'get 127.0.0.1:8080'
say 'and the guard route_localnet needs: nothing from veth-host may reach our 127.0.0.1'
run 'iptables -t raw -A PREROUTING -i veth-host -d 127.0.0.0/8 -j DROP'
say 'the counters: one packet per connection, as the nat table sees only the first (pkts, target, rule)'
run 'iptables -t nat -Z LAB'
run 'get 172.19.0.1:8080'
run 'iptables -t nat -L LAB -n -v -x | awk '\''NR > 2 { print $1, $3, $(NF-1), $NF }'\'''
run 'iptables -t nat -S LAB'
in_bocker 'ip netns exec netns_"$uuid" ip addr add 172.18.0."$ip"/24' 'ip link set veth0_"$uuid" master br1' \
	'ip route add default via 172.18.0.1'
