#!/usr/bin/env bash
# `make demo`: the main job, visibly. Brings up a private dockerd (installing docker.io if
# missing), installs the four Outboard plugins into it, shows each one working, and cleans up.
source "$(dirname "$0")/lib.sh"
say() { printf '\n\033[1;34m== %s\033[0m\n' "$*" >&2; }
run() { printf '\033[2m$ %s\033[0m\n' "$*" >&2; "$@"; }

if command docker version >/dev/null 2>&1; then
  say "A Docker daemon already answers at ${DOCKER_HOST:-the default socket}; the demo uses its own private dockerd so yours stays untouched."
else
  say "No Docker daemon is reachable: installing docker.io if missing and starting a private dockerd."
fi
e2e_start
say "Private dockerd: DOCKER_HOST=$DOCKER_HOST. Installing the four plugins (make plugin-install)."
e2e_install volume network ipam authz
run docker plugin ls

say "Volume driver: a volume owned by 1000:1000 with mode 0750, written in one container, read in another"
run docker volume create -d $PREFIX-volume -o uid=1000 -o gid=1000 -o mode=0750 demo-vol
run docker run --rm -v demo-vol:/vol $IMAGE sh -c 'echo hello from the first container > /vol/greeting; ls -ln /vol; stat -c "owner %u:%g mode %a" /vol'
run docker run --rm -v demo-vol:/vol $IMAGE cat /vol/greeting
run docker volume inspect -f '{{json .Status}}' demo-vol

say "Network + IPAM: a bridge network of ours with addresses from our IPAM; two containers ping each other"
run docker network create -d $PREFIX-network:latest --ipam-driver $PREFIX-ipam:latest \
  --subnet 10.97.0.0/24 --ip-range 10.97.0.128/25 --gateway 10.97.0.1 demo-net
run docker run -d --name demo-a --network demo-net $IMAGE sleep 300 >/dev/null
ip_a=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' demo-a)
echo "demo-a has $ip_a (from the ip-range 10.97.0.128/25)" >&2
run docker run --rm --network demo-net $IMAGE ping -c 2 -W 2 "$ip_a"
sock=$E2E_PLUGIN_DIR/$(plugin_id $PREFIX-ipam:latest)/outboard-ipam.sock
run curl -s --unix-socket "$sock" http://ipam/outboard/v1/pools
echo >&2
docker rm -f demo-a >/dev/null

say "Authorization: our policy on every API call (enabled in the private daemon's config, then removed)"
echo '{"authorization-plugins":["'$PREFIX'-authz:latest"]}' > "$E2E_DIR/daemon.json"
kill -HUP "$DOCKERD_PID"; retry 25 docker ps
run docker run --rm $IMAGE echo "an ordinary container is allowed"
run docker run --rm --privileged $IMAGE true || true
run docker plugin disable $PREFIX-authz:latest || true
echo '{}' > "$E2E_DIR/daemon.json"; kill -HUP "$DOCKERD_PID"; retry 25 docker ps
say "The audit trail (host side of the plugin's audit mount): the last decisions"
run tail -n 3 "$E2E_DIR/audit/audit.log" >&2

say "Cleaning up: containers, networks, volumes, plugins and the private daemon"
docker network rm demo-net >/dev/null
docker volume rm demo-vol >/dev/null
