#!/usr/bin/env bash
# Chaos soak: all four plugins in one private dockerd (authz in force), a seeded random mix of
# volume create/write/read/remove, network create/run/ping/remove with our IPAM and `--ip`
# static addresses, and authz-denied requests, run in concurrent bursts while faults hit:
# SIGKILL of a random plugin (during a burst), `docker plugin disable -f`/`enable`, dockerd
# restarts and a full disk under the IPAM plugin's state directory (between bursts). After every fault the invariants are checked;
# the run stops at the first breach. Bounded: SOAK_MINUTES of operations, then cleanup.
#
#   SOAK_MINUTES=30 SOAK_SEED=1234 bash tests/soak/soak.sh      (make soak; CI: 3 minutes)
#   SOAK_FAULTS="kill disable restart fulldisk"                  fault kinds to draw from
#
# fulldisk: writes must be refused clearly ("No space left on device") while reads are served,
# and work again on their own once space returns. sled 0.34 keeps the first I/O error it hits
# as a global error, so the plugin recovers by stopping itself once space is back (dockerd
# restarts it and the store reopens: common's `Store::stuck`); no operator step.
#
# Invariants: every acknowledged volume is listed with the data last written to it; a volume
# whose Remove was acknowledged is never listed again, its data dir is gone, and a new volume of
# that name starts empty; every container holds a distinct address, a `--ip` container keeps its
# address; the IPAM plugin holds exactly the addresses and pools of live containers and networks
# (plus at most the operations that failed in flight); one bridge per network and one host veth
# per endpoint of ours, nothing else, and nft rules for exactly those bridges; no volume mount
# left once no container uses it; no authz-denied request took effect. Subnets 10.98.64.0/20.
source "$(dirname "$0")/../e2e/lib.sh"
SOAK_MINUTES=${SOAK_MINUTES:-3}
SEED=${SOAK_SEED:-$(date +%s)}
FAULTS=(${SOAK_FAULTS:-kill disable restart fulldisk})
RANDOM=$SEED
log "soak: $SOAK_MINUTES minute(s), seed $SEED (replay: SOAK_SEED=$SEED), faults: ${FAULTS[*]}"
e2e_start
# The IPAM plugin's state lives on a small tmpfs of its own, so the disk can be filled.
# (In the daemon's mount namespace: 26.1 runs in a private one.)
mkdir -p "$E2E_DIR/state/ipam"
"${E2E_NSENTER[@]}" mount -t tmpfs -o size=16m outboard-soak "$E2E_DIR/state/ipam" || { log "no tmpfs"; exit 1; }
mkdir -p "$E2E_DIR/policy"
cat >"$E2E_DIR/policy/policy.toml" <<'EOF'
default = "allow"
allow_unknown_routes = true
[[rule]]
name = "soak-no-privileged"
effect = "deny"
message = "privileged containers are not allowed"
privileged = true
EOF
e2e_install volume network ipam authz || exit 1
V=$PREFIX-volume:latest N=$PREFIX-network:latest I=$PREFIX-ipam:latest A=$PREFIX-authz:latest
DATA=$E2E_DIR/state/volume-data
printf '{"authorization-plugins":["%s"]}\n' "$A" >"$E2E_DIR/daemon.json"
kill -HUP "$DOCKERD_PID"
retry 50 sh -c "grep -q 'Reloaded configuration' '$DOCKERD_LOG'" || { log "authz not loaded"; exit 1; }
TAG=$(network_instance_tag "$N")
OPS=$E2E_DIR/ops; mkdir -p "$OPS"

# --- model of what was acknowledged ------------------------------------------------------------
declare -A VOL=()      # name -> token acknowledged as written ("" = none yet)
declare -A VGONE=()    # names whose Remove was acknowledged (and not created again)
declare -A VMAYBE=()   # names whose create ("create:<token>") or remove ("rm") failed in flight
declare -A WDOUBT=()   # names whose write failed in flight -> the token it tried to write
declare -A NET=()      # name -> slot (subnet 10.98.(64+slot).0/24)
declare -A NMAYBE=()   # network names whose create or remove failed in flight
declare -A CTR=()      # container -> network
declare -A CIP=()      # container -> its --ip, if any
declare -A CMAYBE=()   # container names whose run or rm failed in flight
declare -A BUSY=()     # objects an operation of the current burst uses
declare -A NOPS=() NFAIL=() NFAULT=()
CHECKS=0 BREACHES=0 INFLIGHT_FAILS=0 SEQ=0 DENIED=()

