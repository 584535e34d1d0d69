#!/usr/bin/env bash
# Network driver benchmark, side by side with Docker's built-in `bridge` driver (user-defined
# network) in one run on a private dockerd:
#   - `docker run --rm` container start on the network (median, ratio),
#   - `docker network create` and `docker network rm` (medians, ratios),
#   - the plugin's own handling time of CreateEndpoint+Join (from its request log lines, which
#     carry `micros`) at the median, and its trend up to N containers on one network.
# Usage: bash bench/network.sh [runs] [containers]     (defaults: 20 runs, 250 containers)
# Not a test: it prints numbers. Needs root (private dockerd), like the e2e tests.
set -u
RUNS=${1:-20}
MANY=${2:-250}
source "$(dirname "$0")/../tests/e2e/lib.sh"
e2e_start >/dev/null
e2e_install network >/dev/null 2>&1 || { echo "plugin install failed"; exit 1; }
D=$PREFIX-network:latest
S=$(printf '%04x' $(( ($$ + 29) % 65536 )))

now_us() { echo $(( $(date +%s%N) / 1000 )); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print 0} else if (NR%2) {print a[(NR+1)/2]} else {print int((a[NR/2]+a[NR/2+1])/2)}}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.1f", u/1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b>0) printf "%.3f", a/b; else print "n/a"}'; }
# time_us cmd...: wall time of one command in microseconds (output discarded).
time_us() { local t0 t1; t0=$(now_us); "$@" >/dev/null 2>&1 || echo "command failed: $*" >&2; t1=$(now_us); echo $((t1 - t0)); }

docker network create -d bridge --subnet 10.96.50.0/24 -o com.docker.network.bridge.name="obt${S}k" benchK >/dev/null
docker network create -d "$D" --subnet 10.96.51.0/24 -o bridge_name="obt${S}o" benchO >/dev/null
# Warm-up (image layers, first use of each driver).
docker run --rm --network benchK "$IMAGE" true >/dev/null 2>&1
docker run --rm --network benchO "$IMAGE" true >/dev/null 2>&1

# --- container start, interleaved so drift hits both drivers alike
: >"$E2E_DIR/run_k"; : >"$E2E_DIR/run_o"
for ((i = 0; i < RUNS; i++)); do
  time_us docker run --rm --network benchK "$IMAGE" true >>"$E2E_DIR/run_k"
  time_us docker run --rm --network benchO "$IMAGE" true >>"$E2E_DIR/run_o"
done
RK=$(median <"$E2E_DIR/run_k"); RO=$(median <"$E2E_DIR/run_o")

# --- network create / rm
: >"$E2E_DIR/ck"; : >"$E2E_DIR/co"; : >"$E2E_DIR/rk"; : >"$E2E_DIR/ro"
for ((i = 0; i < RUNS; i++)); do
  time_us docker network create -d bridge --subnet 10.96.60.0/24 -o com.docker.network.bridge.name="obt${S}x" bk >>"$E2E_DIR/ck"
  time_us docker network rm bk >>"$E2E_DIR/rk"
  time_us docker network create -d "$D" --subnet 10.96.61.0/24 bo >>"$E2E_DIR/co"
  time_us docker network rm bo >>"$E2E_DIR/ro"
done
CK=$(median <"$E2E_DIR/ck"); CO=$(median <"$E2E_DIR/co")
MK=$(median <"$E2E_DIR/rk"); MO=$(median <"$E2E_DIR/ro")

# --- the plugin's own time per endpoint: CreateEndpoint + Join, paired in log order
pairs() {
  plugin_log "$D" | sed -n 's/.*path=\/NetworkDriver\.\(CreateEndpoint\|Join\) status=200 micros=\([0-9]*\).*/\1 \2/p' |
    awk '$1=="CreateEndpoint" {c=$2} $1=="Join" && c!="" {print c+$2; c=""}'
}
PAIRS_START=$(pairs | wc -l)
EJ=$(pairs | median)
handler() { plugin_log "$D" | sed -n "s/.*path=\/NetworkDriver\.$1 status=200 micros=\([0-9]*\).*/\1/p" | median; }
HC=$(handler CreateNetwork); HD=$(handler DeleteNetwork); HE=$(handler CreateEndpoint); HJ=$(handler Join)

# --- trend: MANY containers on one network, started one after the other (so the log's
# CreateEndpoint and Join lines pair up)
for ((i = 1; i <= MANY; i++)); do
  docker run -d --name "many$i" --network benchO "$IMAGE" sleep 3600 >/dev/null 2>&1 || echo "  start $i failed"
done
UP=$(docker ps -q --filter name=many | wc -l)
pairs | tail -n +"$((PAIRS_START + 1))" >"$E2E_DIR/trend"

printf '\n%-44s %12s %12s %8s\n' "measure (median of $RUNS)" "bridge ms" "outboard ms" "ratio"
printf '%-44s %12s %12s %8s\n' "docker run --rm (container start+stop)" "$(ms $RK)" "$(ms $RO)" "$(ratio $RO $RK)"
printf '%-44s %12s %12s %8s\n' "docker network create" "$(ms $CK)" "$(ms $CO)" "$(ratio $CO $CK)"
printf '%-44s %12s %12s %8s\n' "docker network rm" "$(ms $MK)" "$(ms $MO)" "$(ratio $MO $MK)"
printf '\nplugin CreateEndpoint+Join handling, median over %s endpoints: %s ms (target < 2 ms)\n' "$PAIRS_START" "$(ms $EJ)"
printf 'plugin handler medians: CreateNetwork %s ms, DeleteNetwork %s ms, CreateEndpoint %s ms, Join %s ms\n' \
  "$(ms $HC)" "$(ms $HD)" "$(ms $HE)" "$(ms $HJ)"
printf 'trend with %s containers running on one network (CreateEndpoint+Join, ms):\n' "$UP"
n=$(wc -l <"$E2E_DIR/trend")
step=50
for ((from = 1; from <= n; from += step)); do
  to=$((from + step - 1)); [ $to -gt $n ] && to=$n
  m=$(sed -n "${from},${to}p" "$E2E_DIR/trend" | median)
  p90=$(sed -n "${from},${to}p" "$E2E_DIR/trend" | sort -n | awk '{a[NR]=$1} END {i=int(NR*0.9); if (i<1) i=1; print a[i]}')
  printf '  containers %3d-%3d: median %6s  p90 %6s\n' "$from" "$to" "$(ms $m)" "$(ms $p90)"
done

# --- clean up (teardown also does this; removing here keeps its time bounded)
docker ps -aq --filter name=many | xargs -r -n 50 docker rm -f >/dev/null 2>&1
docker network rm benchK benchO >/dev/null 2>&1
