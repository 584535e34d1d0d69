# shellcheck shell=bash
# The end-to-end harness: a private dockerd that never disturbs a daemon the user runs.
#
#   source tests/e2e/lib.sh
#   e2e_start                 # installs docker.io & co if missing, starts dockerd, imports busybox
#   e2e_install volume ipam   # make plugin-install into the private daemon
#   ... docker ... ; check "what" cond ...
#   (teardown runs on EXIT, also on failure: containers, networks, volumes, plugins, daemon, mounts)
#
# Variables after e2e_start: E2E_DIR, DOCKER_HOST (exported), DOCKERD_PID, DOCKERD_LOG, IMAGE,
# E2E_PLUGIN_DIR (where dockerd puts managed-plugin sockets and looks for legacy ones), E2E_API.
#
# DOCKERD picks the daemon: 20.10 (default: Debian 12's docker.io, installed if missing) or 26.1
# (Debian 13's docker.io, fetched into target/dockerd-26 by fetch-dockerd26.sh, never installed).
# A 26.1 daemon runs with its own containerd 1.7 in a private mount namespace whose /run is
# $E2E_DIR/run: dockerd hard-codes /run/docker/plugins and containerd 1.7 /run/containerd/s.

set -u
E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGE=local/busybox
PREFIX=${PLUGIN_PREFIX:-outboard}
E2E_FAILS=0
E2E_PASSES=0
# Debian's own client matches the 20.10 daemon; a newer client first on PATH also works.
DOCKER_BIN=${DOCKER_BIN:-docker}
DOCKERD=${DOCKERD:-20.10}
case "$DOCKERD" in
  20.10 | 26.1) ;;
  *) echo "DOCKERD must be 20.10 or 26.1, not '$DOCKERD'" >&2; exit 2 ;;
esac
E2E_PLUGIN_DIR=/run/docker/plugins

log() { printf '\033[1m[e2e %s]\033[0m %s\n' "$(date +%T)" "$*" >&2; }
docker() { command "$DOCKER_BIN" "$@"; }

# check "description" command...: run the command; count and report pass/fail.
check() {
  local what=$1; shift
  # Run in this shell (not a $(...) subshell): commands such as e2e_restart_dockerd update
  # variables the teardown needs. Output goes to a file, shown only on failure.
  local out="${E2E_DIR:-/tmp}/.check-$$.out"
  if "$@" >"$out" 2>&1; then
    E2E_PASSES=$((E2E_PASSES + 1)); printf '  ok   %s\n' "$what" >&2
  else
    E2E_FAILS=$((E2E_FAILS + 1)); printf '  FAIL %s\n' "$what" >&2
    tail -n 5 "$out" | sed 's/^/       | /' >&2
  fi
  rm -f "$out"
}
# expect_eq "description" expected actual
expect_eq() {
  if [ "$2" = "$3" ]; then E2E_PASSES=$((E2E_PASSES + 1)); printf '  ok   %s\n' "$1" >&2
  else E2E_FAILS=$((E2E_FAILS + 1)); printf '  FAIL %s: expected [%s] got [%s]\n' "$1" "$2" "$3" >&2; fi
}
# expect_contains "description" needle haystack
expect_contains() {
  case "$3" in
    *"$2"*) E2E_PASSES=$((E2E_PASSES + 1)); printf '  ok   %s\n' "$1" >&2 ;;
    *) E2E_FAILS=$((E2E_FAILS + 1)); printf '  FAIL %s: [%s] not in [%s]\n' "$1" "$2" "$3" >&2 ;;
  esac
}
# expect_fail "description" needle command...: the command must fail and print needle.
expect_fail() {
  local what=$1 needle=$2; shift 2
  local out
  if out=$("$@" 2>&1); then
    E2E_FAILS=$((E2E_FAILS + 1)); printf '  FAIL %s: succeeded: %s\n' "$what" "$out" >&2
  else
    expect_contains "$what" "$needle" "$out"
  fi
}
# retry N cmd...: up to N attempts, 0.2 s apart (bounded polling, never sleep-and-hope).
retry() {
  local n=$1; shift
  local i
  for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

e2e_install_packages() {
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io containerd runc)
  [ -x /bin/busybox ] || need+=(busybox-static)
  command -v curl >/dev/null || need+=(curl)
  command -v jq >/dev/null || need+=(jq)
  command -v strace >/dev/null || need+=(strace)
  command -v ip >/dev/null || need+=(iproute2)
  command -v iptables >/dev/null || need+=(iptables)
  command -v nft >/dev/null || need+=(nftables)
  command -v openssl >/dev/null || need+=(openssl)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    # One apt at a time on this machine (two passes, or a test's own install, may ask at once):
    # our own lock first, then apt's lock timeout for anything else holding dpkg.
    (
      flock -w 600 9 || { log "apt lock not free after 600 s"; exit 1; }
      apt-get update -qq -o DPkg::Lock::Timeout=300 >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          -o DPkg::Lock::Timeout=300 "${need[@]}" >/dev/null
    ) 9>/tmp/outboard-apt.lock || { log "installing ${need[*]} failed"; return 1; }
  fi
  command -v "$DOCKER_BIN" >/dev/null || DOCKER_BIN=/usr/bin/docker
  if [ "$DOCKERD" = 26.1 ]; then
    D26=$(bash "$E2E_ROOT/tests/e2e/fetch-dockerd26.sh") || { log "cannot fetch dockerd 26.1"; exit 1; }
    # Its own client: API 1.45 request shapes, as a Docker 26 user sends them.
    DOCKER_BIN=$D26/bin/docker
  fi
}

