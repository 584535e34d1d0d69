#!/usr/bin/env bash
# Network driver, basics: a bridge per network and a veth per endpoint; containers ping each
# other; inspect/connect/disconnect; --internal has no default route; MTU; bad input refused
# with nothing created; after `network rm` no link of ours is left.
# Subnets 10.99.x (shared host: others use 10.98.x / 10.200.x); bridge names start with obt.
source "$(dirname "$0")/lib.sh"
e2e_start
e2e_install network
D=$PREFIX-network:latest
S=$(printf '%04x' $(( $$ % 65536 )))   # unique bridge names per run
BA=obt${S}a BB=obt${S}b
tag() { network_instance_tag "$D"; }
our_links() { ip -o link show | grep -c -e "outboard-network $TAG " -e "obt${S}" ; }
TAG=$(tag)
check "plugin reported its instance tag ($TAG)" test -n "$TAG"

# --- two containers on one network ping each other
check "create network A (named bridge, mtu 1400)" docker network create -d "$D" --subnet 10.99.1.0/24 \
  -o com.docker.network.bridge.name="$BA" -o mtu=1400 netA
check "bridge $BA exists" ip link show "$BA"
expect_eq "bridge MTU" 1400 "$(cat /sys/class/net/$BA/mtu)"
expect_contains "gateway address on the bridge" "10.99.1.1/24" "$(ip -o -4 addr show dev "$BA")"
check "run c1" docker run -d --name c1 --network netA "$IMAGE" sleep 300
check "run c2" docker run -d --name c2 --network netA "$IMAGE" sleep 300
IP1=$(docker inspect -f '{{.NetworkSettings.Networks.netA.IPAddress}}' c1)
IP2=$(docker inspect -f '{{.NetworkSettings.Networks.netA.IPAddress}}' c2)
expect_contains "c1 got an address in 10.99.1.0/24" "10.99.1." "$IP1"
check "c1 pings c2 ($IP2)" docker exec c1 ping -c 1 -W 2 "$IP2"
check "c2 pings c1 ($IP1)" docker exec c2 ping -c 1 -W 2 "$IP1"
check "c1 pings the gateway" docker exec c1 ping -c 1 -W 2 10.99.1.1
expect_eq "container MTU follows the network" 1400 "$(docker exec c1 cat /sys/class/net/eth0/mtu)"
expect_contains "default route via the gateway" "default via 10.99.1.1" "$(docker exec c1 ip route)"
expect_eq "generated MAC recorded by dockerd" "02:42:0a:63:01:02" \
  "$(docker inspect -f '{{.NetworkSettings.Networks.netA.MacAddress}}' c1)"
expect_eq "interface MAC in the container" "02:42:0a:63:01:02" "$(docker exec c1 cat /sys/class/net/eth0/address)"
expect_eq "two host veths on the bridge" 2 "$(ip -o link show master "$BA" | wc -l)"
check "no docker_gwbridge" sh -c "! docker network ls --format '{{.Name}}' | grep -q docker_gwbridge"
insp=$(docker network inspect netA)
expect_contains "inspect: driver" "\"Driver\": \"$D\"" "$insp"
expect_contains "inspect: subnet" "10.99.1.0/24" "$insp"
expect_contains "inspect: both containers" "c2" "$insp"

# --- connect / disconnect
check "create network B (generated bridge name)" docker network create -d "$D" --subnet 10.99.2.0/24 netB
NB=$(docker network inspect -f '{{.Id}}' netB)
GEN=ob${TAG}${NB:0:9}
check "generated bridge $GEN exists (15 chars, from the network ID)" ip link show "$GEN"
check "connect c1 to netB" docker network connect netB c1
check "c1 has eth1 in 10.99.2.0/24" sh -c "docker exec c1 ip -o -4 addr show eth1 | grep -q 10.99.2."
check "c1 pings netB's gateway" docker exec c1 ping -c 1 -W 2 10.99.2.1
check "disconnect c1 from netB" docker network disconnect netB c1
check "eth1 is gone" sh -c "! docker exec c1 ip link show eth1"
expect_eq "no veth left on $GEN" 0 "$(ip -o link show master "$GEN" | wc -l)"
check "c3 on netB" docker run -d --name c3 --network netB "$IMAGE" sleep 300
check "c3 (netB) cannot reach c1 on netA" sh -c "! docker exec c3 ping -c 1 -W 1 $IP1"

# --- internal network: containers talk, no default route, no gateway service
check "create internal network" docker network create -d "$D" --internal --subnet 10.99.3.0/24 \
  -o bridge_name="obt${S}i" netI
