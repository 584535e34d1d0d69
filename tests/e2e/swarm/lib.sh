# shellcheck shell=bash
# The multi-node harness: three private dockerds, each in its own network namespace (and its own
# mount + UTS namespace), joined by an underlay bridge that lives in a namespace of its own
# (10.77.0.0/24: these addresses are the tests' own hosts; nothing is routed anywhere else).
# Our managed plugins are installed on every node BEFORE swarm init/join (dockerd hands a network
# driver its peers only on join events, never replays them), each node with its own state dirs.
#
#   source tests/e2e/swarm/lib.sh
#   sw_up [plugin...]        # underlay, 3 dockerds, busybox on each, plugins on each, swarm formed
#   dk 2 run ...             # the docker CLI against node 2
#   (sw_teardown runs on EXIT, also on failure, and then checks that nothing is left behind:
#    no netns, link, process, mount or cgroup of the run)
#
# Variables after sw_up: SW_DIR, SW_TAG, SW_NS_UL, sw_ns N (netns of node N), IMAGE.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
SW_NODES=(1 2 3)
SW_TAG=$(printf '%04x' $(( $$ % 65536 )))
SW_NS_UL=obsw${SW_TAG}u
sw_ns() { echo "obsw${SW_TAG}n$1"; }
sw_addr() { echo "10.77.0.1$1"; }
sw_cg() { echo "obsw${SW_TAG}n$1"; }
# dk N args...: the docker CLI against node N.
dk() { local n=$1; shift; command "$DOCKER_BIN" -H "unix://$SW_DIR/n$n/docker.sock" "$@"; }
# ip_on NODE CONTAINER NETWORK: the container's address on that network.
ip_on() { dk "$1" inspect -f "{{(index .NetworkSettings.Networks \"$3\").IPAddress}}" "$2"; }
# task_of NODE SERVICE: the container of the service's task on that node.
task_of() { dk "$1" ps -q --filter "label=com.docker.swarm.service.name=$2" | head -1; }
# running SERVICE N: the manager shows exactly N of its tasks Running.
running() { [ "$(dk 1 service ps "$1" --filter desired-state=running --format '{{.CurrentState}}' | grep -c Running)" = "$2" ]; }
# sw_plugin_pid NODE NAME: the host PID of a managed plugin on that node (its cgroup is its ID).
sw_plugin_pid() {
  local id p; id=$(dk "$1" plugin inspect -f '{{.Id}}' "$2") || return 1
  for p in $(pgrep -f '^/bin/outboard-'); do grep -q "/$id\$" "/proc/$p/cgroup" 2>/dev/null && { echo "$p"; return 0; }; done
  return 1
}

# The per-node wrapper. stage1 runs under `unshare -m -u --propagation slave` in the root netns:
# it keeps /sys/fs/cgroup aside (ip netns exec remounts /sys, which would leave dockerd without
# cgroups). stage2 runs under `ip netns exec`: cgroups back, private /run/docker (legacy plugin
# dir), /run/containerd (dockerd then starts its own containerd) and /etc/docker, then dockerd.
sw_write_wrapper() {
  cat >"$SW_DIR/nodewrap.sh" <<'WRAP'
set -e
W=$1 i=$2 ns=$3 cg=$4 dir=$5
D=$dir/n$i
if [ "$W" = stage1 ]; then
  hostname "obsw-n$i"
  mount --rbind /sys/fs/cgroup "$D/cg"
  exec ip netns exec "$ns" /bin/sh "$dir/nodewrap.sh" stage2 "$i" "$ns" "$cg" "$dir"
fi
mount --rbind "$D/cg" /sys/fs/cgroup
mount --bind "$D/run-docker" /run/docker
mount --bind "$D/run-containerd" /run/containerd
mount --bind "$D/etc-docker" /etc/docker
exec dockerd --data-root "$D/root" --exec-root "$D/ex" -H "unix://$D/docker.sock" \
  --pidfile "$D/docker.pid" --config-file "$D/daemon.json" \
  --iptables=false --ip-forward=false --bridge=none \
  --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "$cg" --debug
WRAP
}

sw_underlay() {
  ip netns add "$SW_NS_UL" || return 1
  ip -n "$SW_NS_UL" link set lo up
  ip -n "$SW_NS_UL" link add obswul type bridge
  ip -n "$SW_NS_UL" link set obswul up
  local i ns
  for i in "${SW_NODES[@]}"; do
    ns=$(sw_ns "$i")
    ip netns add "$ns" || return 1
    ip -n "$SW_NS_UL" link add "obswu$i" type veth peer name ul0 netns "$ns" || return 1
    ip -n "$SW_NS_UL" link set "obswu$i" master obswul up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$(sw_addr "$i")/24" dev ul0
    ip -n "$ns" link set ul0 up
  done
}

