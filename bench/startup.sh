#!/usr/bin/env bash
# Start-up time (process start → first answer to Plugin.Activate) and idle RSS of each plugin
# binary, run in legacy mode on a temporary socket. Usage: bash bench/startup.sh [runs]
set -u
cd "$(dirname "$0")/.."
runs=${1:-10}
bin=target/x86_64-unknown-linux-gnu/release
tmp=$(mktemp -d /tmp/ob-start.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
printf '%-10s %14s %14s %12s\n' plugin "median ms" "max ms" "idle RSS KiB"
for p in volume network ipam authz; do
  times=()
  rss=0
  for ((i = 0; i < runs; i++)); do
    sock=$tmp/$p.sock; rm -rf "$tmp/state-$p"
    start=$(date +%s%N)
    LISTEN=unix://$sock STATE_DIR=$tmp/state-$p POLICY=$tmp/none.toml "$bin/outboard-$p" 2>/dev/null &
    pid=$!
    for ((j = 0; j < 1000; j++)); do
      curl -s --unix-socket "$sock" -X POST http://p/Plugin.Activate 2>/dev/null | grep -q Implements && break
      sleep 0.002
    done
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000 )))
    if [ "$i" -eq 0 ]; then sleep 1; rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status); fi
    kill -TERM $pid; wait $pid 2>/dev/null
  done
  sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  med=${sorted[$((runs / 2))]}; max=${sorted[$((runs - 1))]}
  printf '%-10s %14s %14s %12s\n' "$p" "$(awk -v u=$med 'BEGIN{printf "%.1f", u/1000}')" "$(awk -v u=$max 'BEGIN{printf "%.1f", u/1000}')" "$rss"
done
