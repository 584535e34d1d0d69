#!/usr/bin/env bash
# Swarm (issue 13), when nodes and plugins come and go, on the 3-node swarm (see swarm/lib.sh):
# a global dnsrr service on an outboard-overlay network whose addresses come from outboard-ipam.
#   - a worker's dockerd restarts: its task comes back and every task reaches it again;
#   - a worker leaves the swarm and rejoins: the others drop it from their VXLAN flood list on
#     leave (DiscoverDelete) and take it back on rejoin (DiscoverNew); connectivity returns;
#   - the manager's outboard-ipam and outboard-overlay are SIGKILLed while a replicated service
#     scales up and down: the service converges, no two tasks share an address, all reach
#     each other;
#   - no host-side veth of ours outlives its container on any node, and `network rm` leaves no
#     link of ours on any node.
# The swarm nodes run Debian 12's dockerd (20.10) whatever DOCKERD says: on the 26.1 pass of
# `make e2e` this file would repeat the 20.10 run exactly, so it says so and stops.
if [ "${DOCKERD:-20.10}" != 20.10 ]; then
  echo "  skip $(basename "$0"): the swarm harness runs dockerd 20.10 only (done in the 20.10 pass)"
  exit 0
fi
source "$(dirname "$0")/swarm/lib.sh"
sw_up ipam overlay
OV=$PREFIX-overlay:latest
IP=$PREFIX-ipam:latest
NET=ovr

