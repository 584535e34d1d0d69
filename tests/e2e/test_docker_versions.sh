#!/usr/bin/env bash
# What differs between dockerd 20.10 and 26.1 for the network and IPAM plugins, on whichever
# daemon DOCKERD names (make e2e runs it on both; README "Docker versions" lists the differences):
#   - default-address-pools: a network of ours with the built-in IPAM and no --subnet gets the
#     first pool dockerd carves from the configured base; the bridge carries its gateway.
#   - per-endpoint MAC (API 1.44, 26.1: `--network name=N,mac-address=M`, sent both as
#     Interface.MacAddress and as the option com.docker.network.endpoint.macaddress, base64):
#     each network's interface gets its own MAC; 20.10 has only the container-wide --mac-address.
#   - endpoint sysctls (driver-opt com.docker.network.endpoint.sysctls, dockerd 25+): an endpoint
#     option the driver must let through; the container's interface ends up as on the built-in
#     bridge (neither 20.10 nor 26.1.5 applies it to a user network's eth0 here).
#   - IPAM: 20.10 asks GetDefaultAddressSpaces when the plugin registers, 26.1 when a network
#     first uses it; --ipv6 without an IPv6 subnet is refused clearly by our IPAM on both.
# Subnets 10.99.7x and 10.99.192.0/20; bridge names start with obt. Network names are lower case:
# the CLI lower-cases the values of `--network name=…,…`.
source "$(dirname "$0")/lib.sh"
e2e_start
# default-address-pools is read at daemon start only.
echo '{"default-address-pools":[{"base":"10.99.192.0/20","size":24}]}' > "$E2E_DIR/daemon.json"
check "dockerd restarted with default-address-pools" e2e_restart_dockerd
e2e_install network ipam
D=$PREFIX-network:latest
P=$PREFIX-ipam:latest
S=$(printf '%04x' $(( ($$ + 71) % 65536 )))
MAC_A=02:42:0a:63:46:09
MAC_B=02:42:0a:63:47:09

# --- default address pools
check "network without --subnet (built-in IPAM)" docker network create -d "$D" -o bridge_name="obt${S}p" poolnet
expect_eq "subnet carved from default-address-pools" 10.99.192.0/24 \
  "$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' poolnet)"
expect_contains "its gateway on our bridge" "10.99.192.1/24" "$(ip -o -4 addr show dev "obt${S}p" 2>&1)"
check "a container on it reaches the gateway" docker run --rm --network poolnet "$IMAGE" ping -c 1 -W 2 10.99.192.1

# --- IPAM: address spaces asked on registration (20.10) or first use (26.1)
spaces() { plugin_log "$P" | grep -c 'IpamDriver.GetDefaultAddressSpaces'; }
if [ "$DOCKERD" = 26.1 ]; then
  expect_eq "26.1: no GetDefaultAddressSpaces before a network uses the IPAM" 0 "$(spaces)"
else
  check "20.10: GetDefaultAddressSpaces on registration" test "$(spaces)" -ge 1
fi
check "network A with our IPAM" docker network create -d "$D" --ipam-driver "$P" --subnet 10.99.70.0/24 \
  -o bridge_name="obt${S}a" neta
check "GetDefaultAddressSpaces answered by now" test "$(spaces)" -ge 1
check "network B with our IPAM" docker network create -d "$D" --ipam-driver "$P" --subnet 10.99.71.0/24 \
  -o bridge_name="obt${S}b" netb
expect_fail "--ipv6 without an IPv6 subnet refused by our IPAM" "no free IPv6 pool" \
  docker network create -d "$D" --ipam-driver "$P" --ipv6 --subnet 10.99.72.0/24 -o bridge_name="obt${S}c" v6none
check "and nothing of it left" sh -c "! docker network inspect v6none >/dev/null 2>&1 && ! ip link show obt${S}c >/dev/null 2>&1"

