#!/bin/bash
# The floor of `bocker.py run IMAGE CMD` (make bench): the system commands
# bocker.py runs, alone, from bash, with the image itself as the bottom lower
# layer (DIVERGENCES row 13: nothing copied) and chroot in place of bocker.py's
# enter step. Whatever bocker.py takes above this is its own.
# usage: tests/floor_run.sh IMAGE_ID N CMD   (N: 2-254, the container is floor_N)
set -o errexit -o nounset -o pipefail
img=$1 n=$2 cmd=$3 uuid=floor_$2 c=/var/lib/bocker/containers/floor_$2
mkdir -p "$c"/{lower/dev,lower/sys,upper,work,merged}
printf '%s\n' "link add dev veth0_$uuid type veth peer name veth1_$uuid" "link set dev veth0_$uuid up" \
	"link set veth0_$uuid master br1" "netns add netns_$uuid" "link set veth1_$uuid netns netns_$uuid" | ip -batch -
printf '%s\n' "link set dev lo up" "link set veth1_$uuid address 02:42:ac:11:01:$((n % 100))" \
	"addr add 172.18.0.$n/24 dev veth1_$uuid" "link set dev veth1_$uuid up" "route add default via 172.18.0.1" |
	ip -n "netns_$uuid" -batch -
mount -t overlay overlay -o lowerdir="$c"/lower:/var/lib/bocker/overlay/"$img",upperdir="$c"/upper,workdir="$c"/work "$c"/merged
echo 'nameserver 114.114.114.114' > "$c"/merged/etc/resolv.conf && echo "$cmd" > "$c/$uuid.cmd"
cgcreate -g "cpu,cpuacct,memory:/$uuid" && cgset -r cpu.shares=512 -r memory.limit_in_bytes=512000000 "$uuid"
cgexec -g "cpu,cpuacct,memory:$uuid" ip netns exec "netns_$uuid" unshare -fmuip --mount-proc \
	chroot "$c"/merged /bin/sh -c "$cmd" 2>&1 | tee "$c/$uuid.log" || true
ip link del dev "veth0_$uuid" && ip netns del "netns_$uuid"
