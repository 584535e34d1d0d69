#!/usr/bin/env bash
# Swarm (issue 13), services with all our plugins on a 3-node swarm (see swarm/lib.sh): the
# manager allocates every task's address through outboard-ipam on an outboard-overlay network
# (no duplicates, released when the tasks go, GLOBAL_DEFAULT_POOLS for networks without
# --subnet); service volumes through outboard-volume on every node (per-node data); a service
# spec denied by the example authz policy is refused by the manager.
# The swarm nodes run Debian 12's dockerd (20.10) whatever DOCKERD says: on the 26.1 pass of
# `make e2e` this file would repeat the 20.10 run exactly, so it says so and stops.
if [ "${DOCKERD:-20.10}" != 20.10 ]; then
  echo "  skip $(basename "$0"): the swarm harness runs dockerd 20.10 only (done in the 20.10 pass)"
  exit 0
fi
source "$(dirname "$0")/swarm/lib.sh"
sw_up network ipam volume authz overlay
OV=$PREFIX-overlay:latest
IP=$PREFIX-ipam:latest
# ipam NODE PATH: the IPAM plugin's own view (relative socket path: the full one is too long).
ipam() { (cd "$SW_DIR/n$1/run-docker/plugins/$(dk "$1" plugin inspect -f '{{.Id}}' "$IP")" && curl -sf --unix-socket outboard-ipam.sock "http://x$2"); }
held() { ipam 1 "/outboard/v1/pools?pool=$1" | jq -r '.pools[0].held'; }

# --- IPAM: the manager allocates through outboard-ipam
check "manager: ipam GLOBAL_DEFAULT_POOLS=10.79.0.0/16/24" sh -c "$DOCKER_BIN -H unix://$SW_DIR/n1/docker.sock plugin disable $IP >/dev/null && $DOCKER_BIN -H unix://$SW_DIR/n1/docker.sock plugin set $IP GLOBAL_DEFAULT_POOLS=10.79.0.0/16/24 && $DOCKER_BIN -H unix://$SW_DIR/n1/docker.sock plugin enable $IP >/dev/null"
check "overlay with outboard-ipam (--subnet)" dk 1 network create -d "$OV" --ipam-driver "$IP" --scope swarm --attachable --subnet 10.78.7.0/24 ovi
check "global service on it" dk 1 service create --detach --no-resolve-image --name gi --mode global --endpoint-mode dnsrr --network ovi "$IMAGE" sleep 3600
check "three tasks running" retry 300 running gi 3
addrs=$(for i in 1 2 3; do dk "$i" inspect -f '{{(index .NetworkSettings.Networks "ovi").IPAddress}}' "$(task_of "$i" gi)"; done)
expect_eq "three task addresses in 10.78.7.0/24" 3 "$(grep -c '^10\.78\.7\.' <<<"$addrs")"
expect_eq "no duplicate address" 3 "$(sort -u <<<"$addrs" | wc -l)"
expect_contains "the manager's outboard-ipam holds the pool" '"10.78.7.0/24"' "$(ipam 1 '/outboard/v1/pools?pool=10.78.7.0/24')"
H=$(held 10.78.7.0/24)
check "the manager's outboard-ipam holds the tasks' addresses (held=$H)" test "${H:-0}" -ge 3
t2=$(task_of 2 gi)
check "task on node 1 reaches task on node 2" dk 1 exec "$(task_of 1 gi)" ping -c1 -W2 "$(dk 2 inspect -f '{{(index .NetworkSettings.Networks "ovi").IPAddress}}' "$t2")"
check "service rm" dk 1 service rm gi
released() { [ "$(held 10.78.7.0/24)" -le $((H - 3)) ]; }
check "addresses released on the manager when the tasks go" retry 300 released
check "overlay from GLOBAL_DEFAULT_POOLS (no --subnet)" dk 1 network create -d "$OV" --ipam-driver "$IP" --scope swarm --attachable ovd
expect_contains "its subnet comes from 10.79.0.0/16" "10.79." "$(dk 1 network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' ovd)"
check "network rm ovi" retry 50 dk 1 network rm ovi
check "network rm ovd" dk 1 network rm ovd

# --- volumes for services: per-node data on each node
check "global service with an outboard-volume mount" dk 1 service create --detach --no-resolve-image --name gv --mode global \
  --mount type=volume,source=sv,target=/d,volume-driver=$PREFIX-volume,volume-opt=uid=1000 \
  "$IMAGE" sh -c 'hostname > /d/who; sleep 3600'
check "three tasks running" retry 300 running gv 3
for i in 1 2 3; do
  expect_eq "node $i: volume sv by outboard-volume" "$PREFIX-volume:latest" "$(dk "$i" volume inspect -f '{{.Driver}}' sv)"
  c=$(task_of "$i" gv)
  expect_eq "node $i: uid=1000 applied" 1000 "$(dk "$i" exec "$c" stat -c %u /d)"
  check "node $i: the task wrote its own node's data" retry 50 sh -c "[ \"\$($DOCKER_BIN -H unix://$SW_DIR/n$i/docker.sock exec $c cat /d/who)\" = \"\$($DOCKER_BIN -H unix://$SW_DIR/n$i/docker.sock exec $c hostname)\" ]"
done
check "service rm gv" dk 1 service rm gv

# --- authz: the manager refuses a service spec the example policy denies
set_authz() {
  if [ "$1" = on ]; then printf '{"authorization-plugins":["%s"]}\n' "$PREFIX-authz:latest" >"$SW_DIR/n1/daemon.json"
  else echo '{}' >"$SW_DIR/n1/daemon.json"; fi
  local before; before=$(grep -c 'Reloaded configuration' "$SW_DIR/n1/dockerd.log")
  kill -HUP "$(cat "$SW_DIR/n1/docker.pid")"
  retry 50 sh -c "[ \$(grep -c 'Reloaded configuration' '$SW_DIR/n1/dockerd.log') -gt $before ]"
}
check "manager: authz on" set_authz on
expect_fail "a service binding /etc from the host is refused" "authorization denied" \
  dk 1 service create --detach --no-resolve-image --name bad --mount type=bind,source=/etc,target=/h "$IMAGE" sleep 60
expect_eq "no such service was created" "" "$(dk 1 service ls -q --filter name=bad)"
check "an allowed service is still created" dk 1 service create --detach --no-resolve-image --name ok1 "$IMAGE" sleep 60
check "manager: authz off" set_authz off
check "service rm ok1" dk 1 service rm ok1
