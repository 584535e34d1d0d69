#!/usr/bin/env bash
# The whole e2e suite on each daemon given (e.g. `all.sh 20.10 26.1`), in parallel: the first
# pass runs in this network namespace, every other one at the same time in a private one
# (run.sh E2E_NETNS=1), so they never share a bridge, subnet or nft table. Lines are prefixed
# with the daemon. E2E_SERIAL=1 runs the passes one after another instead.
set -u
cd "$(dirname "$0")"
[ $# -gt 0 ] || set -- 20.10
pids=() names=() first=1
report() { if [ "$2" = 0 ]; then echo "##### e2e on dockerd $1: passed"; else echo "##### e2e on dockerd $1: FAILED"; rc=1; fi; }
rc=0
for d in "$@"; do
  ns=1; [ $first = 1 ] && ns=0; first=0
  [ "${E2E_SERIAL:-0}" = 1 ] && ns=0
  ( set -o pipefail
    DOCKERD=$d E2E_NETNS=$ns bash run.sh 2>&1 | sed -u "s/^/[$d] /" ) &
  if [ "${E2E_SERIAL:-0}" = 1 ]; then wait $!; report "$d" $?
  else pids+=($!) names+=("$d"); fi
done
for i in "${!pids[@]}"; do wait "${pids[$i]}"; report "${names[$i]}" $?; done
exit $rc