# fdb_has NODE ADDR: node NODE floods our overlay's traffic to ADDR (the all-zero head-end
# replication entry; entries the kernel learned for single MACs age out on their own).
fdb_has() { bridge -n "$(sw_ns "$1")" fdb show 2>/dev/null | grep -q "^00:00:00:00:00:00 dev oxv.* dst $2 "; }
# veths_match NODE: one host-side veth of ours per container attached to our overlay, no more.
veths_match() {
  local links conts
  links=$(ip -n "$(sw_ns "$1")" -o link show | grep -c ': oxh')
  conts=$(dk "$1" ps -q --filter "network=$NET" | wc -l)
  [ "$links" = "$conts" ]
}
# all_reach SERVICE: every running task of SERVICE pings every other one by address.
all_reach() {
  local i j c ips=() cs=() ns=()
  for i in 1 2 3; do
    for c in $(dk "$i" ps -q --filter "label=com.docker.swarm.service.name=$1"); do
      cs+=("$c"); ns+=("$i"); ips+=("$(ip_on "$i" "$c" "$NET")")
    done
  done
  [ ${#cs[@]} -gt 0 ] || return 1
  for i in "${!cs[@]}"; do
    for j in "${!cs[@]}"; do
      [ "$i" = "$j" ] && continue
      dk "${ns[$i]}" exec "${cs[$i]}" ping -c1 -W2 "${ips[$j]}" >/dev/null || { echo "${ns[$i]}:${ips[$i]} -> ${ips[$j]} failed"; return 1; }
    done
  done
}
# addresses SERVICE: the addresses of its running tasks, one per line, sorted.
addresses() {
  local i c
  for i in 1 2 3; do for c in $(dk "$i" ps -q --filter "label=com.docker.swarm.service.name=$1"); do ip_on "$i" "$c" "$NET"; done; done | sort
}
# kill_settled NODE NAME: SIGKILL the node's plugin once it has run 2 s; prints its PID.
kill_settled() { local pid; pid=$(sw_plugin_pid "$1" "$2") && kill_pid_settled "$pid" && echo "$pid"; }
restarted() { local p; p=$(sw_plugin_pid "$1" "$2") && [ "$p" != "$3" ]; }

check "overlay $NET with outboard-ipam" dk 1 network create -d "$OV" --ipam-driver "$IP" --scope swarm --attachable --subnet 10.78.30.0/24 "$NET"
check "global dnsrr service g" dk 1 service create --detach --no-resolve-image --name g --mode global \
  --endpoint-mode dnsrr --network "$NET" "$IMAGE" sleep 3600
check "one task per node" retry 300 running g 3
check "every task reaches every other" retry 25 all_reach g

# --- a worker's dockerd restarts
check "node 3: dockerd restart" sw_restart_node 3
check "node 3 Ready again" retry 600 sh -c "[ \$($DOCKER_BIN -H unix://$SW_DIR/n1/docker.sock node ls --format '{{.Status}}' | grep -c Ready) = 3 ]"
check "g: a task on each node again" retry 900 sh -c "[ -n \"\$($DOCKER_BIN -H unix://$SW_DIR/n3/docker.sock ps -q --filter label=com.docker.swarm.service.name=g)\" ]"
check "after the restart: every task reaches every other" retry 50 all_reach g
check "node 3: no stale veth of ours after the restart" retry 50 veths_match 3

# --- a worker leaves and rejoins
yes_fdb_2() { fdb_has 1 "$(sw_addr 2)" && fdb_has 3 "$(sw_addr 2)"; }
check "nodes 1 and 3 flood to node 2" yes_fdb_2
check "node 2: swarm leave" dk 2 swarm leave
no_fdb_2() { ! fdb_has 1 "$(sw_addr 2)" && ! fdb_has 3 "$(sw_addr 2)"; }
check "nodes 1 and 3 dropped node 2 from the flood list (DiscoverDelete)" retry 150 no_fdb_2
check "manager's overlay logged the peer's removal" grep -q "peer removed.*$(sw_addr 2)" "$SW_DIR/n1/dockerd.log"
no_ox_2() { [ "$(ip -n "$(sw_ns 2)" -o link show | grep -c ': ox[bvhc]')" = 0 ]; }
check "node 2: the swarm network's links are gone with it" retry 150 no_ox_2
check "with node 2 gone, tasks 1 and 3 still reach each other" retry 50 all_reach g
down_id() { dk 1 node ls --filter role=worker --format '{{.ID}} {{.Status}}' | awk '$2=="Down" {print $1; f=1} END {exit !f}'; }
check "manager: the departed node is Down" retry 300 down_id
check "manager: node rm the departed node" dk 1 node rm "$(down_id)"
TOK=$(dk 1 swarm join-token -q worker)
check "node 2: swarm join again" dk 2 swarm join --token "$TOK" --advertise-addr "$(sw_addr 2)" \
  --listen-addr "$(sw_addr 2):2377" "$(sw_addr 1):2377"
check "node 2 Ready" retry 150 sh -c "[ \$($DOCKER_BIN -H unix://$SW_DIR/n1/docker.sock node ls --format '{{.Status}}' | grep -c Ready) = 3 ]"
check "nodes 1 and 3 take node 2 back (DiscoverNew)" retry 150 yes_fdb_2
check "g: a task on node 2 again" retry 300 sh -c "[ -n \"\$($DOCKER_BIN -H unix://$SW_DIR/n2/docker.sock ps -q --filter label=com.docker.swarm.service.name=g)\" ]"
check "after the rejoin: every task reaches every other" retry 50 all_reach g

# --- the manager's plugins SIGKILLed while a service scales
check "replicated dnsrr service r (3)" dk 1 service create --detach --no-resolve-image --name r --replicas 3 \
  --endpoint-mode dnsrr --network "$NET" "$IMAGE" sleep 3600
check "r: 3 running" retry 300 running r 3
check "r: scale to 9" dk 1 service scale --detach r=9
IPAM_PID=$(kill_settled 1 "$IP")
check "manager: outboard-ipam SIGKILLed during the scale-up" test -n "$IPAM_PID"
check "r: scale to 4" dk 1 service scale --detach r=4
OV_PID=$(kill_settled 1 "$OV")
check "manager: outboard-overlay SIGKILLed during the scale-down" test -n "$OV_PID"
check "manager: outboard-ipam restarted by dockerd" retry 150 restarted 1 "$IP" "$IPAM_PID"
check "manager: outboard-overlay restarted by dockerd" retry 150 restarted 1 "$OV" "$OV_PID"
check "r: scale to 9 again" dk 1 service scale --detach r=9
check "r: 9 running" retry 600 running r 9
A=$(addresses r; addresses g)
expect_eq "12 task addresses, no two alike" "12 12" "$(echo "$A" | grep -c . ) $(echo "$A" | sort -u | grep -c .)"
check "every task of r reaches every other" retry 25 all_reach r
for i in 1 2 3; do check "node $i: one veth of ours per container" retry 50 veths_match "$i"; done

# --- removal: no link of ours left on any node
check "service rm g r" dk 1 service rm g r
gone() { [ -z "$(dk "$1" ps -q --filter "network=$NET")" ]; }
for i in 1 2 3; do check "node $i: tasks gone" retry 300 gone "$i"; done
check "network rm $NET" retry 50 dk 1 network rm "$NET"
no_links() { [ "$(ip -n "$(sw_ns "$1")" -o link show | grep -c ': ox[bvhc]')" = 0 ]; }
for i in 1 2 3; do check "node $i: no overlay link left" retry 100 no_links "$i"; done