check "i1" docker run -d --name i1 --network netI "$IMAGE" sleep 300
check "i2" docker run -d --name i2 --network netI "$IMAGE" sleep 300
II2=$(docker inspect -f '{{.NetworkSettings.Networks.netI.IPAddress}}' i2)
check "i1 pings i2 on the internal network" docker exec i1 ping -c 1 -W 2 "$II2"
check "internal: no default route" sh -c "! docker exec i1 ip route | grep -q default"
check "internal: no docker_gwbridge" sh -c "! docker network ls --format '{{.Name}}' | grep -q docker_gwbridge"

# --- bad input: clear errors, nothing created
before=$(ip -o link show | wc -l)
expect_fail "unknown option" 'unknown option "colour"' docker network create -d "$D" --subnet 10.99.4.0/24 -o colour=red bad1
expect_fail "invalid MTU" "the MTU must be from 68 to 65535" docker network create -d "$D" --subnet 10.99.4.0/24 -o mtu=20 bad2
expect_fail "MTU not a number" "mtu" docker network create -d "$D" --subnet 10.99.4.0/24 -o mtu=big bad3
expect_fail "bridge name too long" "1 to 15 characters" docker network create -d "$D" --subnet 10.99.4.0/24 \
  -o com.docker.network.bridge.name=obt-much-too-long-name bad4
expect_fail "bridge name used by another network" "already used by network" docker network create -d "$D" \
  --subnet 10.99.4.0/24 -o com.docker.network.bridge.name="$BA" bad5
expect_fail "bridge name held by a host link" "already exists on this host" docker network create -d "$D" \
  --subnet 10.99.4.0/24 -o com.docker.network.bridge.name=lo bad6
expect_eq "no bad network was recorded" 0 "$(docker network ls --format '{{.Name}}' | grep -c '^bad')"
expect_eq "no link was created by the refused calls" "$before" "$(ip -o link show | wc -l)"

# --- built-in bridge option names accepted
check "built-in option names" docker network create -d "$D" --subnet 10.99.5.0/24 \
  -o com.docker.network.bridge.name="obt${S}c" -o com.docker.network.driver.mtu=1450 \
  -o com.docker.network.bridge.enable_icc=true -o com.docker.network.bridge.enable_ip_masquerade=true netC
expect_eq "MTU from com.docker.network.driver.mtu" 1450 "$(cat /sys/class/net/obt${S}c/mtu)"

# --- tear down: nothing of ours is left
docker rm -f c1 c2 c3 i1 i2 >/dev/null 2>&1
for n in netA netB netI netC; do check "rm $n" docker network rm $n; done
expect_eq "no bridge or veth of ours left" 0 "$(our_links)"
expect_eq "no nftables table of ours left" 0 "$(nft list tables 2>/dev/null | grep -c "outboard_network_$TAG")"
expect_eq "no request failed unexpectedly (5xx)" 0 \
  "$(plugin_log "$D" | grep 'request failed' | grep -c 'status=500')"

# --- FIREWALL=false: plain bridging works; options that need nftables get a clear error
check "disable the plugin" docker plugin disable "$D"
check "set FIREWALL=false" docker plugin set "$D" FIREWALL=false
check "enable" docker plugin enable "$D"
expect_fail "icc=false refused without the firewall" "icc=false needs the plugin's nftables firewall" \
  docker network create -d "$D" --subnet 10.99.6.0/24 -o icc=false nofw1
expect_fail "--internal refused without the firewall" "needs the plugin's nftables firewall" \
  docker network create -d "$D" --internal --subnet 10.99.6.0/24 nofw2
check "plain network without the firewall" docker network create -d "$D" --subnet 10.99.7.0/24 \
  -o bridge_name="obt${S}p" plain
check "p1 on it" docker run -d --name p1 --network plain "$IMAGE" sleep 300
check "p2 on it" docker run -d --name p2 --network plain "$IMAGE" sleep 300
check "p1 pings p2 without the firewall" docker exec p1 ping -c 1 -W 2 "$(docker inspect -f '{{.NetworkSettings.Networks.plain.IPAddress}}' p2)"
expect_fail "published port refused without the firewall" "publishing ports (-p) needs the plugin's nftables firewall" \
  docker run -d --name p3 --network plain -p 18099:80 "$IMAGE" sleep 300
expect_eq "no nftables table was made" 0 "$(nft list tables 2>/dev/null | grep -c "outboard_network_$TAG")"
docker rm -f p1 p2 p3 >/dev/null 2>&1
check "rm plain" docker network rm plain
expect_eq "nothing of ours left" 0 "$(our_links)"
