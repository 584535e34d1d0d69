#!/usr/bin/env bash
# IPAM driver end to end: explicit pools with ip-range/gateway/aux on the built-in bridge
# driver, --ip, 50 concurrent containers, release on stop, default pools, SIGKILL of the
# plugin and a dockerd restart, and bad input (overlap, outside address, bad options,
# exhausted pool) leaving the state unchanged. Subnets: 10.98.0.0/15 and 10.200.0.0/16 only.
source "$(dirname "$0")/lib.sh"
e2e_start
e2e_install ipam
P=$PREFIX-ipam:latest

# Default pools for networks without --subnet: /24s of 10.200.0.0/16 (set while disabled).
check "disable to configure" docker plugin disable $P
check "set DEFAULT_POOLS" docker plugin set $P DEFAULT_POOLS=10.200.0.0/16/24,fd00:98:200::/48/64
check "enable" docker plugin enable $P
SOCK=$E2E_PLUGIN_DIR/$(plugin_id $P)/outboard-ipam.sock
pools() { curl -sf --unix-socket "$SOCK" "http://x/outboard/v1/pools${1:-}"; }
pool_of() { pools "?pool=$1" | jq -c '.pools[0]'; }
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
check "pools endpoint answers" pools
run() { local n=$1; shift; docker run -d --name "$n" "$@" $IMAGE sleep 600 >/dev/null; }

log "explicit pool: subnet, ip-range, gateway, aux addresses on a user-defined bridge"
check "network create" docker network create -d bridge --ipam-driver $P \
  --subnet 10.98.0.0/24 --ip-range 10.98.0.128/26 --gateway 10.98.0.1 \
  --aux-address a1=10.98.0.128 --aux-address a2=10.98.0.129 --ipam-opt label=e2e-n1 ipn1
expect_eq "network gateway" "10.98.0.1" "$(docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' ipn1)"
p=$(pool_of 10.98.0.0/24)
expect_eq "pool visible with range" "10.98.0.128/26" "$(jq -r .ip_range <<<"$p")"
expect_eq "gateway held as gateway" "10.98.0.1" "$(jq -r .gateway <<<"$p")"
expect_eq "two aux addresses held as aux" 2 "$(jq -r '.held_by_kind.aux' <<<"$p")"
expect_eq "label shown" "e2e-n1" "$(jq -r .label <<<"$p")"
check "container c1" run c1 --network ipn1
check "container c2 with --ip" run c2 --network ipn1 --ip 10.98.0.50
expect_eq "c1 gets the first free address of the range (aux skipped)" 10.98.0.130 "$(ip_of c1)"
expect_eq "c2 gets its --ip" 10.98.0.50 "$(ip_of c2)"
expect_eq "netmask is the pool's" 24 "$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPPrefixLen}}{{end}}' c1)"
check "c1 reaches its gateway's network (c2)" docker exec c1 ping -c1 -W2 10.98.0.50
p=$(pool_of 10.98.0.0/24)
expect_eq "held: gateway + 2 aux + 2 containers" 5 "$(jq -r .held <<<"$p")"
expect_eq "--ip shown as container-ip" 1 "$(jq -r '.held_by_kind["container-ip"]' <<<"$p")"

log "50 containers started concurrently on one network"
check "network ipn2" docker network create -d bridge --ipam-driver $P --subnet 10.98.1.0/24 \
  --gateway 10.98.1.254 --aux-address r=10.98.1.1 ipn2
# Wait for these jobs only: a bare `wait` would also wait for the private dockerd.
jobs=()
for i in $(seq 1 50); do run "m$i" --network ipn2 2>/dev/null & jobs+=($!); done
wait "${jobs[@]}"
ips=$(for i in $(seq 1 50); do ip_of "m$i"; done)
expect_eq "50 containers have an address" 50 "$(grep -c . <<<"$ips")"
expect_eq "all 50 distinct" 50 "$(sort -u <<<"$ips" | grep -c .)"
expect_eq "none got the gateway or the aux address" 0 "$(grep -cxE '10\.98\.1\.(254|1)' <<<"$ips")"
expect_eq "all inside the subnet" 0 "$(grep -cvE '^10\.98\.1\.[0-9]+$' <<<"$ips")"
expect_eq "pool holds 50 container addresses" 50 "$(pool_of 10.98.1.0/24 | jq -r .held_by_kind.container)"
jobs=()
for i in $(seq 1 50); do docker rm -f "m$i" >/dev/null & jobs+=($!); done
wait "${jobs[@]}"
check "all 50 released after the containers stopped" retry 50 sh -c \
  "[ \"\$(curl -sf --unix-socket '$SOCK' 'http://x/outboard/v1/pools?pool=10.98.1.0/24' | jq -r '.pools[0].held_by_kind.container // 0')\" = 0 ]"
