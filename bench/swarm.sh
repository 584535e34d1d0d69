#!/usr/bin/env bash
# Swarm overlay benchmark, side by side in one run on the same three nodes (tests/e2e/swarm/lib.sh):
# our outboard-overlay vs Docker's built-in `overlay` driver (both VXLAN, both unencrypted).
#   - cross-node TCP throughput: a 1 GiB HTTP download (busybox httpd -> wget) from a container
#     on node 2 to a container on node 3, timed inside the client container;
#   - cross-node round-trip latency: busybox ping, 200 probes 20 ms apart, the average;
#   - service create -> all tasks running: a global dnsrr service on the network (one task
#     per node), from `service create` until `service ps` shows 3 Running.
# Rounds alternate between the drivers so drift hits both alike; medians are reported.
# Targets (issue 13): throughput >= 0.95x, latency <= 1.05x, service start <= 1.10x built-in.
# Usage: bash bench/swarm.sh [rounds]   (default 5). Needs root, like the e2e tests.
# Not a test: it prints numbers.
set -u
ROUNDS=${1:-5}
MIB=${BENCH_MIB:-1024}
source "$(dirname "$0")/../tests/e2e/swarm/lib.sh"
sw_up overlay >/dev/null
OV=$PREFIX-overlay:latest

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print 0} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b>0) printf "%.3f", a/b; else print "n/a"}'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

dk 1 network create -d overlay --attachable --subnet 10.78.40.0/24 bk >/dev/null || { echo "built-in overlay network failed"; exit 1; }
dk 1 network create -d "$OV" --scope swarm --attachable --subnet 10.78.41.0/24 bo >/dev/null || { echo "outboard overlay network failed"; exit 1; }
for n in bk bo; do
  dk 2 run -d --name "srv_$n" --network "$n" "$IMAGE" sh -c \
    "mkdir -p /tmp/w && dd if=/dev/zero of=/tmp/w/big bs=1048576 count=$MIB 2>/dev/null && httpd -f -p 8080 -h /tmp/w" >/dev/null
  dk 3 run -d --name "cli_$n" --network "$n" "$IMAGE" sleep 36000 >/dev/null
done
declare -A SIP
for n in bk bo; do
  SIP[$n]=$(ip_on 2 "srv_$n" "$n")
  retry 150 dk 3 exec "cli_$n" wget -q -O /dev/null "http://${SIP[$n]}:8080/big" ||
    { echo "$n: the client cannot download from the server"; exit 1; }
done

: >"$SW_DIR/tp_bk"; : >"$SW_DIR/tp_bo"; : >"$SW_DIR/lat_bk"; : >"$SW_DIR/lat_bo"
: >"$SW_DIR/svc_bk"; : >"$SW_DIR/svc_bo"
for ((r = 1; r <= ROUNDS; r++)); do
  for n in bk bo; do
    # busybox time: "real\t0m 1.23s"
    s=$(dk 3 exec "cli_$n" sh -c "time wget -q -O /dev/null http://${SIP[$n]}:8080/big" 2>&1 |
      awk '/^real/ {sub(/s$/, "", $3); split($2, m, "m"); print m[1] * 60 + $3}')
    [ -n "$s" ] && awk -v s="$s" -v mib="$MIB" 'BEGIN {if (s > 0) printf "%.1f\n", mib * 8 * 1.048576 / s}' >>"$SW_DIR/tp_$n"
    dk 3 exec "cli_$n" ping -q -c 200 -i 0.02 "${SIP[$n]}" 2>&1 |
      sed -n 's/.*min\/avg\/max = [0-9.]*\/\([0-9.]*\)\/.*/\1/p' >>"$SW_DIR/lat_$n"
    t0=$(now_ms)
    dk 1 service create --detach --no-resolve-image --name "svc_$n" --mode global --endpoint-mode dnsrr \
      --network "$n" "$IMAGE" sleep 3600 >/dev/null
    if retry 1500 running "svc_$n" 3; then echo $(( $(now_ms) - t0 )) >>"$SW_DIR/svc_$n"
    else echo "  round $r: svc_$n did not reach 3 running tasks" >&2; fi
    dk 1 service rm "svc_$n" >/dev/null
    for i in 1 2 3; do retry 300 sh -c "[ -z \"\$($DOCKER_BIN -H unix://$SW_DIR/n$i/docker.sock ps -q --filter label=com.docker.swarm.service.name=svc_$n)\" ]"; done
  done
  echo "  round $r done" >&2
done

TK=$(median <"$SW_DIR/tp_bk"); TO=$(median <"$SW_DIR/tp_bo")
LK=$(median <"$SW_DIR/lat_bk"); LO=$(median <"$SW_DIR/lat_bo")
SK=$(median <"$SW_DIR/svc_bk"); SO=$(median <"$SW_DIR/svc_bo")
printf '\n%-52s %12s %12s %8s %s\n' "measure (median of $ROUNDS rounds, 3 nodes)" "overlay" "outboard" "ratio" "target"
printf '%-52s %12s %12s %8s %s\n' "TCP throughput node 2 -> node 3, Mbit/s ($MIB MiB)" "$TK" "$TO" "$(ratio "$TO" "$TK")" ">= 0.95"
printf '%-52s %12s %12s %8s %s\n' "round-trip latency node 3 -> node 2, ms (ping avg)" "$LK" "$LO" "$(ratio "$LO" "$LK")" "<= 1.05"
printf '%-52s %12s %12s %8s %s\n' "global service create -> 3 tasks running, ms" "$SK" "$SO" "$(ratio "$SO" "$SK")" "<= 1.10"
echo "raw: tp_bk=[$(tr '\n' ' ' <"$SW_DIR/tp_bk")] tp_bo=[$(tr '\n' ' ' <"$SW_DIR/tp_bo")]"
echo "raw: lat_bk=[$(tr '\n' ' ' <"$SW_DIR/lat_bk")] lat_bo=[$(tr '\n' ' ' <"$SW_DIR/lat_bo")]"
echo "raw: svc_bk=[$(tr '\n' ' ' <"$SW_DIR/svc_bk")] svc_bo=[$(tr '\n' ' ' <"$SW_DIR/svc_bo")]"
dk 2 rm -f srv_bk srv_bo >/dev/null 2>&1; dk 3 rm -f cli_bk cli_bo >/dev/null 2>&1
dk 1 network rm bk bo >/dev/null 2>&1
