#!/usr/bin/env bash
# Network driver, firewall (the plugin's own nftables table): isolation between our networks
# while the host forwards, icc=false, masquerade on/off, and a published port reached from an
# "outside host" network namespace over IPv4 and IPv6, gone after the container stops.
#
# Safety: the test turns on ip_forward (restored on exit) and, while it is on, installs its own
# nftables table that drops every forwarded packet toward the machine's real uplink (the
# default-route interface): test traffic stays between namespaces on this machine.
source "$(dirname "$0")/lib.sh"
e2e_start
e2e_install network
D=$PREFIX-network:latest
S=$(printf '%04x' $(( ($$ + 13) % 65536 )))
tag() { network_instance_tag "$D"; }
TAG=$(tag)
TABLE=outboard_network_$TAG
NSO=obt${S}o            # the outside host's namespace
VH=obt${S}h VO=obt${S}x # its veth pair (host end, namespace end)
GUARD=obt_guard_$S
HP=$(( 20000 + $$ % 10000 ))
ip_of() { docker inspect -f "{{.NetworkSettings.Networks.$2.IPAddress}}" "$1"; }
outside() { ip netns exec "$NSO" "$@"; }
FWD_SAVED=$(cat /proc/sys/net/ipv4/ip_forward)
FWD6_SAVED=$(cat /proc/sys/net/ipv6/conf/all/forwarding)
UPLINK=$(ip route show default | awk '{print $5; exit}')
fw_cleanup() {
  echo "$FWD_SAVED" > /proc/sys/net/ipv4/ip_forward
  echo "$FWD6_SAVED" > /proc/sys/net/ipv6/conf/all/forwarding
  nft delete table inet "$GUARD" 2>/dev/null
  ip link del "$VH" 2>/dev/null
  ip netns del "$NSO" 2>/dev/null
  true
}
trap 'rc=$?; fw_cleanup; (exit $rc); e2e_teardown' EXIT

# --- the guard first, then forwarding on
guard_ok=true
e2e_guard_forwarding "$GUARD" || guard_ok=false
check "guard table drops forwarding toward the uplink (${UPLINK:-none})" $guard_ok
# Never forward without the guard.
$guard_ok || { log "guard table missing: not enabling ip_forward"; exit 1; }
echo 1 > /proc/sys/net/ipv4/ip_forward

# --- the outside host: a namespace with a veth into the host, no route to container subnets
ip netns add "$NSO"
ip link add "$VH" type veth peer name "$VO"
ip link set "$VO" netns "$NSO"
ip addr add 10.96.200.1/24 dev "$VH"; ip link set "$VH" up
outside ip addr add 10.96.200.2/24 dev "$VO"; outside ip link set "$VO" up; outside ip link set lo up
check "outside namespace has its address" sh -c "ip netns exec $NSO ip -o -4 addr show dev $VO | grep -q 10.96.200.2"

# --- networks
check "net A" docker network create -d "$D" --subnet 10.96.1.0/24 -o bridge_name="obt${S}a" fwA
check "net B" docker network create -d "$D" --subnet 10.96.2.0/24 -o bridge_name="obt${S}b" fwB
check "net N (masquerade off)" docker network create -d "$D" --subnet 10.96.3.0/24 -o bridge_name="obt${S}n" \
  -o com.docker.network.bridge.enable_ip_masquerade=false fwN
check "net Q (icc off)" docker network create -d "$D" --subnet 10.96.4.0/24 -o bridge_name="obt${S}q" \
  -o com.docker.network.bridge.enable_icc=false fwQ
check "net I (internal)" docker network create -d "$D" --internal --subnet 10.96.5.0/24 -o bridge_name="obt${S}i" fwI
check "table $TABLE exists" nft list table inet "$TABLE"
rules=$(nft list table inet "$TABLE")
expect_contains "masquerade rule for A" 'ip saddr 10.96.1.0/24 oifname != "obt'"$S"'a" masquerade' "$rules"
check "no masquerade rule for N" sh -c "! nft list table inet $TABLE | grep -q 'saddr 10.96.3.0/24 oifname !='"

for c in a1:fwA a2:fwA b1:fwB n1:fwN q1:fwQ q2:fwQ i1:fwI; do
  check "run ${c%%:*} on ${c##*:}" docker run -d --name "${c%%:*}" --network "${c##*:}" "$IMAGE" sleep 600
