#!/usr/bin/env bash
# Run every end-to-end test (tests/e2e/test_*.sh), each against its own private dockerd.
# Usage: [DOCKERD=20.10|26.1] [E2E_NETNS=1] bash tests/e2e/run.sh [name-filter]
#   DOCKERD    the daemon (default 20.10; see lib.sh)
#   E2E_NETNS  1: run the whole pass in a private network + mount namespace (below), so it can
#              run beside another pass; `make e2e` runs the 26.1 pass that way, in parallel.
#   E2E_SKIP   leave out the files whose name contains this string.
set -u
cd "$(dirname "$0")"

if [ "${E2E_NETNS:-0}" = 1 ] && [ -z "${E2E_IN_NETNS:-}" ]; then
  # Everything that needs the machine's uplink happens first: packages, the 26.1 download.
  (source ./lib.sh && e2e_install_packages) || exit 1
  # A new network namespace: bridges, veths, nft tables, ip_forward, published ports and
  # `ip netns` names of this pass never meet another pass's (or the host's). A new mount
  # namespace (private propagation) for a sysfs that shows this namespace's interfaces and a
  # private /run/netns; /sys/fs/cgroup is carried over so runc still finds its cgroups.
  exec unshare --net --mount --propagation private -- bash -c '
    set -e
    ip link set lo up
    cg=$(mktemp -d /tmp/ob-cg.XXXXXX)
    mount --rbind /sys/fs/cgroup "$cg"
    mount -t sysfs sysfs /sys
    mount --rbind "$cg" /sys/fs/cgroup
    umount -l "$cg"; rmdir "$cg"
    mkdir -p /run/netns; mount -t tmpfs -o mode=755 netns /run/netns
    exec env E2E_IN_NETNS=1 bash "$0" "$@"' "$PWD/run.sh" "$@"
fi

# Host-namespace passes take the machine-wide lock: their bridges and subnets would clash if two
# runs (two checkouts) overlapped. A private-namespace pass shares nothing that needs it.
LOCK=/tmp/outboard-e2e.lock
[ -n "${E2E_IN_NETNS:-}" ] && LOCK=$(mktemp /tmp/ob-e2e-ns.XXXXXX.lock)

failed=()
for t in test_*.sh; do
  case "$t" in *"${1:-}"*) ;; *) continue ;; esac
  # E2E_SKIP: files whose name contains it are left out (all.sh runs the swarm files apart).
  if [ -n "${E2E_SKIP:-}" ]; then case "$t" in *"$E2E_SKIP"*) continue ;; esac; fi
  echo "=== $t (dockerd ${DOCKERD:-20.10})"
  start=$(date +%s)
  # -o: daemons the test starts must not inherit the lock (a leaked one would hold it forever).
  if flock -o "$LOCK" bash "$t"; then echo "=== $t passed in $(( $(date +%s) - start ))s"
  else failed+=("$t"); echo "=== $t FAILED (dockerd ${DOCKERD:-20.10})"; fi
done
[ -n "${E2E_IN_NETNS:-}" ] && rm -f "$LOCK"
if [ ${#failed[@]} -gt 0 ]; then echo "failed on dockerd ${DOCKERD:-20.10}: ${failed[*]}"; exit 1; fi
echo "all e2e tests passed on dockerd ${DOCKERD:-20.10}"