# --- MAC addresses
mac_of() { docker inspect -f "{{(index .NetworkSettings.Networks \"$2\").MacAddress}}" "$1"; }
if [ "$DOCKERD" = 26.1 ]; then
  check "run m1 with a MAC per network (API 1.44)" docker run -d --name m1 \
    --network "name=neta,mac-address=$MAC_A" --network "name=netb,mac-address=$MAC_B" "$IMAGE" sleep 300
  expect_eq "dockerd recorded network A's MAC" "$MAC_A" "$(mac_of m1 neta)"
  expect_eq "dockerd recorded network B's MAC" "$MAC_B" "$(mac_of m1 netb)"
  macs=$(docker exec m1 sh -c 'cat /sys/class/net/eth*/address' | sort | tr '\n' ' ')
  expect_eq "both MACs on the container's interfaces" "$MAC_A $MAC_B " "$macs"
  check "m1 reaches network B's gateway" docker exec m1 ping -c 1 -W 2 10.99.71.1
else
  # Debian's 20.10 client: a newer one turns --mac-address with --network into the per-network
  # form, which needs API 1.44.
  check "run m1 with a container-wide --mac-address (API 1.41)" command /usr/bin/docker run -d --name m1 --network neta \
    --mac-address "$MAC_A" "$IMAGE" sleep 300
  expect_eq "dockerd recorded the MAC" "$MAC_A" "$(mac_of m1 neta)"
  expect_eq "the MAC on eth0" "$MAC_A" "$(docker exec m1 cat /sys/class/net/eth0/address)"
fi
check "m1 reaches network A's gateway" docker exec m1 ping -c 1 -W 2 10.99.70.1

# --- endpoint sysctls, sent through the API (the 26.1 CLI lower-cases `driver-opt=` values, IFNAME
# included): whatever the daemon makes of the option, our network matches the built-in bridge.
check "built-in bridge network K" docker network create -d bridge --subnet 10.99.74.0/24 \
  -o com.docker.network.bridge.name="obt${S}k" netk
# run_sysctl NAME NETWORK: create and start a container whose endpoint carries the sysctl option.
run_sysctl() {
  local body='{"Image":"'$IMAGE'","Cmd":["sleep","300"],"HostConfig":{"NetworkMode":"'$2'"},
    "NetworkingConfig":{"EndpointsConfig":{"'$2'":{"DriverOpts":
    {"com.docker.network.endpoint.sysctls":"net.ipv4.conf.IFNAME.log_martians=1"}}}}}'
  curl -sf --unix-socket "$E2E_DIR/docker.sock" -H 'Content-Type: application/json' -d "$body" \
    "http://d/v$E2E_API/containers/create?name=$1" >/dev/null &&
    curl -sf --unix-socket "$E2E_DIR/docker.sock" -X POST "http://d/v$E2E_API/containers/$1/start"
}
check "s1 on our network with an endpoint sysctl option" run_sysctl s1 neta
check "k1 on the built-in bridge with the same option" run_sysctl k1 netk
martians() { docker exec "$1" cat /proc/sys/net/ipv4/conf/eth0/log_martians; }
check "k1 reads its interface's sysctl" test -n "$(martians k1)"
expect_eq "the sysctl as on the built-in bridge" "$(martians k1)" "$(martians s1)"
# IPv6 on an IPv4-only network: the container's interface ends up as on the built-in bridge.
v6off() { docker exec "$1" cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6; }
check "k1 reads disable_ipv6" test -n "$(v6off k1)"
log "disable_ipv6 on an IPv4-only network: built-in $(v6off k1), ours $(v6off s1)"
expect_eq "IPv6 on an IPv4-only network as on the built-in bridge" "$(v6off k1)" "$(v6off s1)"
check "s1 reaches m1 on network A" docker exec s1 ping -c 1 -W 2 "$(docker inspect -f '{{.NetworkSettings.Networks.neta.IPAddress}}' m1)"

check "containers removed" docker rm -f m1 s1 k1
check "networks removed" docker network rm poolnet neta netb netk
check "no bridge of this run left" sh -c "! ip -o link show | grep -q obt${S}"