# d26_start_containerd: containerd 1.7 for the 26.1 daemon, in a new private mount namespace in
# which $E2E_DIR/run is bound over /run. Inherited mounts other than /, /proc, /sys and /dev are
# detached there (only there), so the namespace never pins another daemon's mounts or netns.
# Its PID (CTRD_PID) is the handle dockerd enters the namespace by, also across restarts.
d26_start_containerd() {
  local c=$E2E_DIR/containerd
  mkdir -p "$c" "$E2E_DIR/run"
  cat > "$c/config.toml" <<TOML
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$c/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"
TOML
  # shellcheck disable=SC2016
  unshare --mount --propagation private -- bash -c '
    set -e
    if grep -qE "(shared|master):[0-9]+" /proc/self/mountinfo; then
      echo "mount propagation is not private: refusing" >&2; exit 1; fi
    awk "{print \$5}" /proc/self/mountinfo | sort -ur | while read -r m; do
      case "$m" in /|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*) ;; *) umount -l "$m" 2>/dev/null || true ;; esac
    done
    mount --bind "$1/run" /run
    mkdir -p /run/docker/plugins /run/containerd
    exec env -i PATH="$2/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/root containerd --config "$1/containerd/config.toml"
  ' d26 "$E2E_DIR" "$D26" >>"$E2E_DIR/containerd.log" 2>&1 &
  CTRD_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    [ -S "$c/containerd.sock" ] && return 0
    kill -0 "$CTRD_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "containerd did not come up; last log lines:"; tail -20 "$E2E_DIR/containerd.log" >&2
  return 1
}

# e2e_start_dockerd: start (or restart, keeping data) the private daemon in $E2E_DIR.
e2e_start_dockerd() {
  local id; id=$(basename "$E2E_DIR")
  [ -f "$E2E_DIR/daemon.json" ] || echo '{}' > "$E2E_DIR/daemon.json"
  if [ "$DOCKERD" = 26.1 ]; then
    if [ -z "${CTRD_PID:-}" ] || ! kill -0 "$CTRD_PID" 2>/dev/null; then d26_start_containerd || return 1; fi
    E2E_NSENTER=(nsenter --target "$CTRD_PID" --mount --)
    # nsenter execs (no fork without a PID namespace), so $! is dockerd itself.
    nsenter --target "$CTRD_PID" --mount -- env PATH="$D26/bin:$PATH" dockerd \
      --data-root "$E2E_DIR/root" --exec-root "$E2E_DIR/exec" --pidfile "$E2E_DIR/dockerd.pid" \
      -H "unix://$E2E_DIR/docker.sock" --config-file "$E2E_DIR/daemon.json" \
      --containerd "$E2E_DIR/containerd/containerd.sock" \
      --containerd-namespace "$id" --containerd-plugins-namespace "$id-plugins" \
      --init-path "$D26/bin/docker-init" \
      --iptables=false --ip-forward=false --bridge=none >>"$DOCKERD_LOG" 2>&1 &
  else
  dockerd --data-root "$E2E_DIR/root" --exec-root "$E2E_DIR/exec" --pidfile "$E2E_DIR/dockerd.pid" \
    -H "unix://$E2E_DIR/docker.sock" --config-file "$E2E_DIR/daemon.json" \
    --containerd-namespace "$id" --containerd-plugins-namespace "$id-plugins" \
    --iptables=false --ip-forward=false --bridge=none >>"$DOCKERD_LOG" 2>&1 &
  fi
  DOCKERD_PID=$!
  local i
  for ((i = 0; i < 150; i++)); do
    docker version >/dev/null 2>&1 && return 0
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.2
  done
  log "dockerd did not come up; last log lines:"; tail -20 "$DOCKERD_LOG" >&2
  return 1
}

