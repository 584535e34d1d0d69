#!/usr/bin/env bash
# Authorization overhead, side by side in one run on a private dockerd: Docker API calls through
# the daemon socket (HEAD /_ping, GET /containers/json, POST /containers/create) with
#   (a) no authorization plugin,
#   (b) outboard-authz with an allow-all policy that turns auditing off (the floor of dockerd's
#       two plugin round trips per call),
#   (c) outboard-authz with a generated 200-rule policy and audit on (file + plugin log).
# One curl process per batch reuses its connection, so process start-up is not measured.
# Prints the median per call and the ratio c/b (target ≤ 1.10).
# Usage: [ROUNDS=8] [C_AUDIT=false] [C_PLUGIN_LOG=false] bash bench/authz.sh [pings] [lists] [creates]   (per round; needs `make rootfs PLUGINS=authz`)
set -u
PINGS=${1:-400}
LISTS=${2:-200}
CREATES=${3:-30}
source "$(dirname "$0")/../tests/e2e/lib.sh"
e2e_start
e2e_install authz
N=$PREFIX-authz:latest
SOCK=$E2E_DIR/docker.sock
POLICY=$E2E_DIR/policy/policy.toml

reloads() { grep -c 'Reloaded configuration' "$DOCKERD_LOG"; }
daemon_authz() { # on|off
  local before; before=$(reloads)
  if [ "$1" = on ]; then printf '{"authorization-plugins":["%s"]}\n' "$N"; else echo '{}'; fi > "$E2E_DIR/daemon.json"
  kill -HUP "$DOCKERD_PID"
  retry 50 sh -c "[ \$(grep -c 'Reloaded configuration' '$DOCKERD_LOG') -gt $before ]"
}

# The 200-rule policy: the shipped example's rules after 193 generated ones of every kind that
# ordinary requests do not match (so each request walks its whole candidate list).
gen_policy() {
  echo 'default = "allow"'
  local i
  for ((i = 0; i < 193; i++)); do
    printf '[[rule]]\nname = "gen-%d"\neffect = "deny"\nmessage = "generated rule %d"\n' "$i" "$i"
    case $((i % 8)) in
      0) printf 'actions = ["container.create"]\nimage_in = ["evil%d/*"]\n' "$i" ;;
      1) printf 'actions = ["container.create"]\ncap_add = ["CAP%d"]\n' "$i" ;;
      2) printf 'actions = ["container.create"]\nhost_path_under = ["/forbidden/%d"]\n' "$i" ;;
      3) printf 'sysctls = ["kernel.x%d"]\n' "$i" ;;
      4) printf 'users = ["user%d"]\n' "$i" ;;
      5) printf 'paths = ["/containers/name%d/*"]\n' "$i" ;;
      6) printf 'methods = ["GET"]\npaths = ["/containers/json%d"]\n' "$i" ;;
      7) printf 'methods = ["HEAD"]\npaths = ["/_ping%d"]\n' "$i" ;;
    esac
  done
  sed -n '/^\[\[rule\]\]/,$p' "$E2E_ROOT/deploy/authz/policy.example.toml"
}