sw_start_node() {
  local i=$1 D=$SW_DIR/n$1
  mkdir -p "$D/root" "$D/ex" "$D/run-docker/plugins" "$D/run-containerd" "$D/etc-docker" "$D/cg" "$D/state"
  [ -f "$D/daemon.json" ] || echo '{}' >"$D/daemon.json"
  setsid unshare -m -u --propagation slave /bin/sh "$SW_DIR/nodewrap.sh" stage1 "$i" "$(sw_ns "$i")" \
    "$(sw_cg "$i")" "$SW_DIR" >>"$D/dockerd.log" 2>&1 </dev/null &
  echo $! >"$D/wrapper.pid"
}
sw_wait_node() {
  local i=$1 t
  for ((t = 0; t < 300; t++)); do
    dk "$i" version >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "node $i: dockerd did not come up"; tail -20 "$SW_DIR/n$i/dockerd.log" >&2
  return 1
}
# sw_stop_node N: SIGTERM the node's dockerd (bounded wait, then SIGKILL).
sw_stop_node() {
  local f=$SW_DIR/n$1/docker.pid pid t
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((t = 0; t < 150; t++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null
}
sw_restart_node() { sw_stop_node "$1"; rm -f "$SW_DIR/n$1/docker.pid"; sw_start_node "$1"; sw_wait_node "$1"; }

sw_image() {
  local r=$SW_DIR/img i
  mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/data"
  cp /bin/busybox "$r/bin/"
  for a in sh ls cat echo true false ping ip id stat sleep dd wc nc head tail grep hostname ifconfig route mkdir touch rm df mount wget httpd nslookup time seq; do
    ln -sf busybox "$r/bin/$a"; done
  echo 'root:x:0:0:root:/:/bin/sh' >"$r/etc/passwd"
  tar -C "$r" -cf "$SW_DIR/img.tar" .
  for i in "${SW_NODES[@]}"; do dk "$i" import "$SW_DIR/img.tar" "$IMAGE" >/dev/null || return 1; done
}

# sw_install N plugin...: the project's plugins (make plugin-create/enable) into node N, state
# under the node's own directory.
sw_install() {
  local i=$1; shift
  make -s -C "$E2E_ROOT" plugin-create plugin-enable PLUGINS="$*" BUILD_DIR="$SW_DIR/plugins" \
    STATE_ROOT="$SW_DIR/n$i/state" POLICY_DIR="$SW_DIR/n$i/policy" AUDIT_DIR="$SW_DIR/n$i/audit" \
    DOCKER="$DOCKER_BIN -H unix://$SW_DIR/n$i/docker.sock" >/dev/null 2>&1
}

sw_form() {
  dk 1 swarm init --advertise-addr "$(sw_addr 1)" --listen-addr "$(sw_addr 1):2377" \
    --default-addr-pool 10.201.0.0/16 >/dev/null || return 1
  local tok i
  tok=$(dk 1 swarm join-token -q worker) || return 1
  for i in "${SW_NODES[@]}"; do
    [ "$i" = 1 ] && continue
    dk "$i" swarm join --token "$tok" --advertise-addr "$(sw_addr "$i")" \
      --listen-addr "$(sw_addr "$i"):2377" "$(sw_addr 1):2377" >/dev/null || return 1
  done
  retry 100 sh -c "[ \$($DOCKER_BIN -H unix://$SW_DIR/n1/docker.sock node ls --format '{{.Status}}' | grep -c Ready) = ${#SW_NODES[@]} ]"
}

# sw_up [plugin...]: the whole swarm, plugins installed on every node before init/join.
sw_up() {
  e2e_install_packages || { echo "cannot install what the swarm needs" >&2; exit 1; }
  SW_DIR=$(mktemp -d /tmp/obsw.XXXXXX)
  E2E_DIR=$SW_DIR   # check() keeps its scratch output here
  export DOCKER_CONFIG=$SW_DIR/cli
  trap sw_teardown EXIT
  trap 'exit 130' INT TERM
  log "3-node swarm in $SW_DIR (netns $(sw_ns 1)..3, underlay $SW_NS_UL)"
  sw_write_wrapper
  sw_underlay || { log "underlay failed"; exit 1; }
  local i
  for i in "${SW_NODES[@]}"; do sw_start_node "$i"; done
  for i in "${SW_NODES[@]}"; do sw_wait_node "$i" || exit 1; done
  sw_image || { log "image import failed"; exit 1; }
  if [ $# -gt 0 ]; then
    make -s -C "$E2E_ROOT" rootfs BUILD_DIR="$SW_DIR/plugins" >/dev/null || { log "make rootfs failed"; exit 1; }
    for i in "${SW_NODES[@]}"; do sw_install "$i" "$@" || { log "plugin install on node $i failed"; exit 1; }; done
  fi
  sw_form || { log "swarm did not form"; dk 1 node ls >&2; exit 1; }
  log "swarm up: $(dk 1 node ls --format '{{.Hostname}}/{{.Status}}' | tr '\n' ' ')"
}

# PIDs of the run: in a node netns, in a node cgroup, or naming the run's directory.
sw_pids() {
  local i p
  {
    for i in "${SW_NODES[@]}"; do ip netns pids "$(sw_ns "$i")" 2>/dev/null; done
    ip netns pids "$SW_NS_UL" 2>/dev/null
    for p in /proc/[0-9]*; do
      for i in "${SW_NODES[@]}"; do grep -qs ":/$(sw_cg "$i")/" "$p/cgroup" && echo "${p#/proc/}"; done
      { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF "$SW_DIR/" && echo "${p#/proc/}"
    done
  } | sort -un | grep -vx -e "$$" -e "${BASHPID:-$$}"
}
# cgroup dirs of the run: the nodes' cgroup parents and the managed plugins' /<plugin ID>.
sw_cgroups() {
  local i id
  for i in "${SW_NODES[@]}"; do
    ls -d /sys/fs/cgroup/*/"$(sw_cg "$i")" 2>/dev/null
    for id in $(ls "$SW_DIR/n$i/root/plugins" 2>/dev/null | grep -E '^[0-9a-f]{64}$'); do
      ls -d /sys/fs/cgroup/*/"$id" 2>/dev/null
    done
  done
}

sw_teardown() {
  local rc=$? i p left
  set +e
  trap - EXIT
  if [ -n "${SW_DIR:-}" ] && [ -d "$SW_DIR" ]; then
    log "teardown"
    for i in "${SW_NODES[@]}"; do   # never leave an authz plugin configured
      grep -qs authorization-plugins "$SW_DIR/n$i/daemon.json" && echo '{}' >"$SW_DIR/n$i/daemon.json" \
        && [ -f "$SW_DIR/n$i/docker.pid" ] && kill -HUP "$(cat "$SW_DIR/n$i/docker.pid")" 2>/dev/null
    done
    [ -S "$SW_DIR/n1/docker.sock" ] && dk 1 service ls -q 2>/dev/null | xargs -r timeout 30 "$DOCKER_BIN" -H "unix://$SW_DIR/n1/docker.sock" service rm >/dev/null 2>&1
    for i in "${SW_NODES[@]}"; do
      [ -S "$SW_DIR/n$i/docker.sock" ] || continue
      timeout 30 "$DOCKER_BIN" -H "unix://$SW_DIR/n$i/docker.sock" ps -aq 2>/dev/null | xargs -r timeout 60 "$DOCKER_BIN" -H "unix://$SW_DIR/n$i/docker.sock" rm -f >/dev/null 2>&1
    done
    [ -S "$SW_DIR/n1/docker.sock" ] && timeout 30 "$DOCKER_BIN" -H "unix://$SW_DIR/n1/docker.sock" network ls -q --filter type=custom 2>/dev/null | xargs -r timeout 60 "$DOCKER_BIN" -H "unix://$SW_DIR/n1/docker.sock" network rm >/dev/null 2>&1
    for i in "${SW_NODES[@]}"; do
      [ -S "$SW_DIR/n$i/docker.sock" ] || continue
      timeout 30 "$DOCKER_BIN" -H "unix://$SW_DIR/n$i/docker.sock" volume ls -q 2>/dev/null | xargs -r timeout 60 "$DOCKER_BIN" -H "unix://$SW_DIR/n$i/docker.sock" volume rm -f >/dev/null 2>&1
      for p in $(timeout 10 "$DOCKER_BIN" -H "unix://$SW_DIR/n$i/docker.sock" plugin ls -q --filter enabled=true 2>/dev/null); do timeout 30 "$DOCKER_BIN" -H "unix://$SW_DIR/n$i/docker.sock" plugin disable -f "$p" >/dev/null 2>&1; done
    done
    for i in "${SW_NODES[@]}"; do sw_stop_node "$i" & done
    wait
    # Safety net, by PID: whatever of the run outlived its dockerd (shims, plugins, containers).
    for ((i = 0; i < 3; i++)); do
      left=$(sw_pids)
      [ -z "$left" ] && break
      # shellcheck disable=SC2086
      kill -KILL $left 2>/dev/null
      sleep 0.5
    done
    for p in $(sw_cgroups); do find "$p" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    for i in "${SW_NODES[@]}"; do ip netns del "$(sw_ns "$i")" 2>/dev/null; done
    ip netns del "$SW_NS_UL" 2>/dev/null
    awk -v d="$SW_DIR" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
    # The run's own checks on its cleanup.
    left=$(sw_pids); expect_eq "teardown: no process of the run left" "" "$left"
    left=$(ip netns list | grep -o "obsw${SW_TAG}[a-z0-9]*" | tr '\n' ' '); expect_eq "teardown: no netns left" "" "$left"
    left=$(sw_cgroups | tr '\n' ' '); expect_eq "teardown: no cgroup left" "" "$left"
    left=$(awk -v d="$SW_DIR" 'index($5, d) == 1' /proc/self/mountinfo); expect_eq "teardown: no mount left" "" "$left"
    left=$(ip -o link show | grep -c -e obswu -e obswul); expect_eq "teardown: no underlay link in the root netns" 0 "$left"
    rm -rf "$SW_DIR"
  fi
  if [ "$E2E_FAILS" -gt 0 ]; then log "$E2E_PASSES passed, $E2E_FAILS FAILED"; exit 1; fi
  [ "$E2E_PASSES" -gt 0 ] && log "$E2E_PASSES passed"
  exit "$rc"
}