# e2e_stop_dockerd: SIGTERM and wait (bounded), then SIGKILL.
e2e_stop_dockerd() {
  [ -n "${DOCKERD_PID:-}" ] || return 0
  kill "$DOCKERD_PID" 2>/dev/null
  local i
  for ((i = 0; i < 150; i++)); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$DOCKERD_PID" 2>/dev/null
  wait "$DOCKERD_PID" 2>/dev/null
  DOCKERD_PID=
}

e2e_restart_dockerd() {
  docker ps -q | xargs -r docker stop -t 1 >/dev/null 2>&1
  e2e_stop_dockerd
  e2e_start_dockerd
}

e2e_start() {
  e2e_install_packages || { log "cannot install what the tests need"; exit 1; }
  E2E_DIR=$(mktemp -d /tmp/ob.XXXXXX)
  DOCKERD_LOG=$E2E_DIR/dockerd.log
  if [ "$DOCKERD" = 26.1 ]; then
    # A short name for $E2E_DIR/run/docker/plugins: a socket path has at most 107 bytes, and
    # <dir>/<64-hex id>/outboard-network.sock must fit.
    mkdir -p "$E2E_DIR/run/docker/plugins"
    ln -s run/docker/plugins "$E2E_DIR/p"
    E2E_PLUGIN_DIR=$E2E_DIR/p
  fi
  export DOCKER_HOST=unix://$E2E_DIR/docker.sock
  trap e2e_teardown EXIT
  trap 'exit 130' INT TERM
  log "private dockerd $DOCKERD in $E2E_DIR"
  e2e_start_dockerd || exit 1
  # The daemon's own API version (1.41 on 20.10, 1.45 on 26.1), for raw requests in its shapes.
  E2E_API=$(docker version -f '{{.Server.APIVersion}}')
  # A busybox image made with docker import (no registry here).
  local r=$E2E_DIR/img
  mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/data"
  cp /bin/busybox "$r/bin/"
  for a in sh ls cat echo true false ping ip id stat sleep dd wc nc head tail grep hostname ifconfig route mkdir touch rm stat df mount wget httpd; do
    ln -sf busybox "$r/bin/$a"; done
  echo 'root:x:0:0:root:/:/bin/sh' > "$r/etc/passwd"
  tar -C "$r" -c . | docker import - "$IMAGE" >/dev/null || { log "image import failed"; exit 1; }
}

# e2e_install [plugin...]: make plugin-install into the private daemon (state under $E2E_DIR).
e2e_install() {
  local plugins="$*"
  # BUILD_DIR of its own: a parallel pass's `make rootfs` must not delete this one's rootfs.
  make -s -C "$E2E_ROOT" plugin-create plugin-enable PLUGINS="$plugins" BUILD_DIR="$E2E_DIR/plugins" \
    STATE_ROOT="$E2E_DIR/state" POLICY_DIR="$E2E_DIR/policy" AUDIT_DIR="$E2E_DIR/audit" \
    DOCKER="$DOCKER_BIN" >&2
}

# e2e_guard_forwarding TABLE: an inet table of the test's own that drops every forwarded packet
# toward the machine's uplink (the default-route interface), so test traffic stays between
# namespaces on this machine while a test turns forwarding on. True when it is in place.
e2e_guard_forwarding() {
  local t=$1 up
  up=$(ip route show default | awk '{print $5; exit}')
  nft add table inet "$t" || return 1
  nft add chain inet "$t" guardfwd '{ type filter hook forward priority -300; policy accept; }' || return 1
  [ -z "$up" ] && return 0
  nft add rule inet "$t" guardfwd oifname "$up" drop || return 1
  nft list table inet "$t" | grep -q "oifname \"$up\" drop"
}

# "${E2E_NSENTER[@]}" CMD...: run CMD in the daemon's mount namespace (26.1: the private one,
# whose /run/docker/plugins is $E2E_PLUGIN_DIR; 20.10: this one), e.g. a legacy plugin that must
# find its default paths. nsenter execs, so `"${E2E_NSENTER[@]}" CMD &` leaves CMD's PID in $!.
E2E_NSENTER=()

