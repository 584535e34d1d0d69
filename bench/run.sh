#!/usr/bin/env bash
# Run every benchmark: start-up/RSS, then each plugin's side-by-side script if present.
set -u
cd "$(dirname "$0")"
for b in startup.sh volume.sh network.sh ipam.sh authz.sh swarm.sh; do
  [ -f "$b" ] || continue
  echo "=== bench/$b"
  bash "$b" || echo "=== bench/$b failed"
done
# Firewall apply cost at 10/100/1,000 networks and 10,000 ports (real kernel, private netns).
echo "=== cargo bench -p network-driver --bench firewall"
(cd .. && cargo bench -q -p network-driver --bench firewall) || echo "=== firewall bench failed"