# batch N CURL-ARGS... URL: N requests on one connection; prints one time_total (s) per line.
batch() {
  local n=$1; shift
  local url=${!#}
  local args=("${@:1:$#-1}")
  local urls=() i
  for ((i = 0; i < n; i++)); do urls+=("$url"); done
  # Timings go to stderr (then the pipe); every response body and header to /dev/null.
  curl -s --unix-socket "$SOCK" "${args[@]}" -w '%{stderr}%{time_total}\n' "${urls[@]}" 2>&1 >/dev/null
}
median_ms() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"; exit} m=a[int((NR+1)/2)]; printf "%.3f", m*1000}'; }

ROUNDS=${ROUNDS:-8}
SAMPLES=$(mktemp -d /tmp/ob-authz-bench.XXXXXX)
# run_scenario name: one round of the three calls; appends per-call times to $SAMPLES/<name>.<call>.
run_scenario() {
  local s=$1
  batch 20 -I http://d/_ping >/dev/null # warm-up
  batch "$PINGS" -I http://d/_ping >> "$SAMPLES/$s.ping"
  batch "$LISTS" http://d/v1.41/containers/json >> "$SAMPLES/$s.list"
  batch "$CREATES" -X POST -H 'Content-Type: application/json' \
    -d '{"Image":"local/busybox","Cmd":["true"],"HostConfig":{"Binds":["/tmp/outboard/b:/b"]}}' \
    http://d/v1.41/containers/create >> "$SAMPLES/$s.create"
  # Remove what was created, outside the measurement.
  docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1
}
plugin_sock() {
  local id; id=$(plugin_id "$N")
  find -H "$E2E_DIR/exec" "$E2E_PLUGIN_DIR" -path "*$id*" -name 'outboard-authz.sock' 2>/dev/null | head -1
}
# use_policy FILE: put FILE in force now (explicit reload on the plugin socket, then verified).
use_policy() {
  cp "$1" "$POLICY"
  local want; want=$("$E2E_ROOT/target/x86_64-unknown-linux-gnu/release/outboard-authz" check "$POLICY" | grep -o 'sha256:[0-9a-f]*')
  curl -s --unix-socket "$PSOCK" -X POST http://p/outboard/v1/reload >/dev/null
  retry 25 sh -c "curl -s --unix-socket '$PSOCK' http://p/outboard/v1/stats | grep -q '$want'"
}

gen_policy > "$E2E_DIR/policy-200.toml"
# C_AUDIT=false measures (c) with its rules but without audit lines (to split the two costs).
[ "${C_AUDIT:-true}" = false ] && sed -i '1a audit = false' "$E2E_DIR/policy-200.toml"
printf 'default = "allow"\naudit = false\n' > "$E2E_DIR/policy-allow-all.toml"
"$E2E_ROOT/target/x86_64-unknown-linux-gnu/release/outboard-authz" check "$E2E_DIR/policy-200.toml" >&2
# C_PLUGIN_LOG=false: audit lines only to the file (dockerd then does not log them).
if [ "${C_PLUGIN_LOG:-true}" = false ]; then
  docker plugin disable "$N" >/dev/null && docker plugin set "$N" AUDIT_PLUGIN_LOG=false && docker plugin enable "$N" >/dev/null
fi
PSOCK=$(plugin_sock)
# Short rounds interleave the scenarios so that drift in machine load hits all of them alike.
# Switching is cheap: (a) ↔ authz by the daemon config + SIGHUP, (b) ↔ (c) by the policy file
# (the plugin is never restarted).
for ((r = 1; r <= ROUNDS; r++)); do
  run_scenario a
  daemon_authz on
  use_policy "$E2E_DIR/policy-allow-all.toml" && run_scenario b
  use_policy "$E2E_DIR/policy-200.toml" && run_scenario c
  daemon_authz off
  log "round $r/$ROUNDS done"
done
lines=$(wc -l < "$E2E_DIR/audit/audit.log")

printf '\nauthz overhead per API call through dockerd (median ms over %s rounds of %s pings, %s lists, %s creates)\n' "$ROUNDS" "$PINGS" "$LISTS" "$CREATES"
printf '%-24s %12s %14s %20s %8s %8s\n' call "(a) no authz" "(b) allow-all" "(c) 200 rules+audit" "b-a" "c/b"
for k in ping list create; do
  label=$(case $k in ping) echo "HEAD /_ping";; list) echo "GET /containers/json";; create) echo "POST /containers/create";; esac)
  a=$(median_ms < "$SAMPLES/a.$k"); b=$(median_ms < "$SAMPLES/b.$k"); c=$(median_ms < "$SAMPLES/c.$k")
  ratio=$(awk -v b="$b" -v c="$c" 'BEGIN{ if (b > 0) printf "%.2f", c/b; else print "nan" }')
  diff=$(awk -v a="$a" -v b="$b" 'BEGIN{ printf "%.3f", b-a }')
  printf '%-24s %12s %14s %20s %8s %8s\n' "$label" "$a" "$b" "$c" "$diff" "$ratio"
done
printf 'audit lines written in (c): %s; load average during the run: %s\n' "$lines" "$(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$SAMPLES"
