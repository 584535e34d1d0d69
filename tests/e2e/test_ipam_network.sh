#!/usr/bin/env bash
# IPAM driver together with Outboard's network driver: the network driver gets the pool,
# gateway and aux addresses the IPAM plugin chose, containers get addresses from the ip-range
# and reach each other, and everything is released on removal. Subnets 10.98.x only; bridge
# names start with obi.
source "$(dirname "$0")/lib.sh"
e2e_start
e2e_install network ipam
D=$PREFIX-network:latest
P=$PREFIX-ipam:latest
SOCK=$E2E_PLUGIN_DIR/$(plugin_id $P)/outboard-ipam.sock
pool_of() { curl -sf --unix-socket "$SOCK" "http://x/outboard/v1/pools?pool=$1" | jq -c '.pools[0]'; }
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
BR=obi$(printf '%04x' $(( $$ % 65536 )))

check "network with both plugins" docker network create -d "$D" --ipam-driver "$P" \
  --subnet 10.98.6.0/24 --ip-range 10.98.6.64/28 --gateway 10.98.6.1 --aux-address r=10.98.6.64 \
  -o com.docker.network.bridge.name="$BR" ipnet
expect_contains "gateway address on the network driver's bridge" "10.98.6.1/24" "$(ip -o -4 addr show dev "$BR")"
check "container a" docker run -d --name ca --network ipnet "$IMAGE" sleep 300
check "container b" docker run -d --name cb --network ipnet "$IMAGE" sleep 300
check "container s with --ip" docker run -d --name cs --network ipnet --ip 10.98.6.200 "$IMAGE" sleep 300
expect_eq "a from the range, aux skipped" 10.98.6.65 "$(ip_of ca)"
expect_eq "b next" 10.98.6.66 "$(ip_of cb)"
expect_eq "s keeps --ip" 10.98.6.200 "$(ip_of cs)"
check "a pings b" docker exec ca ping -c1 -W2 10.98.6.66
check "a pings s" docker exec ca ping -c1 -W2 10.98.6.200
check "a pings the gateway" docker exec ca ping -c1 -W2 10.98.6.1
p=$(pool_of 10.98.6.0/24)
expect_eq "pool: gateway, aux, 3 containers" '{"aux":1,"container":2,"container-ip":1,"gateway":1}' "$(jq -c .held_by_kind <<<"$p")"
docker rm -f ca cb cs >/dev/null
check "container addresses released" retry 25 sh -c "[ \"\$(curl -sf --unix-socket '$SOCK' 'http://x/outboard/v1/pools?pool=10.98.6.0/24' | jq -r .pools[0].held)\" = 2 ]"
check "network rm" docker network rm ipnet
expect_eq "pool released" null "$(pool_of 10.98.6.0/24)"
check "bridge gone" sh -c "! ip link show $BR"
