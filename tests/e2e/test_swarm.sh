#!/usr/bin/env bash
# Swarm, step 1: three private dockerds (each in its own netns, on an underlay 10.77.0.0/24 in a
# netns of its own) form a swarm with all four of our plugins installed on every node before
# init/join; everything is torn down (checked on exit).
source "$(dirname "$0")/swarm/lib.sh"
sw_up network ipam volume authz

expect_eq "three nodes Ready" "3" "$(dk 1 node ls --format '{{.Status}}' | grep -c Ready)"
expect_eq "one manager (leader)" "Leader" "$(dk 1 node ls --format '{{.ManagerStatus}}' | grep -v '^$' | sort -u)"
for i in 1 2 3; do
  expect_eq "node $i: our four plugins enabled" "4" "$(dk "$i" plugin ls --format '{{.Name}} {{.Enabled}}' | grep -c "^$PREFIX-.* true")"
  expect_eq "node $i: swarm active" "active" "$(dk "$i" info --format '{{.Swarm.LocalNodeState}}')"
  expect_eq "node $i: underlay address" "$(sw_addr "$i")" "$(dk "$i" info --format '{{.Swarm.NodeAddr}}')"
done
check "nodes reach each other over the underlay only" ip netns exec "$(sw_ns 2)" busybox ping -c1 -W2 "$(sw_addr 3)"
check "a node netns has no default route" sh -c "! ip -n $(sw_ns 2) route show default | grep -q ."
