#!/usr/bin/env bash
# The whole e2e suite on each daemon given (e.g. `all.sh 20.10 26.1`), in parallel: the first
# pass runs in this network namespace, every other one at the same time in a private one
# (run.sh E2E_NETNS=1), so they never share a bridge, subnet or nft table. Lines are prefixed
# with the daemon. E2E_SERIAL=1 runs the passes one after another instead.
# In parallel, the swarm files (20.10 only) run after the passes, on their own: starting swarm
# nodes while the 26.1 pass runs was seen to break the 26.1 volume plugin's mount propagation
# (its containers saw the bare mount point; cause not yet found).
set -u
cd "$(dirname "$0")"
[ $# -gt 0 ] || set -- 20.10
pids=() names=() first=1
report() { if [ "$2" = 0 ]; then echo "##### e2e on dockerd $1: passed"; else echo "##### e2e on dockerd $1: FAILED"; rc=1; fi; }
rc=0
# Packages and the 26.1 download once, one daemon after the other, before any pass starts: two
# passes installing at the same time on a fresh machine fight over dpkg's lock.
for d in "$@"; do
  ( export DOCKERD=$d; source ./lib.sh && e2e_install_packages ) || { echo "##### cannot install what dockerd $d needs"; exit 1; }
done
for d in "$@"; do
  ns=1; [ $first = 1 ] && ns=0; first=0
  [ "${E2E_SERIAL:-0}" = 1 ] && ns=0
  skip=swarm; [ "${E2E_SERIAL:-0}" = 1 ] && skip=
  ( set -o pipefail
    DOCKERD=$d E2E_NETNS=$ns E2E_SKIP=$skip bash run.sh 2>&1 | sed -u "s/^/[$d] /" ) &
  if [ "${E2E_SERIAL:-0}" = 1 ]; then wait $!; report "$d" $?
  else pids+=($!) names+=("$d"); fi
done
for i in "${!pids[@]}"; do wait "${pids[$i]}"; report "${names[$i]}" $?; done
if [ "${E2E_SERIAL:-0}" != 1 ]; then
  ( set -o pipefail
    DOCKERD=20.10 bash run.sh swarm 2>&1 | sed -u "s/^/[swarm] /" )
  report "20.10 (swarm files)" $?
fi
exit $rc