expect_eq "gateway and aux still held" 2 "$(pool_of 10.98.1.0/24 | jq -r .held)"

log "default pools"
check "network d1 without --subnet" docker network create -d bridge --ipam-driver $P ipd1
check "network d2 without --subnet" docker network create -d bridge --ipam-driver $P ipd2
s1=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' ipd1)
s2=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' ipd2)
expect_contains "d1 from 10.200.0.0/16" "10.200." "$s1"
expect_contains "d2 from 10.200.0.0/16" "10.200." "$s2"
check "d1 and d2 differ ($s1, $s2)" test "$s1" != "$s2"
check "both /24 (so different = non-overlapping)" sh -c "echo '$s1 $s2' | grep -q '/24 .*/24$'"
expect_eq "pool marked from defaults" true "$(pool_of "$s1" | jq -r .from_defaults)"
check "container on d1" run cd1 --network ipd1
expect_contains "its address is in d1's pool" "${s1%.0/24}." "$(ip_of cd1)"

log "IPv6: dual-stack network with an explicit IPv6 subnet, --ip6, and one from the defaults"
check "dual-stack network" docker network create -d bridge --ipam-driver $P --ipv6 \
  --subnet 10.98.4.0/24 --subnet fd00:98:4::/64 ipv6n
check "container v1" run v1 --network ipv6n
check "container v2 with --ip6" run v2 --network ipv6n --ip6 fd00:98:4::99
expect_eq "v1 IPv6 address and prefix" "fd00:98:4::2/64" "$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}/{{.GlobalIPv6PrefixLen}}{{end}}' v1)"
expect_eq "v2 keeps its --ip6" "fd00:98:4::99" "$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}' v2)"
expect_contains "v1 has the address on eth0" "fd00:98:4::2/64" "$(docker exec v1 ip -6 addr show eth0)"
p6=$(pool_of fd00:98:4::/64)
expect_eq "IPv6 pool: gateway + 2 containers" "3 fd00:98:4::1" "$(jq -r '"\(.held) \(.gateway)"' <<<"$p6")"
expect_eq "a /64 has 2^64-1 usable addresses" "18446744073709551615" "$(curl -sf --unix-socket "$SOCK" "http://x/outboard/v1/pools?pool=fd00:98:4::/64" | grep -o '"capacity":[0-9]*' | cut -d: -f2)"
check "--ipv6 network without subnets" docker network create -d bridge --ipam-driver $P --ipv6 ipv6d
expect_contains "its IPv6 pool comes from the IPv6 default pool" "fd00:98:200::/64" "$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' ipv6d)"
docker rm -f v1 v2 >/dev/null

log "bad input: clear errors, state unchanged"
before=$(pools | jq -c '[.pools[] | {id, held, runs}]')
expect_fail "overlapping subnet refused, holder named" "overlaps pool 10.98.0.0/24 (PoolID" \
  docker network create -d bridge --ipam-driver $P --subnet 10.98.0.0/25 ipbad1
expect_fail "malformed option refused" "allowed are serial and lowest" \
  docker network create -d bridge --ipam-driver $P --subnet 10.98.3.0/24 --ipam-opt order=random ipbad2
expect_fail "unknown option refused" "unknown ipam option" \
  docker network create -d bridge --ipam-driver $P --subnet 10.98.3.0/24 --ipam-opt colour=red ipbad3
# dockerd itself refuses an --ip outside the network's subnets before asking the plugin; the
# plugin's own check is shown on its socket, and the broadcast address reaches the plugin.
# (20.10: "does not belong to any of this network's subnets"; 26.1: "no configured subnet or
# ip-range contain the IP address").
if [ "$DOCKERD" = 26.1 ]; then needle="no configured subnet or ip-range contain"; else needle="does not belong"; fi
expect_fail "address outside the subnet refused (by dockerd)" "$needle" run bad4 --network ipn1 --ip 10.98.9.9
expect_fail "broadcast address refused by the plugin" "network or broadcast address of pool 10.98.0.0/24" \
  run bad6 --network ipn1 --ip 10.98.0.255