breach() {
  BREACHES=$((BREACHES + 1)); log "BREACH: $*"
  summary; log "replay with SOAK_SEED=$SEED"; E2E_FAILS=$((E2E_FAILS + 1)); exit 1
}
summary() {
  {
    printf '\n%-28s %8s %8s\n' "operation" "ok" "failed"
    local k
    for k in $(printf '%s\n' "${!NOPS[@]}" | sort); do
      printf '%-28s %8s %8s\n' "$k" "${NOPS[$k]}" "${NFAIL[$k]:-0}"
    done
    printf '%-28s %8s\n' "fault" "count"
    for k in $(printf '%s\n' "${!NFAULT[@]}" | sort); do printf '%-28s %8s\n' "$k" "${NFAULT[$k]}"; done
    printf '%-28s %8s\n' "invariant checks" "$CHECKS" "breaches" "$BREACHES" "seed" "$SEED"
  } >&2
}
pick() { # pick ARRAY-KEYS...: one at random, not busy
  local c=() k
  for k in "$@"; do [ -z "${BUSY[$k]:-}" ] && c+=("$k"); done
  [ ${#c[@]} -gt 0 ] || return 1
  echo "${c[RANDOM % ${#c[@]}]}"
}
# op KIND ARGS...: run one operation in the background; its outcome goes to $OPS/<seq>.
op() {
  SEQ=$((SEQ + 1))
  local f=$OPS/$SEQ kind=$1; shift
  ( rc=0; out=$("op_$kind" "$@" 2>&1) || rc=$?
    printf '%s %s %s\n' "$kind" "$rc" "$*" >"$f"; [ "$rc" = 0 ] || printf '%s\n' "$out" | tail -2 >"$f.err" ) &
  JOBS+=($!)
}
op_vcreate() { docker volume create -d "$V" "$1" >/dev/null && docker run --rm -v "$1:/x" "$IMAGE" sh -c "[ -z \"\$(ls -A /x)\" ] || { echo NOT-EMPTY; ls -A /x; exit 3; }; echo $2 > /x/t"; }
op_vwrite() { docker run --rm -v "$1:/x" "$IMAGE" sh -c "echo $2 > /x/t"; }
op_vread() { [ "$(docker run --rm -v "$1:/x" "$IMAGE" cat /x/t)" = "$2" ]; }
op_vrm() { docker volume rm "$1" >/dev/null; }
op_ncreate() { docker network create -d "$N" --ipam-driver "$I" --subnet "10.98.$((64 + $2)).0/24" "$1" >/dev/null; }
op_nrm() { docker network rm "$1" >/dev/null; }
op_crun() { docker run -d --name "$1" --network "$2" ${3:+--ip "$3"} "$IMAGE" sleep 100000 >/dev/null; }
op_crm() { docker rm -f "$1" >/dev/null; }
op_cping() { docker exec "$1" ping -c 1 -W 2 "$(docker inspect -f "{{(index .NetworkSettings.Networks \"$3\").IPAddress}}" "$2")" >/dev/null; }
# Both must be refused: a privileged container (policy rule), disabling authz (self-protection).
op_denied() { ! docker run -d --privileged --name "$1" "$IMAGE" sleep 100000 && ! docker plugin disable "$A"; }

# apply: fold the outcomes of the burst into the model.
apply() {
  local f kind rc a b c
  for f in "$OPS"/*; do
    case "$f" in *.err) continue ;; esac
    [ -e "$f" ] || continue
    read -r kind rc a b c <"$f"
    if [ "$rc" = 0 ]; then NOPS[$kind]=$((${NOPS[$kind]:-0} + 1)); else NFAIL[$kind]=$((${NFAIL[$kind]:-0} + 1)); NOPS[$kind]=${NOPS[$kind]:-0}; fi
    case "$kind:$rc" in
      vcreate:0) VOL[$a]=$b; unset 'VGONE[$a]' 'VMAYBE[$a]' ;;
      vcreate:3) breach "volume $a created after an acknowledged remove is not empty: $(cat "$f.err")" ;;
      vcreate:*) unset 'VGONE[$a]'; VMAYBE[$a]=create:$b ;;
      vwrite:0) VOL[$a]=$b ;;
      vwrite:*) WDOUBT[$a]=$b ;;   # the new token may or may not have landed
      vread:*) ;;                 # strict reads happen in check_invariants
      vrm:0) unset 'VOL[$a]' 'VMAYBE[$a]'; VGONE[$a]=1 ;;
      vrm:*) VMAYBE[$a]=rm ;;
      ncreate:0) NET[$a]=$b; unset 'NMAYBE[$a]' ;;
      ncreate:*) NMAYBE[$a]=$b; INFLIGHT_FAILS=$((INFLIGHT_FAILS + 1)) ;;
      nrm:0) unset 'NET[$a]' 'NMAYBE[$a]' ;;
      nrm:*) NMAYBE[$a]=${NET[$a]}; unset 'NET[$a]'; INFLIGHT_FAILS=$((INFLIGHT_FAILS + 1)) ;;
      crun:0) CTR[$a]=$b; [ -n "$c" ] && CIP[$a]=$c ;;
      crun:*) CMAYBE[$a]=$b; INFLIGHT_FAILS=$((INFLIGHT_FAILS + 1)) ;;
      crm:0) unset 'CTR[$a]' 'CIP[$a]' 'CMAYBE[$a]' ;;
      crm:*) CMAYBE[$a]=${CTR[$a]}; unset 'CTR[$a]' 'CIP[$a]'; INFLIGHT_FAILS=$((INFLIGHT_FAILS + 1)) ;;
      cping:*) ;;
      denied:0) DENIED+=("$a") ;;
      denied:*) breach "a request the policy denies was not refused: $(cat "$f.err")" ;;
    esac
    rm -f "$f" "$f.err"
  done
}

# settle: every plugin enabled and answering (bounded), the in-doubt objects resolved.
settle() {
  local p
  for p in "$V" "$N" "$I" "$A"; do
    retry 150 sh -c "docker plugin inspect -f '{{.Enabled}}' $p | grep -qx true" || breach "plugin $p not enabled again"
  done
  retry 150 docker volume ls || breach "volume plugin does not answer"
  retry 150 sh -c "curl -sf --unix-socket '$(ipam_sock)' http://x/outboard/v1/pools" || breach "IPAM plugin does not answer"
  local n
  local cur
  for n in "${!WDOUBT[@]}"; do
    # A write in doubt: the old or the new token, nothing else.
    cur=$(cat "$DATA/$n/t" 2>/dev/null)
    if [ -n "${VOL[$n]+x}" ] && [ "$cur" = "${WDOUBT[$n]}" ]; then VOL[$n]=$cur; fi
  done
  WDOUBT=()
  for n in "${!VMAYBE[@]}"; do
    if docker volume inspect "$n" >/dev/null 2>&1; then
      # A create in doubt that exists: its token only if the write landed. A remove in doubt
      # that did not happen: the volume keeps its acknowledged data (checked).
      if [ "${VMAYBE[$n]}" != rm ]; then
        cur=$(cat "$DATA/$n/t" 2>/dev/null)
        if [ "$cur" = "${VMAYBE[$n]#create:}" ]; then VOL[$n]=$cur; else VOL[$n]=""; fi
      fi
    else
      unset 'VOL[$n]'; VGONE[$n]=1
    fi
  done
  VMAYBE=()
  for n in "${!NMAYBE[@]}"; do
    if docker network inspect "$n" >/dev/null 2>&1; then NET[$n]=${NMAYBE[$n]}; fi
  done
  NMAYBE=()
  for n in "${!CMAYBE[@]}"; do
    if docker inspect "$n" >/dev/null 2>&1; then
      # A run in doubt: the container exists; make it one of ours (started) or remove it.
      docker rm -f "$n" >/dev/null 2>&1 || breach "cannot remove container $n"
    fi
  done
  CMAYBE=()
}
ipam_sock() { echo "$E2E_PLUGIN_DIR/$(plugin_id "$I")/outboard-ipam.sock"; }

# check_invariants: the whole model against dockerd, the plugins and the host.
check_invariants() {
  CHECKS=$((CHECKS + 1)); BUSY=()
  local n listed
  listed=$(docker volume ls -q --filter "driver=$V")
  for n in "${!VOL[@]}"; do
    grep -qx "$n" <<<"$listed" || breach "acknowledged volume $n is not listed"
    [ -z "${VOL[$n]}" ] && continue
    [ "$(cat "$DATA/$n/t" 2>/dev/null)" = "${VOL[$n]}" ] || breach "volume $n lost its data (want ${VOL[$n]}, have '$(cat "$DATA/$n/t" 2>&1)')"
  done
  # One volume read through a container (Mount + Unmount) per check.
  n=$(pick "${!VOL[@]}") && [ -n "${VOL[$n]}" ] && { op_vread "$n" "${VOL[$n]}" || breach "volume $n reads back wrong data through a container"; }
  for n in "${!VGONE[@]}"; do
    grep -qx "$n" <<<"$listed" && breach "volume $n is back after an acknowledged remove"
    [ -e "$DATA/$n" ] && breach "data of removed volume $n is back in the data dir"
  done
  local vid; vid=$(plugin_id "$V")
  local mounts; mounts=$(grep -c " $E2E_DIR/root/plugins/$vid/propagated-mount/" "/proc/$DOCKERD_PID/mountinfo")
  [ "$mounts" = 0 ] || breach "$mounts volume mounts left with no container using them"
  # Containers: running, distinct addresses, --ip kept.
  local c ips="" ip want_held=0 held
  for c in "${!CTR[@]}"; do
    [ "$(docker inspect -f '{{.State.Running}}' "$c" 2>&1)" = true ] || breach "container $c is not running"
    ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"${CTR[$c]}\").IPAddress}}" "$c")
    [ -n "$ip" ] || breach "container $c has no address"
    [ -n "${CIP[$c]:-}" ] && [ "$ip" != "${CIP[$c]}" ] && breach "container $c has $ip, not its --ip ${CIP[$c]}"
    ips+="$ip"$'\n'
  done
  local dup; dup=$(grep . <<<"$ips" | sort | uniq -d)
  [ -z "$dup" ] || breach "address held twice by containers: $dup"
  # The IPAM plugin's view: exactly our networks' pools, container addresses = the live ones.
  local pools; pools=$(curl -sf --unix-socket "$(ipam_sock)" http://x/outboard/v1/pools) || breach "pools endpoint"
  local held_ips subnets want_subnets
  # Every held address but gateways: the soak makes no --aux-address, and a --ip right after
  # the pool was created is labelled "aux" by the plugin (the label is a guess; holding is not).
  held_ips=$(jq -r '.pools[].runs[] | select(.kind != "gateway")
    | (.first | split(".")) as $f | (.last | split(".") | .[3] | tonumber) as $l
    | range($f[3] | tonumber; $l + 1) | "\($f[0]).\($f[1]).\($f[2]).\(.)"' <<<"$pools" | sort)
  subnets=$(jq -r '.pools[].pool' <<<"$pools" | sort)
  want_subnets=$(for n in "${!NET[@]}"; do echo "10.98.$((64 + ${NET[$n]})).0/24"; done | sort)
  [ "$(comm -23 <(echo "$want_subnets" | grep .) <(echo "$subnets" | grep .) | wc -l)" = 0 ] ||
    breach "pools of live networks missing in the IPAM plugin: $(comm -23 <(echo "$want_subnets" | grep .) <(echo "$subnets" | grep .) | tr '\n' ' ')"
  local missing extra
  missing=$(comm -23 <(grep . <<<"$ips" | sort) <(grep . <<<"$held_ips"))
  [ -z "$missing" ] || breach "container addresses the IPAM plugin does not hold: $missing (containers: $(for c in "${!CTR[@]}"; do printf '%s=%s ' "$c" "${CIP[$c]:-dyn}"; done); pools: $(jq -c '[.pools[] | {pool, runs}]' <<<"$pools"))"
  extra=$(comm -13 <(grep . <<<"$ips" | sort) <(grep . <<<"$held_ips") | grep -c .)
  local xpools; xpools=$(comm -13 <(echo "$want_subnets" | grep .) <(echo "$subnets" | grep .) | grep -c .)
  LEAKS=$((extra + xpools))
  [ "$LEAKS" -le "$INFLIGHT_FAILS" ] ||
    breach "IPAM holds $extra addresses and $xpools pools no live container/network has (more than the $INFLIGHT_FAILS operations that failed in flight)"
  # Links of the network plugin: a bridge per network, a host veth per endpoint.
  local bridges veths
  bridges=$(ip -o link show | grep -c "alias outboard-network $TAG net ")
  veths=$(ip -o link show | grep -c "alias outboard-network $TAG ep ")
  [ "$bridges" = "${#NET[@]}" ] || breach "$bridges bridges of ours for ${#NET[@]} networks"
  [ "$veths" = "${#CTR[@]}" ] || breach "$veths host veths of ours for ${#CTR[@]} containers"
  # nftables: the plugin's table names exactly the bridges of live networks.
  local live_br table_br
  live_br=$(ip -o link show | grep "alias outboard-network $TAG net " | awk -F': ' '{print $2}' | cut -d@ -f1 | sort -u)
  table_br=$(nft list table inet "outboard_network_$TAG" 2>/dev/null | grep -o "ob$TAG[0-9a-z]\{9\}" | sort -u)
  [ "$live_br" = "$table_br" ] || breach "nft table names bridges [$(echo $table_br)], live networks have [$(echo $live_br)]"
  for c in "${DENIED[@]}"; do
    docker inspect "$c" >/dev/null 2>&1 && breach "denied container $c exists"
  done
  DENIED=()
  log "invariants hold: ${#VOL[@]} volumes, ${#VGONE[@]} removed, ${#NET[@]} networks, ${#CTR[@]} containers, $LEAKS leaked (<= $INFLIGHT_FAILS failed in flight)"
}

# --- faults ---------------------------------------------------------------------------------------
fault_kill() { # SIGKILL a random plugin (once it is past dockerd's post-start dial)
  local ps=("$V" "$N" "$I" "$A"); local p=${ps[RANDOM % 4]}
  NFAULT["kill_${p%%:*}"]=$((${NFAULT["kill_${p%%:*}"]:-0} + 1)); log "fault: SIGKILL $p"
  ( sleep "0.$((RANDOM % 10))"; kill_plugin_settled "$p" ) >/dev/null 2>&1 &
  JOBS+=($!)
}
# Between bursts, not during one: `disable -f` while dockerd is mounting a volume or plugging an
# endpoint lets dockerd unmount the plugin's propagated mount under a container it is starting
# (the container then writes beside the volume): forcing that is dockerd's contract, not ours.
fault_disable() { # force-disable and enable a random plugin other than authz (self-protected)
  local ps=("$V" "$N" "$I"); local p=${ps[RANDOM % 3]}
  NFAULT["disable_${p%%:*}"]=$((${NFAULT["disable_${p%%:*}"]:-0} + 1)); log "fault: disable -f + enable $p"
  docker plugin disable -f "$p" >/dev/null || breach "cannot disable $p"
  docker plugin enable "$p" >/dev/null || breach "cannot enable $p again"
}
fault_restart() { # restart dockerd (containers are stopped by it), then start ours again
  NFAULT[dockerd_restart]=$((${NFAULT[dockerd_restart]:-0} + 1)); log "fault: dockerd restart"
  e2e_restart_dockerd || breach "dockerd did not come back"
  settle
  local c
  for c in "${!CTR[@]}"; do docker start "$c" >/dev/null 2>&1 || breach "container $c does not start after the dockerd restart: $(docker start "$c" 2>&1)"; done
}
fault_fulldisk() { # fill the IPAM plugin's state tmpfs: writes refused clearly, reads served, recovery
  NFAULT[full_disk_ipam]=$((${NFAULT[full_disk_ipam]:-0} + 1)); log "fault: full disk under the IPAM state"
  local fill=$E2E_DIR/state/ipam/filler sock out pool n i urls=() refused=""
  sock=$(ipam_sock)
  # A pool of the soak's own on the plugin socket (10.98.72.0/21, never drawn by the random mix):
  # sled's file has room left in its last segment, so it takes many writes to need a new page.
  out=$(curl -s --unix-socket "$sock" -X POST http://x/IpamDriver.RequestPool \
    -d '{"AddressSpace":"OutboardLocal","Pool":"10.98.72.0/21","Options":{},"V6":false}')
  pool=$(jq -r '.PoolID // empty' <<<"$out")
  [ -n "$pool" ] || breach "full disk: cannot make the soak pool: $out"
  "${E2E_NSENTER[@]}" dd if=/dev/zero of="$fill" bs=4k >/dev/null 2>&1
  for ((i = 0; i < 100; i++)); do urls+=(http://x/IpamDriver.RequestAddress); done
  for ((i = 0; i < 19; i++)); do
    out=$(curl -s --unix-socket "$sock" -X POST -d "{\"PoolID\":\"$pool\",\"Options\":{}}" \
      -w '\n%{http_code}\n' "${urls[@]}" | grep . | grep -v '^200$' | grep -v '"Address"' | head -3)
    [ -n "$out" ] && { refused=$out; break; }
  done
  if [ -z "$refused" ]; then
    NFAULT[full_disk_never_refused]=$((${NFAULT[full_disk_never_refused]:-0} + 1))
  else
    log "full disk: refused after $((i * 100)) or more writes: $(head -1 <<<"$refused")"
    case "$refused" in
      *"No space"* | *"no space"* | *"space left"*) ;;
      *) "${E2E_NSENTER[@]}" rm -f "$fill"; breach "full disk: the refusal does not say why: $refused" ;;
    esac
    # Through dockerd too: a network create is refused, and says why.
    n=sfull$SEQ; SEQ=$((SEQ + 1))
    if out=$(docker network create -d "$N" --ipam-driver "$I" --subnet 10.98.71.0/24 "$n" 2>&1); then
      NFAULT[full_disk_network_create_fit]=$((${NFAULT[full_disk_network_create_fit]:-0} + 1))
      docker network rm "$n" >/dev/null 2>&1
    else
      case "$out" in *"space"*) ;; *) "${E2E_NSENTER[@]}" rm -f "$fill"; breach "full disk: docker network create refused without saying why: $out" ;; esac
    fi
  fi
  curl -sf --unix-socket "$sock" http://x/outboard/v1/pools >/dev/null ||
    { "${E2E_NSENTER[@]}" rm -f "$fill"; breach "reads not served with the disk full"; }
  "${E2E_NSENTER[@]}" rm -f "$fill"
  # Space is back: the plugin takes writes again on its own (it restarts itself to reopen the
  # store: bounded wait of 30 s), the soak pool goes.
  if ! retry 150 sh -c "curl -sf --unix-socket '$sock' -X POST -d '{\"PoolID\":\"$pool\",\"Options\":{}}' http://x/IpamDriver.RequestAddress"; then
    out=$(curl -s --unix-socket "$sock" -X POST -d "{\"PoolID\":\"$pool\",\"Options\":{}}" http://x/IpamDriver.RequestAddress)
    # Whether a restart of the plugin is the way out, for the breach report.
    docker plugin disable -f "$I" >/dev/null; docker plugin enable "$I" >/dev/null
    local after="no"
    retry 50 sh -c "curl -sf --unix-socket '$(ipam_sock)' -X POST -d '{\"PoolID\":\"$pool\",\"Options\":{}}' http://x/IpamDriver.RequestAddress" && after="yes"
    breach "no recovery once space returned: $out (after docker plugin disable -f + enable, writes work: $after)"
  fi
  out=$(curl -s -w ' %{http_code}' --unix-socket "$sock" -X POST -d "{\"PoolID\":\"$pool\"}" http://x/IpamDriver.ReleasePool)
  case "$out" in *" 200") ;; *) breach "cannot release the soak pool: $out" ;; esac
  n=sfull$SEQ-r; SEQ=$((SEQ + 1))
  docker network create -d "$N" --ipam-driver "$I" --subnet 10.98.71.0/24 "$n" >/dev/null ||
    breach "docker network create fails once space returned"
  docker network rm "$n" >/dev/null || breach "cannot remove $n"
}

# --- the run ------------------------------------------------------------------------------------
settle; check_invariants
end=$(($(date +%s) + SOAK_MINUTES * 60))
vn=0 nn=0 cn=0 ipn=0 round=0
while [ "$(date +%s)" -lt "$end" ]; do
  round=$((round + 1)); JOBS=(); BUSY=()
  burst=$((2 + RANDOM % 4))
  for ((j = 0; j < burst; j++)); do
    case $((RANDOM % 12)) in
      0|1) # a new volume, or one whose remove was acknowledged, created again
        if [ ${#VGONE[@]} -gt 0 ] && [ $((RANDOM % 2)) = 0 ]; then n=$(pick "${!VGONE[@]}") || continue
        elif [ ${#VOL[@]} -lt 12 ]; then vn=$((vn + 1)); n=sv$vn; else continue; fi
        BUSY[$n]=1; op vcreate "$n" "t$SEED-$round-$j" ;;
      2) n=$(pick "${!VOL[@]}") || continue; BUSY[$n]=1; op vwrite "$n" "t$SEED-$round-$j" ;;
      3) n=$(pick "${!VOL[@]}") || continue; [ -n "${VOL[$n]}" ] || continue; BUSY[$n]=1; op vread "$n" "${VOL[$n]}" ;;
      4) n=$(pick "${!VOL[@]}") || continue; BUSY[$n]=1; op vrm "$n" ;;
      5) [ ${#NET[@]} -lt 4 ] || continue
         used=" ${NET[*]} "; s=""
         for k in 0 1 2 3 4 5; do
           case "$used" in *" $k "*) continue ;; esac; [ -z "${BUSY[slot$k]:-}" ] && { s=$k; break; }
         done
         [ -n "$s" ] || continue; nn=$((nn + 1)); n=sn$nn; BUSY[slot$s]=1; BUSY[$n]=1; op ncreate "$n" "$s" ;;
      6|7) [ ${#CTR[@]} -lt 12 ] || continue; n=$(pick "${!NET[@]}") || continue
         cn=$((cn + 1)); ip=""
         if [ $((RANDOM % 3)) = 0 ]; then ipn=$((ipn + 1)); ip=10.98.$((64 + ${NET[$n]})).$((100 + ipn % 150)); fi
         case " ${CIP[*]} " in *" $ip "*) ip="" ;; esac
         BUSY[sc$cn]=1; BUSY[$n]=1; op crun "sc$cn" "$n" "$ip" ;;
      8) n=$(pick "${!CTR[@]}") || continue; BUSY[$n]=1; op crm "$n" ;;
      9) n=$(pick "${!CTR[@]}") || continue; c=""
         for k in "${!CTR[@]}"; do [ "$k" != "$n" ] && [ "${CTR[$k]}" = "${CTR[$n]}" ] && { c=$k; break; }; done
         [ -n "$c" ] || continue; op cping "$n" "$c" "${CTR[$n]}" ;;
      10) n=$(pick "${!NET[@]}") || continue
         for k in "${!CTR[@]}"; do [ "${CTR[$k]}" = "$n" ] && continue 2; done
         BUSY[$n]=1; op nrm "$n" ;;
      11) cn=$((cn + 1)); op denied "sd$cn" ;;
    esac
  done
  fault=""
  if [ $((RANDOM % 3)) = 0 ]; then
    fault=${FAULTS[RANDOM % ${#FAULTS[@]}]}
    case $fault in kill) "fault_$fault" ;; esac
  fi
  [ ${#JOBS[@]} -gt 0 ] && wait "${JOBS[@]}"
  apply
  case $fault in disable|restart|fulldisk) "fault_$fault" ;; esac
  if [ -n "$fault" ] || [ $((round % 10)) = 0 ]; then settle; check_invariants; fi
done
settle; check_invariants
summary
log "soak: no breach in $round rounds (seed $SEED)"
E2E_PASSES=$((E2E_PASSES + 1))
# The harness's teardown also unmounts the state tmpfs (everything mounted under $E2E_DIR).
