#!/usr/bin/env bash
# Network driver at scale: 300 networks through the real daemon, every one isolated by the
# plugin's firewall (the table holds a drop rule per bridge; containers on the first and the
# last network cannot reach each other while the host forwards), then all removed.
#
# Safety: ip_forward is turned on only behind a guard table that drops forwarding toward the
# machine's uplink, and restored on exit.
source "$(dirname "$0")/lib.sh"
e2e_start
e2e_install network
D=$PREFIX-network:latest
N=${SCALE_NETWORKS:-300}
S=$(printf '%04x' $(( ($$ + 29) % 65536 )))
TAG=$(network_instance_tag "$D")
TABLE=outboard_network_$TAG
GUARD=obt_guard_$S
FWD_SAVED=$(cat /proc/sys/net/ipv4/ip_forward)
ip_of() { docker inspect -f "{{.NetworkSettings.Networks.$2.IPAddress}}" "$1"; }
subnet() { echo "10.$(( 112 + $1 / 256 )).$(( $1 % 256 )).0/24"; }
scale_cleanup() {
  echo "$FWD_SAVED" > /proc/sys/net/ipv4/ip_forward
  nft delete table inet "$GUARD" 2>/dev/null
  true
}
trap 'rc=$?; scale_cleanup; (exit $rc); e2e_teardown' EXIT

guard_ok=true
e2e_guard_forwarding "$GUARD" || guard_ok=false
check "guard table in place" $guard_ok
$guard_ok || exit 1
echo 1 > /proc/sys/net/ipv4/ip_forward

start=$(date +%s)
made=0
for ((i = 0; i < N; i++)); do
  docker network create -d "$D" --subnet "$(subnet $i)" "sc$i" >/dev/null 2>"$E2E_DIR/create.err" || break
  made=$((made + 1))
done
expect_eq "$N networks created (last error: $(tail -1 "$E2E_DIR/create.err"))" "$N" "$made"
log "created $made networks in $(( $(date +%s) - start ))s"
rules=$(nft list table inet "$TABLE")
expect_eq "one drop rule per bridge in the table" "$N" "$(grep -c 'oifname "ob'"$TAG"'[0-9a-f]*" drop' <<<"$rules")"
last=$((N - 1))
check "container on the first network" docker run -d --name first --network sc0 "$IMAGE" sleep 600
check "container on the last network" docker run -d --name last --network "sc$last" "$IMAGE" sleep 600
check "first reaches its gateway" docker exec first ping -c 1 -W 2 10.112.0.1
check "first cannot reach last (network $N)" sh -c "! docker exec first ping -c 1 -W 1 $(ip_of last "sc$last")"
check "last cannot reach first" sh -c "! docker exec last ping -c 1 -W 1 $(ip_of first sc0)"
docker rm -f first last >/dev/null
start=$(date +%s)
removed=0
for ((i = 0; i < made; i++)); do docker network rm "sc$i" >/dev/null && removed=$((removed + 1)); done
log "removed $removed networks in $(( $(date +%s) - start ))s"
expect_eq "all removed" "$made" "$removed"
expect_eq "no table of ours left" 0 "$(nft list tables | grep -c "$TABLE")"
expect_eq "no bridge of ours left" 0 "$(ip -o link show | grep -c "outboard-network $TAG ")"