out=$(curl -s -w ' %{http_code}' --unix-socket "$SOCK" -X POST http://x/IpamDriver.RequestAddress \
  -d '{"PoolID":"OutboardLocal/10.98.0.0/24/10.98.0.128/26","Address":"10.98.9.9","Options":null}')
expect_contains "address outside the pool refused by the plugin (non-200, Err)" '"Err":"address 10.98.9.9 is outside pool 10.98.0.0/24"' "$out"
expect_contains "... with status 400" " 400" "$out"
expect_fail "address in use refused" "already in use" run bad5 --network ipn1 --ip 10.98.0.50
expect_eq "state unchanged after the refusals" "$before" "$(pools | jq -c '[.pools[] | {id, held, runs}]')"
check "no network was created" sh -c "! docker network ls --format '{{.Name}}' | grep -q ipbad"
check "tiny /29 network" docker network create -d bridge --ipam-driver $P --subnet 10.98.2.0/29 ipt
for i in 1 2 3 4 5; do check "tiny container t$i" run "t$i" --network ipt; done
expect_fail "exhausted pool refused" "no free address left in pool 10.98.2.0/29" run t6 --network ipt
expect_eq "exhausted pool still holds 6 of 6" "6 6" "$(pool_of 10.98.2.0/29 | jq -r '"\(.held) \(.capacity)"')"
docker rm -f t1 t2 t3 t4 t5 bad4 bad5 bad6 t6 >/dev/null 2>&1

log "SIGKILL of the plugin: acknowledged addresses stay held"
held_before=$(pool_of 10.98.0.0/24 | jq -c '{held, runs}')
pid=$(plugin_pid $P)
check "plugin pid found" test -n "$pid"
kill -9 "$pid"
check "plugin answers again after SIGKILL" retry 100 sh -c "[ -n \"\$(pgrep -f '^/bin/outboard-ipam' | grep -vx '$pid')\" ] && curl -sf --unix-socket '$SOCK' http://x/outboard/v1/pools"
expect_eq "pool state rebuilt from the store" "$held_before" "$(pool_of 10.98.0.0/24 | jq -c '{held, runs}')"
check "new container after the crash" run c3 --network ipn1
c3=$(ip_of c3)
check "c3 got an address no one else holds ($c3)" sh -c "[ -n '$c3' ] && [ '$c3' != '$(ip_of c1)' ] && [ '$c3' != 10.98.0.50 ] && [ '$c3' != 10.98.0.128 ] && [ '$c3' != 10.98.0.129 ]"

log "dockerd restart: pools kept, restarted containers get addresses, no duplicates"
nets_before=$(for n in ipn1 ipn2 ipd1 ipd2; do docker network inspect -f '{{.Name}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}' $n; done)
e2e_restart_dockerd
check "plugin enabled after restart" retry 50 sh -c "docker plugin inspect -f '{{.Enabled}}' $P | grep -q true"
check "plugin answers after restart" retry 100 pools
nets_after=$(for n in ipn1 ipn2 ipd1 ipd2; do docker network inspect -f '{{.Name}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}' $n; done)
expect_eq "networks keep their pools and gateways" "$nets_before" "$nets_after"
expect_eq "stopped containers released their addresses (gateway + 2 aux left on ipn1)" 3 "$(pool_of 10.98.0.0/24 | jq -r .held)"
check "restart c1" docker start c1
check "restart c2 (--ip)" docker start c2
check "restart c3" docker start c3
check "new container c4" run c4 --network ipn1
all=$(for c in c1 c2 c3 c4; do ip_of $c; done)
expect_eq "4 addresses" 4 "$(grep -c . <<<"$all")"
expect_eq "no duplicates" 4 "$(sort -u <<<"$all" | grep -c .)"
expect_eq "c2 keeps its --ip" 10.98.0.50 "$(ip_of c2)"
expect_eq "pool holds gateway + 2 aux + 4 containers" 7 "$(pool_of 10.98.0.0/24 | jq -r .held)"

log "network removal releases pools"
docker rm -f c1 c2 c3 c4 cd1 >/dev/null
for n in ipn1 ipn2 ipd1 ipd2 ipt ipv6n ipv6d; do check "network rm $n" docker network rm $n; done
expect_eq "no pools left" 0 "$(pools | jq '.pools | length')"