# plugin_id NAME: full ID of a managed plugin.
plugin_id() { docker plugin inspect -f '{{.Id}}' "$1"; }
# plugin_pid NAME: host PID of the plugin process (its root is the plugin's rootfs).
plugin_pid() {
  local id; id=$(plugin_id "$1")
  local root="$E2E_DIR/root/plugins/$id/rootfs"
  local p
  for p in $(pgrep -f '^/bin/outboard-'); do
    [ "$(readlink "/proc/$p/root" 2>/dev/null)" = "$root" ] && { echo "$p"; return 0; }
    # /proc/PID/root reads "/" for a process in another mount namespace: the cgroup names the ID.
    grep -q "/$id\$" "/proc/$p/cgroup" 2>/dev/null && { echo "$p"; return 0; }
  done
  return 1
}
# network_instance_tag NAME: the 4-hex instance tag the network plugin logs at start (its link
# and table names carry it).
network_instance_tag() { plugin_log "$1" | sed -n 's/.*instance=\([0-9a-f]\{4\}\).*/\1/p' | tail -1; }
# plugin_log NAME: the plugin's lines from the dockerd log.
plugin_log() { grep "plugin=$(plugin_id "$1")" "$DOCKERD_LOG"; }

e2e_teardown() {
  local rc=$?
  set +e
  if [ -n "${DOCKER_HOST:-}" ] && [ -n "${DOCKERD_PID:-}" ]; then
    # Never leave an authz plugin configured: the daemon would stay locked.
    if grep -q authorization-plugins "$E2E_DIR/daemon.json" 2>/dev/null; then
      echo '{}' > "$E2E_DIR/daemon.json"; kill -HUP "$DOCKERD_PID"; sleep 0.5
    fi
    docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1
    docker network ls -q --filter type=custom | xargs -r docker network rm >/dev/null 2>&1
    docker volume ls -q | xargs -r docker volume rm -f >/dev/null 2>&1
    for p in $(docker plugin ls -q 2>/dev/null); do docker plugin rm -f "$p" >/dev/null 2>&1; done
  fi
  e2e_stop_dockerd
  if [ -n "${CTRD_PID:-}" ]; then
    kill "$CTRD_PID" 2>/dev/null
    local i
    for ((i = 0; i < 100; i++)); do kill -0 "$CTRD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$CTRD_PID" 2>/dev/null
    wait "$CTRD_PID" 2>/dev/null
  fi
  if [ -n "${E2E_DIR:-}" ]; then
    # Safety net: container or plugin processes whose containerd shim outlived the daemon.
    local shim
    for shim in $(pgrep -f "containerd-shim-runc-v2 -namespace $(basename "$E2E_DIR")"); do
      pkill -KILL -P "$shim" 2>/dev/null; kill -KILL "$shim" 2>/dev/null
    done
  fi
  # A failed test keeps the evidence: the daemon's last error lines and the plugins' last
  # lines (their output is filed under plugin=<id>) go to the test's output, which CI keeps.
  if [ "$E2E_FAILS" -gt 0 ] && [ -f "${DOCKERD_LOG:-}" ]; then
    log "last plugin and error lines of $DOCKERD_LOG:"
    grep -E 'plugin=|level=(error|fatal)' "$DOCKERD_LOG" | tail -n 60 | cut -c1-400 >&2
  fi
  if [ -n "${E2E_DIR:-}" ] && [ -d "$E2E_DIR" ]; then
    # Unmount whatever dockerd or the plugins left under our directory, deepest first.
    awk -v d="$E2E_DIR" '$5 ~ "^"d {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$E2E_DIR"
  fi
  if [ "$E2E_FAILS" -gt 0 ]; then
    log "$E2E_PASSES passed, $E2E_FAILS FAILED"; exit 1
  fi
  [ "$E2E_PASSES" -gt 0 ] && log "$E2E_PASSES passed"
  exit "$rc"
}

# kill_plugin_settled NAME: SIGKILL the plugin's process, but only once it has run for 2 s.
# dockerd (moby daemon/plugin/manager_linux.go, pluginPostStart) sleeps 500 ms after starting a
# plugin and then dials its socket; a plugin that dies before that dial is marked disabled and
# never restarted again. Killing a just-restarted plugin would test that dockerd race, not us.
kill_plugin_settled() {
  local pid
  pid=$(plugin_pid "$1") || return 1
  kill_pid_settled "$pid"
}
# kill_pid_settled PID: the same for a plugin process found another way (e.g. on a swarm node).
kill_pid_settled() {
  local pid=$1 age i
  for ((i = 0; i < 50; i++)); do
    age=$(ps -o etimes= -p "$pid" 2>/dev/null | tr -d ' ')
    [ -n "$age" ] && [ "$age" -ge 2 ] && break
    sleep 0.1
  done
  kill -9 "$pid"
}
