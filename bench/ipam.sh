#!/usr/bin/env bash
# IPAM benchmark. Usage: bash bench/ipam.sh
#  1. In-process (cargo bench): the allocator alone, and the durable service (group-committed
#     flush before every answer) with 1 and 32 concurrent callers.
#  2. Through the socket: the release binary in legacy mode on a temporary socket, raw
#     keep-alive HTTP/1.1 clients (1 and 32), then a /8 filled to 1,000,000 held addresses and
#     the plugin's RSS.
#     With IPAM_BENCH_BEFORE=<an older outboard-ipam binary> the same socket run is made first
#     with that binary, so two versions are compared in one run (e.g. before and after the store
#     began to fdatasync every group commit: build c5af07f^ into a scratch target dir).
#  3. Side by side with Docker's built-in IPAM in one private dockerd: median time of
#     `docker network create` + `docker run` + `docker rm` + `docker network rm`, built-in
#     default IPAM vs outboard-ipam, and the ratio.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
bin=$ROOT/target/x86_64-unknown-linux-gnu/release/outboard-ipam
runs=${IPAM_BENCH_RUNS:-10}

echo "== 1. in-process"
cargo bench -q -p ipam-driver --bench ipam 2>/dev/null | grep -v '^$'

echo "== 2. through the socket (legacy mode, durable; state on $(df --output=source /tmp | tail -1))"
make -s build PLUGINS=ipam >/dev/null 2>&1 || { echo "build failed"; exit 1; }
tmp=$(mktemp -d /tmp/ob-ipam-bench.XXXXXX)
pid=
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
socket_bench() { # socket_bench LABEL BINARY: one fresh plugin, the socket phases, stop it
  echo "-- $1: $2"
  rm -rf "$tmp/state" "$tmp/ipam.sock"
  LISTEN=unix://$tmp/ipam.sock STATE_DIR=$tmp/state "$2" 2>"$tmp/log" &
  pid=$!
  for ((i = 0; i < 500; i++)); do [ -S "$tmp/ipam.sock" ] && break; sleep 0.01; done
  cargo bench -q -p ipam-driver --bench ipam -- --socket "$tmp/ipam.sock" --pid "$pid" 2>/dev/null | grep -v '^$'
  kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
}
if [ -n "${IPAM_BENCH_BEFORE:-}" ]; then socket_bench before "$IPAM_BENCH_BEFORE"; fi
socket_bench "this tree" "$bin"

echo "== 3. side by side with the built-in IPAM (median of $runs, private dockerd)"
# shellcheck source=../tests/e2e/lib.sh
source "$ROOT/tests/e2e/lib.sh"
trap - EXIT
e2e_start >/dev/null 2>&1 || { echo "no dockerd"; exit 1; }
e2e_install ipam >/dev/null 2>&1 || { echo "plugin install failed"; exit 1; }
rm -rf "$tmp"
cycle() { # cycle <ipam-args...>: create a network, run a container on it, remove both
  local s e
  s=$(date +%s%N)
  docker network create -d bridge "$@" --subnet 10.98.200.0/24 obbench >/dev/null &&
    docker run --rm --network obbench "$IMAGE" true >/dev/null 2>&1 &&
    docker network rm obbench >/dev/null
  e=$(date +%s%N)
  echo $(((e - s) / 1000))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Interleaved (one of each per round) so that load from elsewhere hits both alike; one warm-up.
cycle >/dev/null; cycle --ipam-driver "$PREFIX-ipam:latest" >/dev/null
: >"$E2E_DIR/builtin"; : >"$E2E_DIR/ours"
for ((i = 0; i < runs; i++)); do
  cycle >>"$E2E_DIR/builtin"
  cycle --ipam-driver "$PREFIX-ipam:latest" >>"$E2E_DIR/ours"
done
builtin=$(median <"$E2E_DIR/builtin")
ours=$(median <"$E2E_DIR/ours")
# The plugin's own time per call, from its request log.
calls=$(plugin_log "$PREFIX-ipam:latest" | grep -o 'path=/IpamDriver[^ ]* status=200 micros=[0-9]*' | sed 's/.*micros=//' | median)
printf '%-48s %10s ms\n' "network+container cycle, built-in IPAM" "$(awk -v u="$builtin" 'BEGIN{printf "%.1f", u/1000}')"
printf '%-48s %10s ms\n' "network+container cycle, outboard-ipam" "$(awk -v u="$ours" 'BEGIN{printf "%.1f", u/1000}')"
printf '%-48s %10s ms\n' "median IpamDriver call inside the plugin" "$(awk -v u="$calls" 'BEGIN{printf "%.2f", u/1000}')"
printf '%-48s %10s\n' "ratio outboard/built-in" "$(awk -v a="$ours" -v b="$builtin" 'BEGIN{printf "%.2f", a/b}')"
