#!/usr/bin/env bash
# Run every end-to-end test (tests/e2e/test_*.sh), each against its own private dockerd.
# Usage: [DOCKERD=20.10|26.1] bash tests/e2e/run.sh [name-filter]   (default 20.10; see lib.sh)
set -u
cd "$(dirname "$0")"
failed=()
for t in test_*.sh; do
  case "$t" in *"${1:-}"*) ;; *) continue ;; esac
  echo "=== $t (dockerd ${DOCKERD:-20.10})"
  start=$(date +%s)
  # One test file at a time per machine: test files create host bridges and subnets that would
  # clash if two runs (two checkouts) overlapped. -o: daemons the test starts must not inherit the
  # lock (a leaked one would hold it forever).
  if flock -o /tmp/outboard-e2e.lock bash "$t"; then echo "=== $t passed in $(( $(date +%s) - start ))s"
  else failed+=("$t"); echo "=== $t FAILED (dockerd ${DOCKERD:-20.10})"; fi
done
if [ ${#failed[@]} -gt 0 ]; then echo "failed on dockerd ${DOCKERD:-20.10}: ${failed[*]}"; exit 1; fi
echo "all e2e tests passed on dockerd ${DOCKERD:-20.10}"