done

# --- isolation while the host forwards
check "a1 pings a2 (same network)" docker exec a1 ping -c 1 -W 2 "$(ip_of a2 fwA)"
check "a1 reaches B's gateway address on the host" docker exec a1 ping -c 1 -W 2 10.96.2.1
check "a1 cannot reach b1 on network B" sh -c "! docker exec a1 ping -c 1 -W 1 $(ip_of b1 fwB)"
check "b1 cannot reach a1 on network A" sh -c "! docker exec b1 ping -c 1 -W 1 $(ip_of a1 fwA)"
check "n1 cannot reach a1 on network A" sh -c "! docker exec n1 ping -c 1 -W 1 $(ip_of a1 fwA)"
check "i1 (internal) cannot reach a1" sh -c "! docker exec i1 ping -c 1 -W 1 $(ip_of a1 fwA)"
check "outside cannot reach a1 directly (route added for the attempt)" sh -c \
  "ip netns exec $NSO ip route add 10.96.1.0/24 via 10.96.200.1 && ! ip netns exec $NSO ping -c 1 -W 1 $(ip_of a1 fwA)"
outside ip route del 10.96.1.0/24 2>/dev/null

# --- icc=false
check "q1 reaches its gateway" docker exec q1 ping -c 1 -W 2 10.96.4.1
check "icc=false: q1 cannot reach q2" sh -c "! docker exec q1 ping -c 1 -W 1 $(ip_of q2 fwQ)"

# --- masquerade: the outside host has no route back to 10.96.x, so replies arrive only if
# the source was rewritten to the host's address.
check "masquerade: a1 reaches the outside host" docker exec a1 ping -c 1 -W 2 10.96.200.2
check "masquerade off: n1 does not reach the outside host" sh -c "! docker exec n1 ping -c 1 -W 1 10.96.200.2"

# --- published port from the outside host
check "web container publishes $HP->80" docker run -d --name web --network fwA -p "$HP:80" "$IMAGE" \
  sh -c 'echo hello-from-web > /tmp/index.html; exec httpd -f -p 80 -h /tmp'
WEB_IP=$(ip_of web fwA)
# Published ports are elements of the table's DNAT map: tcp . HOSTPORT : CONTAINER . PORT.
expect_contains "DNAT map element present" "tcp . $HP : $WEB_IP . 80" "$(nft list map inet "$TABLE" ports_any)"
check "outside host reaches the published port" retry 25 sh -c \
  "ip netns exec $NSO curl -s -m 2 http://10.96.200.1:$HP/ | grep -q hello-from-web"
check "the host itself reaches the published port" retry 10 sh -c \
  "curl -s -m 2 http://10.96.200.1:$HP/ | grep -q hello-from-web"
