#!/usr/bin/env bash
# Network driver, restart safety: plugin disable/enable, SIGKILL of the plugin, and a dockerd
# restart keep existing containers connected and let new ones join; reconcile re-creates a
# bridge deleted behind the plugin's back and deletes stale links of this instance only;
# after `docker network rm` no bridge, veth or nftables table of ours is left.
source "$(dirname "$0")/lib.sh"
e2e_start
e2e_install network
D=$PREFIX-network:latest
S=$(printf '%04x' $(( ($$ + 7) % 65536 )))
tag() { network_instance_tag "$D"; }
TAG=$(tag)
OTHER=$(printf '%04x' $(( (0x$TAG + 1) % 65536 )))   # a tag that is not ours
our_links() { ip -o link show | grep -c -e "outboard-network $TAG " -e "obt${S}" -e ": o[bvc]${TAG}"; }
ip_of() { docker inspect -f "{{.NetworkSettings.Networks.$2.IPAddress}}" "$1"; }
running() { [ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }
new_pid() { local p; p=$(plugin_pid "$D") && [ -n "$p" ] && [ "$p" != "$1" ]; }
plugin_log_has() { plugin_log "$D" | grep -q "$1"; }
cleanup_extra() { [ -n "${BF:-}" ] && ip link del "$BF" 2>/dev/null;  ip link del "ob${OTHER}000000000" 2>/dev/null; ip link del "obt${S}z" 2>/dev/null; ip link del "ob${TAG}dead00000" 2>/dev/null; }
trap 'rc=$?; cleanup_extra; (exit $rc); e2e_teardown' EXIT

check "network A" docker network create -d "$D" --subnet 10.99.10.0/24 -o bridge_name="obt${S}r" netR
check "network B (no containers)" docker network create -d "$D" --subnet 10.99.11.0/24 netS
NS=$(docker network inspect -f '{{.Id}}' netS)
BS=ob${TAG}${NS:0:9}
check "c1 (restart=always)" docker run -d --restart always --name c1 --network netR "$IMAGE" sleep 600
check "c2 (restart=always)" docker run -d --restart always --name c2 --network netR "$IMAGE" sleep 600
check "c1 pings c2" docker exec c1 ping -c 1 -W 2 "$(ip_of c2 netR)"

# --- plugin disable / enable
check "plugin disable -f" docker plugin disable -f "$D"
check "plugin enable" docker plugin enable "$D"
check "after re-enable: c1 still pings c2" retry 10 docker exec c1 ping -c 1 -W 1 "$(ip_of c2 netR)"
check "after re-enable: new container joins" docker run -d --name c3 --network netR "$IMAGE" sleep 600
check "c3 pings c1" docker exec c3 ping -c 1 -W 2 "$(ip_of c1 netR)"

# --- SIGKILL of the plugin, with leftovers planted and a bridge deleted behind its back
ip link add "ob${TAG}dead00000" type bridge                       # generated-looking, ours, unknown
ip link add "obt${S}z" type bridge
ip link set "obt${S}z" alias "outboard-network $TAG net ffffffffffffffffffffffffffff"   # ours by alias, unknown
ip link add "ob${OTHER}000000000" type bridge                      # another instance's: must stay
ip link set "ob${OTHER}000000000" alias "outboard-network $OTHER net 0123456789abcdef"
check "delete netS's bridge $BS behind the plugin's back" ip link del "$BS"
PID=$(plugin_pid "$D")
check "plugin pid found ($PID)" test -n "$PID"
kill -9 "$PID"
check "dockerd restarted the plugin" retry 100 new_pid "$PID"
check "reconcile re-created netS's bridge (first pass)" retry 50 ip link show "$BS"
check "an unmarked link under our naming is left alone (ownership by mark, not name)" ip link show "ob${TAG}dead00000"
check "and reported in the plugin log" retry 25 plugin_log_has 'no mark: left alone'
check "reconcile deleted the stale aliased link" retry 50 sh -c "! ip link show obt${S}z"
check "reconcile kept another instance's link" ip link show "ob${OTHER}000000000"
check "reconcile re-created netS's bridge" retry 50 ip link show "$BS"
expect_contains "with its gateway address" "10.99.11.1/24" "$(ip -o -4 addr show dev "$BS" 2>&1)"
check "after SIGKILL: c1 still pings c2" docker exec c1 ping -c 1 -W 2 "$(ip_of c2 netR)"
check "after SIGKILL: new container on netR" docker run -d --name c4 --network netR "$IMAGE" sleep 600
check "c4 pings c2" docker exec c4 ping -c 1 -W 2 "$(ip_of c2 netR)"
check "after SIGKILL: new container on the re-created netS" docker run -d --name s1 --network netS "$IMAGE" sleep 600
check "s1 pings netS's gateway" docker exec s1 ping -c 1 -W 2 10.99.11.1
cleanup_extra

# --- an administrator's bridge under our bridge's name: never used, attached to or deleted
check "network F" docker network create -d "$D" --subnet 10.99.12.0/24 netF
NF=$(docker network inspect -f '{{.Id}}' netF)
BF=ob${TAG}${NF:0:9}
check "F's bridge exists" ip link show "$BF"
ip link del "$BF"
check "admin creates a bridge under that name, with an address of its own" sh -c \
  "ip link add '$BF' type bridge && ip addr add 10.99.13.1/24 dev '$BF' && ip link set '$BF' up"
expect_fail "a container cannot join netF (foreign bridge named)" "$BF" docker run --rm --network netF "$IMAGE" true
PID=$(plugin_pid "$D"); kill_plugin_settled "$D"
check "dockerd restarted the plugin again" retry 100 new_pid "$PID"
check "reconcile left the admin's bridge alone" retry 10 sh -c "ip -o -4 addr show dev '$BF' | grep -q 10.99.13.1"
expect_eq "nothing attached to the admin's bridge" 0 "$(ip -o link show master "$BF" | wc -l)"
# dockerd forgets a network whatever DeleteNetwork answers; the plugin's refusal lands in its log.
check "docker network rm netF" docker network rm netF
check "the admin's bridge survives the rm, with its address" sh -c "ip -o -4 addr show dev '$BF' | grep -q 10.99.13.1"
check "dockerd logged the plugin naming the foreign link" retry 10 sh -c "grep -q 'not this driver' '$DOCKERD_LOG'"
ip link del "$BF"

# --- dockerd restart (containers are stopped by the harness; restart=always brings c1/c2 back)
docker rm -f c3 c4 s1 >/dev/null
check "dockerd restarts" e2e_restart_dockerd
check "c1 running again" retry 100 running c1
check "c2 running again" retry 100 running c2
check "after dockerd restart: c1 pings c2" retry 25 docker exec c1 ping -c 1 -W 1 "$(ip_of c2 netR)"
check "after dockerd restart: new container joins" docker run -d --name c5 --network netR "$IMAGE" sleep 600
check "c5 pings c1" docker exec c5 ping -c 1 -W 2 "$(ip_of c1 netR)"
expect_eq "three host veths on the bridge (no leftovers from the old endpoints)" 3 \
  "$(ip -o link show master "obt${S}r" | wc -l)"

# --- network rm leaves nothing
docker rm -f c1 c2 c5 >/dev/null
check "rm netR" docker network rm netR
check "rm netS" docker network rm netS
expect_eq "no bridge or veth of ours left" 0 "$(our_links)"
expect_eq "no nftables table of ours left" 0 "$(nft list tables 2>/dev/null | grep -c "outboard_network_$TAG")"