httpget() { docker exec "$1" sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 $2 $HP" | grep -q hello-from-web; }
check "hairpin: a2 reaches the published port through its gateway address" retry 10 httpget a2 10.96.1.1
check "b1 on another network reaches the published port through the host" retry 10 httpget b1 10.96.2.1
expect_fail "a second container cannot take the same host port" "already published" \
  docker run -d --name web2 --network fwA -p "$HP:80" "$IMAGE" sleep 600
docker rm -f web2 >/dev/null 2>&1
check "stop the web container" docker stop -t 1 web
check "DNAT map element gone after stop" sh -c "! nft list map inet $TABLE ports_any | grep -qF ': $WEB_IP . 80'"
check "port no longer reachable" sh -c "! ip netns exec $NSO curl -s -m 1 http://10.96.200.1:$HP/"

# --- IPv6 parity: the same isolation, icc=false and internal for IPv6 while the host forwards
# IPv6 (the guard table is inet: it covers IPv6 toward the uplink too).
echo 1 > /proc/sys/net/ipv6/conf/all/forwarding
ip6_of() { docker inspect -f "{{.NetworkSettings.Networks.$2.GlobalIPv6Address}}" "$1"; }
check "v6 net A6" docker network create -d "$D" --ipv6 --subnet 10.96.6.0/24 --subnet fd96:6::/64 -o bridge_name="obt${S}c" fwA6
check "v6 net B6" docker network create -d "$D" --ipv6 --subnet 10.96.7.0/24 --subnet fd96:7::/64 -o bridge_name="obt${S}d" fwB6
check "v6 net Q6 (icc off)" docker network create -d "$D" --ipv6 --subnet 10.96.8.0/24 --subnet fd96:8::/64 \
  -o bridge_name="obt${S}e" -o com.docker.network.bridge.enable_icc=false fwQ6
check "v6 net I6 (internal)" docker network create -d "$D" --ipv6 --internal --subnet 10.96.9.0/24 --subnet fd96:9::/64 \
  -o bridge_name="obt${S}f" fwI6
for c in a61:fwA6 a62:fwA6 b61:fwB6 q61:fwQ6 q62:fwQ6 i61:fwI6; do
  check "run ${c%%:*} on ${c##*:}" docker run -d --name "${c%%:*}" --network "${c##*:}" "$IMAGE" sleep 600
done
check "a61 has an IPv6 address" test -n "$(ip6_of a61 fwA6)"
check "IPv6: a61 pings a62 (same network)" retry 25 docker exec a61 ping -6 -c 1 -W 1 "$(ip6_of a62 fwA6)"
check "IPv6: a61 reaches B6's gateway on the host" retry 25 docker exec a61 ping -6 -c 1 -W 1 fd96:7::1
check "IPv6: a61 cannot reach b61 on network B6" sh -c "! docker exec a61 ping -6 -c 1 -W 1 $(ip6_of b61 fwB6)"
check "IPv6: b61 cannot reach a61 on network A6" sh -c "! docker exec b61 ping -6 -c 1 -W 1 $(ip6_of a61 fwA6)"
check "IPv6: i61 (internal) cannot reach a61" sh -c "! docker exec i61 ping -6 -c 1 -W 1 $(ip6_of a61 fwA6)"
check "IPv6: q61 reaches its gateway" retry 25 docker exec q61 ping -6 -c 1 -W 1 fd96:8::1
check "IPv6 icc=false: q61 cannot reach q62" sh -c "! docker exec q61 ping -6 -c 1 -W 1 $(ip6_of q62 fwQ6)"
check "IPv4 still isolated in the same table: a61 cannot reach b61" sh -c "! docker exec a61 ping -c 1 -W 1 $(ip_of b61 fwB6)"
# An IPv6 published port, reached from the outside host over IPv6 (DNAT to the container's
# IPv6 address); the IPv6-only binding publishes nothing on IPv4.
HP6=$((HP + 1))
ip addr add fd96:200::1/64 dev "$VH" nodad
outside ip addr add fd96:200::2/64 dev "$VO" nodad
check "web6 publishes [::]:$HP6->80 on A6" docker run -d --name web6 --network fwA6 -p "[::]:$HP6:80" "$IMAGE" \
  sh -c 'echo hello-from-web6 > /tmp/index.html; exec httpd -f -p 80 -h /tmp'
expect_contains "IPv6 DNAT map element" "tcp . $HP6 : $(ip6_of web6 fwA6) . 80" "$(nft list map inet "$TABLE" ports6_any)"
check "outside host reaches the IPv6 published port" retry 25 sh -c \
  "ip netns exec $NSO curl -s -m 2 -g 'http://[fd96:200::1]:$HP6/' | grep -q hello-from-web6"
check "the IPv6-only binding publishes nothing on IPv4" sh -c "! ip netns exec $NSO curl -s -m 1 http://10.96.200.1:$HP6/"
docker rm -f web6 >/dev/null 2>&1
check "IPv6 DNAT element gone with the container" sh -c "! nft list map inet $TABLE ports6_any | grep -q ' . $HP6 :'"
echo "$FWD6_SAVED" > /proc/sys/net/ipv6/conf/all/forwarding
docker rm -f a61 a62 b61 q61 q62 i61 >/dev/null 2>&1

# --- tear down: the table goes with the last network
docker rm -f a1 a2 b1 n1 q1 q2 i1 web >/dev/null 2>&1
for n in fwA fwB fwN fwQ fwI fwA6 fwB6 fwQ6 fwI6; do check "rm $n" docker network rm $n; done
expect_eq "no nftables table of ours left" 0 "$(nft list tables | grep -c "$TABLE")"
expect_eq "no bridge or veth of ours left" 0 \
  "$(ip -o link show | grep -c -e "outboard-network $TAG " -e "obt${S}[abnqicdef]")"
